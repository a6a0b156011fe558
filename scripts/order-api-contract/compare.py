#!/usr/bin/env python3
"""Compare two recordings made by record.py (e.g. the original vs chaoslab).

Usage: compare.py EXPECTED.json ACTUAL.json [REQUESTS.json] [--raw]

Before comparing, both sides are normalised the way a contract test would:
  * values of keys named "timestamp" -> "<ts>",
  * datetimes inside text bodies (HTML: "2026-12-07 03:14:23.504472") -> "<ts>",
  * each recording's base_url (in location headers and HTML img src) -> "<base>".
Bodies compare as parsed JSON (key order ignored) unless --raw is given and
both recordings carry "raw" texts.  Prints one block per differing request and
a final "N agree, M differ" line; exit status 1 when anything differs.
"""
import json
import re
import sys

TS = re.compile(r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:\.\d+)?")


def norm(x, base):
    if isinstance(x, dict):
        return {k: ("<ts>" if k == "timestamp" else norm(v, base)) for k, v in x.items()}
    if isinstance(x, list):
        return [norm(v, base) for v in x]
    if isinstance(x, str):
        return TS.sub("<ts>", x.replace(base, "<base>"))
    return x


def view(rec, base, use_raw):
    out = {k: v for k, v in rec.items() if k not in ("raw", "name")}
    if use_raw and "raw" in rec:
        out["body"] = rec["raw"]
    return norm(out, base)


def main(argv):
    use_raw = "--raw" in argv
    args = [a for a in argv[1:] if not a.startswith("--")]
    exp_doc, act_doc = (json.load(open(p, encoding="utf-8")) for p in args[:2])
    reqs = {r["name"]: r for r in json.load(open(args[2], encoding="utf-8"))} if len(args) > 2 else {}
    act = {r["name"]: r for r in act_doc["responses"]}
    agree = differ = 0
    for e in exp_doc["responses"]:
        a = act.get(e["name"])
        ve = view(e, exp_doc["base_url"], use_raw)
        va = view(a, act_doc["base_url"], use_raw) if a else None
        if ve == va:
            agree += 1
            continue
        differ += 1
        r = reqs.get(e["name"], {})
        print(f"### {e['name']}")
        if r:
            print(f"request: {r['method']} {r['path']} headers={json.dumps(r['headers'])} "
                  f"body={json.dumps(r['body'] if r.get('body_b64') is None else 'b64:' + r['body_b64'], ensure_ascii=False)}")
        print("expected:", json.dumps(ve, ensure_ascii=False, sort_keys=True)[:2000])
        print("actual:  ", json.dumps(va, ensure_ascii=False, sort_keys=True)[:2000])
        print()
    print(f"{agree} agree, {differ} differ")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
