#!/usr/bin/env python3
"""Replay the order-API request corpus against a server and record its answers.

Usage: record.py BASE_URL REQUESTS.json OUT.json [--raw] [--meta KEY=VALUE ...]

Stdlib only. Each request is sent in order on a fresh connection, exactly as
given: "path" is sent verbatim as the request target (query included), the
"headers" object is sent as is (the recorder adds only Host, and
Content-Length when there is a body), redirects are never followed.

Request body encoding (requests.json):
  "body": null        -> no body, no Content-Length header
  "body": "<text>"    -> the text encoded as UTF-8, with Content-Length
  "body_b64": "<b64>" -> raw bytes (e.g. invalid UTF-8); "body" is then null

Recorded per request (OUT.json "responses", in corpus order):
  name, status,
  headers: the response headers content-type, allow, location (lower-cased
           names, only those present),
  body:    parsed JSON when the content-type is JSON (application/json or
           +json) and it parses; otherwise the text (UTF-8); "" for an empty
           body or a HEAD answer,
  body_b64 instead of body when the body is not valid UTF-8 and
  body_sha256 + body_length instead of body for non-text content
  types (images, octet-stream),
  raw (only with --raw): the body text exactly as sent, for JSON answers
  too (shows key order and the compact serialisation).
Top level: "base_url", "recorded_with" (from --meta KEY=VALUE), "responses".
Output is written with sorted keys and a 2-space indent.
"""
import base64
import hashlib
import http.client
import json
import sys
import time
import urllib.parse


def is_json_type(ct):
    mt = ct.split(";", 1)[0].strip().lower()
    return mt == "application/json" or mt.endswith("+json")


def is_text_type(ct):
    mt = ct.split(";", 1)[0].strip().lower()
    return (mt.startswith("text/") or is_json_type(ct) or mt in (
        "application/javascript", "application/xml", "image/svg+xml") or mt == "")


def send(base, r, timeout):
    u = urllib.parse.urlsplit(base)
    conn = http.client.HTTPConnection(u.hostname, u.port or 80, timeout=timeout)
    if r.get("body_b64") is not None:
        body = base64.b64decode(r["body_b64"])
    elif r.get("body") is not None:
        body = r["body"].encode("utf-8")
    else:
        body = None
    conn.putrequest(r["method"], r["path"], skip_accept_encoding=True)
    for k, v in r.get("headers", {}).items():
        conn.putheader(k, v)
    if body is not None:
        conn.putheader("Content-Length", str(len(body)))
    conn.endheaders()
    if body:
        conn.send(body)
    t0 = time.monotonic()
    resp = conn.getresponse()
    data = resp.read()
    elapsed = time.monotonic() - t0
    hdrs = {k.lower(): v for k, v in resp.getheaders()}
    conn.close()
    return resp.status, hdrs, data, elapsed


def record_one(base, r, with_raw, timeout):
    status, hdrs, data, elapsed = send(base, r, timeout)
    out = {"name": r["name"], "status": status,
           "headers": {k: hdrs[k] for k in ("content-type", "allow", "location") if k in hdrs}}
    ct = hdrs.get("content-type", "")
    if not is_text_type(ct):
        out["body_sha256"] = hashlib.sha256(data).hexdigest()
        out["body_length"] = len(data)
        return out, elapsed
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        out["body_b64"] = base64.b64encode(data).decode()
        return out, elapsed
    body = text
    if is_json_type(ct) and text:
        try:
            body = json.loads(text)
        except ValueError:
            body = text
    out["body"] = body
    if with_raw:
        out["raw"] = text
    return out, elapsed


def main(argv):
    import argparse
    ap = argparse.ArgumentParser(description="Record the order API's answers to a request corpus.")
    ap.add_argument("base_url")
    ap.add_argument("requests")
    ap.add_argument("out")
    ap.add_argument("--raw", action="store_true", help="also record each body's exact text")
    ap.add_argument("--meta", nargs="*", default=[], metavar="KEY=VALUE",
                    help="entries of the top-level recorded_with object")
    a = ap.parse_args(argv[1:])
    meta = dict(kv.partition("=")[::2] for kv in a.meta)
    base = a.base_url.rstrip("/")
    with open(a.requests, encoding="utf-8") as f:
        reqs = json.load(f)
    responses = []
    for r in reqs:
        try:
            rec, elapsed = record_one(base, r, a.raw, timeout=60)
        except Exception as e:  # connection-level failure: record it, go on
            rec, elapsed = {"name": r["name"], "error": f"{type(e).__name__}: {e}"}, 0.0
        print(f"{rec.get('status', 'ERR')} {elapsed:6.3f}s {r['method']} {r['path']} [{r['name']}]", file=sys.stderr)
        responses.append(rec)
    doc = {"base_url": base, "recorded_with": meta, "responses": responses}
    with open(a.out, "w", encoding="utf-8") as f:
        json.dump(doc, f, indent=2, sort_keys=True, ensure_ascii=False)
        f.write("\n")
    print(f"{len(responses)} responses -> {a.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
