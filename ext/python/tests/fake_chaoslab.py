"""A tiny stand-in for chaoslab's ``POST /api/chaos/call``, for the tests and for trying experiments.

It checks the bearer token, records every call, and answers from ``responses`` (one entry per
function name) or, by default, from a little component model (``stop_component``/``crash_component``
take a component down, ``start_component``/``restart_component`` bring it back, ``component_up``
tells) and otherwise by echoing the call.

Run it alone with ``python tests/fake_chaoslab.py --port 8080 --token s3cret``.
"""

import argparse
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Dict, List, Optional, Union

CALL_PATH = "/api/chaos/call"
MODULES = ("chaoslab.actions", "chaoslab.probes")


class Reply:
    """A canned answer: a status, a JSON payload (or raw bytes), optional headers and a delay."""

    def __init__(
        self,
        status: int,
        payload: Union[Dict[str, Any], bytes],
        headers: Optional[Dict[str, str]] = None,
        delay: float = 0.0,
    ):
        self.status = status
        self.payload = payload
        self.headers = headers or {}
        self.delay = delay


Response = Union[Reply, Callable[[Dict[str, Any]], Any], Any]


class FakeChaoslab:
    """The fake server: ``start()`` binds a free loopback port, ``url`` is its base URL."""

    def __init__(self, token: str = "s3cret", verbose: bool = False):
        self.token = token
        self.verbose = verbose
        self.calls: List[Dict[str, Any]] = []
        self.authorizations: List[Optional[str]] = []
        self.requests: List[str] = []
        self.responses: Dict[str, Response] = {}
        self.down: set = set()
        self._lock = threading.Lock()
        self._server: Optional[ThreadingHTTPServer] = None
        self._thread: Optional[threading.Thread] = None

    @property
    def url(self) -> str:
        assert self._server is not None, "not started"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self, host: str = "127.0.0.1", port: int = 0) -> "FakeChaoslab":
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, fmt, *args):
                if fake.verbose:
                    sys.stderr.write("fake-chaoslab: " + (fmt % args) + "\n")

            def do_GET(self):
                with fake._lock:
                    fake.requests.append(f"GET {self.path}")
                self._send(Reply(405, {"error": "use POST"}))

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                with fake._lock:
                    fake.requests.append(f"POST {self.path}")
                self._send(fake._answer(self.path, self.headers.get("Authorization"), raw))

            def _send(self, reply: Reply):
                if reply.delay:
                    time.sleep(reply.delay)
                body = (
                    reply.payload if isinstance(reply.payload, bytes) else json.dumps(reply.payload).encode()
                )
                self.send_response(reply.status)
                self.send_header("Content-Type", "application/json")
                if "Content-Length" not in reply.headers:
                    self.send_header("Content-Length", str(len(body)))
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="fake-chaoslab",
            daemon=True,
        )
        self._thread.start()
        return self

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def funcs(self) -> List[str]:
        """The functions called so far, in order."""
        with self._lock:
            return [c["func"] for c in self.calls]

    def _answer(self, path: str, authorization: Optional[str], raw: bytes) -> Reply:
        if path != CALL_PATH:
            return Reply(404, {"error": f"no route {path}"})
        with self._lock:
            self.authorizations.append(authorization)
        if authorization is None:
            return Reply(401, {"error": "authentication required"}, {"WWW-Authenticate": "Bearer"})
        if authorization != f"Bearer {self.token}":
            return Reply(401, {"error": "invalid credentials"}, {"WWW-Authenticate": "Bearer"})
        try:
            body = json.loads(raw)
        except ValueError:
            return Reply(400, {"error": "body is not JSON"})
        if (
            not isinstance(body, dict)
            or body.get("module") not in MODULES
            or not isinstance(body.get("func"), str)
            or not isinstance(body.get("arguments"), dict)
        ):
            return Reply(400, {"error": "expected {module, func, arguments}"})
        with self._lock:
            self.calls.append(body)
        if self.verbose:
            sys.stderr.write(f"fake-chaoslab: call {json.dumps(body, sort_keys=True)}\n")

        response = self.responses.get(body["func"], _DEFAULT)
        if response is _DEFAULT:
            return Reply(200, {"output": self._model(body)})
        if isinstance(response, Reply):
            return response
        if callable(response):
            return Reply(200, {"output": response(body["arguments"])})
        return Reply(200, {"output": response})

    def _model(self, body: Dict[str, Any]) -> Any:
        func, args = body["func"], body["arguments"]
        name = args.get("name")
        with self._lock:
            if func in ("stop_component", "crash_component"):
                self.down.add(name)
                return {"name": name, "state": "stopped" if func == "stop_component" else "failed"}
            if func in ("start_component", "restart_component"):
                self.down.discard(name)
                return {"name": name, "state": "running"}
            if func == "component_up":
                return name not in self.down
        return {"echo": body}


_DEFAULT = object()


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--token", default="s3cret")
    opts = parser.parse_args(argv)
    fake = FakeChaoslab(token=opts.token, verbose=True).start(opts.host, opts.port)
    sys.stderr.write(f"fake-chaoslab: listening on {fake.url}\n")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        fake.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
