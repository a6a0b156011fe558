"""The one HTTP call every chaoslab activity makes: ``POST {url}/api/chaos/call``.

Kept private to the package (and out of the modules' ``__all__``) so that Chaos Toolkit's discovery
lists only the activities. Only the standard library's ``urllib`` is used.
"""

import http.client
import json
import logging
import os
import socket
import urllib.error
import urllib.request
from typing import Any, Dict, Optional

from chaoslib.exceptions import ActivityFailed
from chaoslib.types import Configuration, Secrets

__all__ = ["call", "ACTIONS", "PROBES", "DEFAULT_URL", "DEFAULT_TIMEOUT"]

logger = logging.getLogger("chaostoolkit")

ACTIONS = "chaoslab.actions"
PROBES = "chaoslab.probes"
DEFAULT_URL = "http://127.0.0.1:8080"
DEFAULT_TIMEOUT = 30.0
CALL_PATH = "/api/chaos/call"

# How much of a non-JSON error body is quoted in an ActivityFailed message.
_MAX_QUOTED_BODY = 300


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Refuses redirects: urllib would replay the bearer token to wherever a redirect points."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


_opener = urllib.request.build_opener(_NoRedirect)


def _base_url(configuration: Optional[Configuration]) -> str:
    url = (configuration or {}).get("chaoslab_url") or os.environ.get("CHAOSLAB_URL") or DEFAULT_URL
    return str(url).rstrip("/")


def _token(secrets: Optional[Secrets]) -> Optional[str]:
    token = (secrets or {}).get("chaoslab_token") or os.environ.get("CHAOSLAB_TOKEN")
    return str(token) if token else None


def _timeout(configuration: Optional[Configuration]) -> float:
    raw = (configuration or {}).get("chaoslab_timeout", DEFAULT_TIMEOUT)
    try:
        timeout = float(raw)
    except (TypeError, ValueError):
        raise ActivityFailed(f"configuration chaoslab_timeout: {raw!r} is not a number of seconds") from None
    if timeout <= 0:
        raise ActivityFailed(f"configuration chaoslab_timeout: {timeout} is not a positive number of seconds")
    return timeout


def _error_text(body: bytes) -> str:
    """The server's ``{"error": ...}`` text, or the start of whatever else it sent."""
    text = body.decode("utf-8", errors="replace").strip()
    try:
        payload = json.loads(text)
    except ValueError:
        payload = None
    if isinstance(payload, dict) and "error" in payload:
        return str(payload["error"])
    if len(text) > _MAX_QUOTED_BODY:
        text = text[:_MAX_QUOTED_BODY] + "..."
    return text or "(empty body)"


def call(
    module: str,
    func: str,
    arguments: Dict[str, Any],
    configuration: Optional[Configuration] = None,
    secrets: Optional[Secrets] = None,
) -> Any:
    """Runs ``module.func`` inside chaoslab with ``arguments`` (``None`` values left out) and returns
    its ``output``.

    Raises ``ActivityFailed`` for any answer other than 200 (quoting the server's ``error``), for an
    unreachable server, a timeout, or a 200 whose body is not ``{"output": ...}``.
    """
    url = _base_url(configuration) + CALL_PATH
    timeout = _timeout(configuration)
    body = {
        "module": module,
        "func": func,
        "arguments": {name: value for name, value in arguments.items() if value is not None},
    }
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    token = _token(secrets)
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(
        url, data=json.dumps(body).encode("utf-8"), headers=headers, method="POST"
    )
    logger.debug("chaoslab: calling %s.%s at %s", module, func, url)

    try:
        with _opener.open(request, timeout=timeout) as response:
            status = response.status
            raw = response.read()
    except urllib.error.HTTPError as e:
        status = e.code
        try:
            raw = e.read() or b""
        except (OSError, http.client.HTTPException):
            raw = b""
        finally:
            e.close()
    except (socket.timeout, TimeoutError) as e:
        raise ActivityFailed(f"chaoslab {func}: no answer from {url} within {timeout:g} s") from e
    except urllib.error.URLError as e:
        if isinstance(e.reason, (socket.timeout, TimeoutError)):
            raise ActivityFailed(f"chaoslab {func}: no answer from {url} within {timeout:g} s") from e
        raise ActivityFailed(f"chaoslab {func}: cannot reach {url}: {e.reason}") from e
    except OSError as e:
        raise ActivityFailed(f"chaoslab {func}: cannot reach {url}: {e}") from e
    except http.client.HTTPException as e:
        raise ActivityFailed(f"chaoslab {func}: broken answer from {url}: {e!r}") from e

    if status != 200:
        reason = _error_text(raw)
        hint = ""
        if status == 401 and not token:
            hint = " (no token given: set the chaoslab_token secret or CHAOSLAB_TOKEN)"
        raise ActivityFailed(f"chaoslab {func}: HTTP {status}: {reason}{hint}")

    try:
        payload = json.loads(raw.decode("utf-8"))
    except ValueError:
        raise ActivityFailed(f"chaoslab {func}: the answer from {url} is not JSON") from None
    if not isinstance(payload, dict) or "output" not in payload:
        raise ActivityFailed(f'chaoslab {func}: the answer from {url} has no "output"')
    return payload["output"]
