#!/usr/bin/env python3
"""Generate tests/contract/order_api/requests.json (the order-API request corpus).

Usage: python3 make_requests.py [OUT]   (default: ../../tests/contract/order_api/requests.json)

Each entry: {"name", "method", "path", "headers", "body"} and optionally
"body_b64" (raw request bytes, base64; then "body" is null).  "body": null
means no body and no Content-Length header; "body": "" is an empty body sent
with Content-Length: 0.  Names are unique.  The corpus is ordered: it assumes
an EMPTY order table at the start, so the ids handed out are 1, 2, ...
"""
import base64
import json
import os
import sys

R = []
JSON = {"content-type": "application/json"}
FORM = {"content-type": "application/x-www-form-urlencoded"}


def req(name, method, path, body=None, headers=None, body_b64=None):
    assert not any(r["name"] == name for r in R), name
    e = {"name": name, "method": method, "path": path,
         "headers": dict(headers or {}), "body": body}
    if body_b64 is not None:
        assert body is None
        e["body_b64"] = base64.b64encode(body_b64).decode()
    R.append(e)


def post_json(name, obj_or_text, path="/orders/", headers=JSON, method="POST"):
    body = obj_or_text if isinstance(obj_or_text, str) else json.dumps(obj_or_text, separators=(",", ":"))
    req(name, method, path, body, headers)


def order(**kw):
    base = {"user_id": 1, "pokemon": "pikachu", "country": "CO", "price": 10}
    base.update(kw)
    return base


def without(k):
    o = order()
    del o[k]
    return o


# --- A. empty store -----------------------------------------------------------
req("empty.list", "GET", "/orders/")
req("empty.list_html", "GET", "/list_orders")
req("empty.get_1", "GET", "/orders/1")
post_json("empty.put_1", {"state": "success"}, "/orders/1", method="PUT")

# --- B. plain valid creates: ids 1..6 ----------------------------------------
post_json("create.ints", {"user_id": 1, "pokemon": "pikachu", "country": "CO", "price": 10})
post_json("create.float_price", {"user_id": 2, "pokemon": "bulbasaur", "country": "US", "price": 25.5})
post_json("create.extra_fields_ignored", {"user_id": 3, "pokemon": "charmander", "country": "MX",
                                          "price": 0.1, "state": "success", "id": 99, "foo": [1, 2]})
post_json("create.negative_values", {"user_id": -5, "pokemon": "squirtle", "country": "AR", "price": -3.75})
post_json("create.zero_and_empty_strings", {"user_id": 0, "pokemon": "", "country": "", "price": 0})
post_json("create.unicode_and_html", {"user_id": 6, "pokemon": "Pok\u00e9mon <b>&\"'</b> \u96f7", "country": "\u65e5\u672c", "price": 1e-7})

# --- C. GET / PUT by id -------------------------------------------------------
req("get.existing_1", "GET", "/orders/1")
req("get.existing_6", "GET", "/orders/6")
req("get.missing_999", "GET", "/orders/999")
req("get.id_negative", "GET", "/orders/-1")
req("get.id_abc", "GET", "/orders/abc")
req("get.id_float", "GET", "/orders/1.5")
req("get.id_float_integral", "GET", "/orders/1.0")
req("get.id_plus", "GET", "/orders/+1")
req("get.id_leading_zero", "GET", "/orders/007")
req("get.id_percent_encoded", "GET", "/orders/%31")
req("get.id_space", "GET", "/orders/%201")
req("get.id_underscore", "GET", "/orders/1_0")
req("get.id_int32_max", "GET", "/orders/2147483647")
req("get.id_int32_max_plus1", "GET", "/orders/2147483648")
req("get.id_int64_max", "GET", "/orders/9223372036854775807")
req("get.id_beyond_int64", "GET", "/orders/9223372036854775808")
for st in ["success", "failed", "rejected", "reversed", "pending"]:
    post_json(f"put.state_{st}", {"state": st}, "/orders/2", method="PUT")
req("get.after_puts", "GET", "/orders/2")
post_json("put.state_success_id3", {"state": "success"}, "/orders/3", method="PUT")
post_json("put.state_failed_id4", {"state": "failed"}, "/orders/4", method="PUT")
post_json("put.state_uppercase", {"state": "SUCCESS"}, "/orders/2", method="PUT")
post_json("put.state_bogus", {"state": "bogus"}, "/orders/2", method="PUT")
post_json("put.state_null", {"state": None}, "/orders/2", method="PUT")
post_json("put.state_empty_string", {"state": ""}, "/orders/2", method="PUT")
post_json("put.missing_state", {}, "/orders/2", method="PUT")
post_json("put.extra_fields", {"state": "rejected", "user_id": 55, "price": 1}, "/orders/5", method="PUT")
post_json("put.array_body", [{"state": "success"}], "/orders/2", method="PUT")
post_json("put.string_body", '"success"', "/orders/2", method="PUT")
post_json("put.malformed_open_brace", "{", "/orders/2", method="PUT")
post_json("put.empty_body", "", "/orders/2", method="PUT")
req("put.no_body", "PUT", "/orders/2", None, JSON)
post_json("put.missing_id_valid_body", {"state": "success"}, "/orders/999", method="PUT")
post_json("put.missing_id_invalid_body", {"state": "bogus"}, "/orders/999", method="PUT")
post_json("put.id_abc_valid_body", {"state": "success"}, "/orders/abc", method="PUT")
post_json("put.id_abc_invalid_body", {"state": "bogus"}, "/orders/abc", method="PUT")
post_json("put.id_negative", {"state": "success"}, "/orders/-1", method="PUT")
post_json("put.id_beyond_int64", {"state": "success"}, "/orders/9223372036854775808", method="PUT")
post_json("put.form_body", "state=success", "/orders/2", headers=FORM, method="PUT")
req("get.after_bad_puts", "GET", "/orders/2")

# --- D. validation failures (POST /orders/) ----------------------------------
for k in ["user_id", "pokemon", "country", "price"]:
    post_json(f"invalid.missing_{k}", without(k))
post_json("invalid.empty_object", {})
post_json("invalid.missing_two", {"user_id": 1, "price": 2})
for k in ["user_id", "pokemon", "country", "price"]:
    post_json(f"invalid.null_{k}", order(**{k: None}))
post_json("invalid.all_null", {"user_id": None, "pokemon": None, "country": None, "price": None})
post_json("invalid.user_id_string_word", order(user_id="abc"))
post_json("invalid.user_id_float_fraction", order(user_id=7.5))
post_json("invalid.user_id_string_float_fraction", order(user_id="7.5"))
post_json("invalid.user_id_array", order(user_id=[1]))
post_json("invalid.user_id_hex_string", order(user_id="0x10"))
post_json("invalid.user_id_empty_string", order(user_id=""))
post_json("invalid.pokemon_int", order(pokemon=25))
post_json("invalid.country_float", order(country=1.5))
post_json("invalid.price_word", order(price="abc"))
post_json("invalid.price_comma_decimal", order(price="1,5"))
post_json("invalid.price_empty_string", order(price=""))
post_json("invalid.price_array", order(price=[1.0]))
post_json("invalid.everything_wrong", {"user_id": "x", "pokemon": 1, "country": [], "price": "y", "extra": 1})
post_json("invalid.array_body", [order()])
post_json("invalid.empty_array_body", "[]")
post_json("invalid.string_body", '"hello"')
post_json("invalid.null_body", "null")
post_json("invalid.nested_order", {"order": order()})
post_json("invalid.user_id_bool_false_price_str_word", order(user_id=False, price="ten"))

# --- E. lax coercions (accepted by pydantic v2 lax mode) ----------------------
# ids continue from 7 if all are accepted
post_json("coerce.user_id_float_integral", order(user_id=7.0, pokemon="eevee"))
post_json("coerce.user_id_true", order(user_id=True, pokemon="eevee"))
post_json("coerce.user_id_false", order(user_id=False, pokemon="eevee"))
post_json("coerce.user_id_string", order(user_id="7", pokemon="eevee"))
post_json("coerce.user_id_string_float_integral", order(user_id="7.0", pokemon="eevee"))
post_json("coerce.user_id_string_spaces", order(user_id=" 42 ", pokemon="eevee"))
post_json("coerce.user_id_string_underscore", order(user_id="1_000", pokemon="eevee"))
post_json("coerce.user_id_exponent", '{"user_id":1E2,"pokemon":"eevee","country":"CO","price":10}')
post_json("coerce.price_true", order(price=True, pokemon="snorlax"))
post_json("coerce.price_string", order(price="25.5", pokemon="snorlax"))
post_json("coerce.price_string_exponent", order(price="1e3", pokemon="snorlax"))
post_json("coerce.price_string_spaces", order(price=" 2.5 ", pokemon="snorlax"))
post_json("coerce.price_big_int", order(price=12345678901234567890, pokemon="snorlax"))
post_json("coerce.price_tiny", '{"user_id":1,"pokemon":"snorlax","country":"CO","price":5e-324}')
post_json("coerce.price_max", '{"user_id":1,"pokemon":"snorlax","country":"CO","price":1.7976931348623157e308}')
post_json("coerce.duplicate_keys_last_wins", '{"user_id":1,"user_id":2,"pokemon":"mew","pokemon":"mewtwo","country":"CO","price":10}')
post_json("coerce.pokemon_long", order(pokemon="p" * 150))
post_json("coerce.pokemon_escapes", order(pokemon="tab\there\nnewline \\ \"quote\" \u00e9 \U0001F600"))
post_json("coerce.whitespace_around_json", ' \n\t{"user_id":1,"pokemon":"ditto","country":"CO","price":10} \r\n')
post_json("coerce.user_id_int32_max", order(user_id=2147483647, pokemon="onix"))
post_json("coerce.user_id_int32_min", order(user_id=-2147483648, pokemon="onix"))
req("list.after_coercions", "GET", "/orders/?limit=100")

# --- F. content types ----------------------------------------------------------
VALID = json.dumps(order(pokemon="jigglypuff"), separators=(",", ":"))
post_json("ctype.json_charset", VALID, headers={"content-type": "application/json; charset=utf-8"})
post_json("ctype.json_uppercase", VALID, headers={"content-type": "APPLICATION/JSON"})
post_json("ctype.vnd_api_json", VALID, headers={"content-type": "application/vnd.api+json"})
post_json("ctype.text_json", VALID, headers={"content-type": "text/json"})
post_json("ctype.text_plain", VALID, headers={"content-type": "text/plain"})
post_json("ctype.no_content_type", VALID, headers={})
post_json("ctype.jsonx", VALID, headers={"content-type": "application/jsonx"})
post_json("ctype.empty_header", VALID, headers={"content-type": ""})
post_json("ctype.form_urlencoded", "user_id=1&pokemon=pikachu&country=CO&price=10", headers=FORM)
MP_BOUNDARY = "XyZb0undary"
MP = "".join(f"--{MP_BOUNDARY}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n"
             for k, v in [("user_id", "1"), ("pokemon", "pikachu"), ("country", "CO"), ("price", "10")]) + f"--{MP_BOUNDARY}--\r\n"
post_json("ctype.multipart", MP, headers={"content-type": f"multipart/form-data; boundary={MP_BOUNDARY}"})
post_json("ctype.empty_body_json", "", headers=JSON)
req("ctype.no_body_json", "POST", "/orders/", None, JSON)
req("ctype.no_body_no_ctype", "POST", "/orders/", None, {})
post_json("ctype.text_plain_garbage", "hello world", headers={"content-type": "text/plain"})
req("ctype.text_plain_invalid_utf8", "POST", "/orders/", headers={"content-type": "text/plain"},
    body_b64=b"\xff\xfe not utf8")
req("ctype.utf8_bom", "POST", "/orders/", headers=JSON, body_b64=b"\xef\xbb\xbf" + VALID.encode())
req("ctype.utf16le_json", "POST", "/orders/", headers=JSON, body_b64=VALID.encode("utf-16-le"))

# --- G. malformed JSON ----------------------------------------------------------
post_json("malformed.truncated_after_comma", '{"user_id": 1,')
post_json("malformed.open_brace", "{")
post_json("malformed.trailing_garbage", VALID + " x")
post_json("malformed.two_objects", VALID + VALID)
post_json("malformed.trailing_comma", '{"user_id":1,"pokemon":"p","country":"c","price":1,}')
post_json("malformed.unquoted_key", '{user_id: 1}')
post_json("malformed.whitespace_only", "   ")
post_json("malformed.bare_word", "hello")
post_json("malformed.unterminated_string", '{"user_id": 1, "pokemon": "pika')
post_json("malformed.multiline", '{\n  "user_id": 1,\n  "pokemon": "pikachu",\n  oops\n}')
post_json("malformed.non_ascii_before_error", '{"pokemon": "\u00e9\u00e9\u00e9", x}')
post_json("malformed.bad_escape", '{"pokemon": "\\x41"}')
post_json("malformed.control_char_in_string", '{"pokemon": "a\tb", "user_id": 1, "country": "c", "price": 1}')
post_json("malformed.leading_zero_number", '{"user_id": 01, "pokemon": "p", "country": "c", "price": 1}')
req("malformed.invalid_utf8", "POST", "/orders/", headers=JSON,
    body_b64=b'{"user_id":1,"pokemon":"\xff\xfe","country":"CO","price":10}')
req("malformed.invalid_utf8_lone_continuation", "POST", "/orders/", headers=JSON, body_b64=b"\x80")

# --- H. list queries ---------------------------------------------------------
for q in ["", "?skip=2&limit=3", "?skip=1000", "?limit=1", "?limit=9223372036854775807",
          "?state=pending", "?state=success", "?state=failed&limit=50", "?state=reversed",
          "?limit=1&limit=2", "?limit=+2", "?limit=%202", "?foo=bar&limit=2&state=failed"]:
    req("list.ok" + (q.replace("?", "_").replace("&", "_").replace("=", "-").replace("%", "pct") or "_default"), "GET", "/orders/" + q)
for q in ["?limit=abc", "?skip=1.5", "?limit=-1", "?limit=0", "?limit=1e3", "?skip=-1", "?skip=abc&limit=0",
          "?limit=", "?limit=99999999999999999999", "?state=bogus", "?state=PENDING", "?state=", "?state=Pending&limit=abc"]:
    req("list.q" + q.replace("?", "_").replace("&", "_").replace("=", "-").replace("%", "pct"), "GET", "/orders/" + q)

# --- I. routes, redirects, methods -------------------------------------------------
req("route.get_orders_no_slash", "GET", "/orders")
post_json("route.post_orders_no_slash", order(pokemon="noslash"), path="/orders")
req("route.put_orders_no_slash", "PUT", "/orders", None, {})
req("route.delete_orders_slash", "DELETE", "/orders/")
req("route.get_orders_double_slash", "GET", "/orders//")
req("route.get_double_slash_prefix", "GET", "//orders/")
req("route.get_order_trailing_slash", "GET", "/orders/1/")
req("route.get_order_trailing_slash_query", "GET", "/orders/1/?x=1")
post_json("route.put_order_trailing_slash", {"state": "success"}, "/orders/1/", method="PUT")
req("route.delete_order_by_id", "DELETE", "/orders/1")
req("route.patch_order", "PATCH", "/orders/1", '{"state":"success"}', JSON)
post_json("route.post_order_by_id", order(), path="/orders/1")
req("route.put_orders_collection", "PUT", "/orders/", '{"state":"success"}', JSON)
req("route.head_orders", "HEAD", "/orders/")
req("route.head_order", "HEAD", "/orders/1")
req("route.head_list_orders", "HEAD", "/list_orders")
req("route.head_openapi", "HEAD", "/openapi.json")
req("route.options_orders", "OPTIONS", "/orders/")
req("route.options_order", "OPTIONS", "/orders/1")
req("route.options_star", "OPTIONS", "*")
req("route.unknown_path", "GET", "/nope")
req("route.unknown_nested", "GET", "/orders/1/items")
req("route.root", "GET", "/")
req("route.create_order_slash", "GET", "/create_order/")
post_json("route.post_create_order_slash", "user_id=1&pokemon=p&country=c&price=1", path="/create_order/", headers=FORM)
req("route.list_orders_slash_query", "GET", "/list_orders/?state=pending&limit=5")
req("route.openapi_slash", "GET", "/openapi.json/")
req("route.docs_slash", "GET", "/docs/")
req("route.encoded_slash_id", "GET", "/orders/1%2F")
req("route.static_missing", "GET", "/static/images/nope.png")
req("route.static_pokeball", "GET", "/static/images/pokeball.png")
req("route.static_traversal", "GET", "/static/../app/main.py")

# --- J. HTML ------------------------------------------------------------------------
req("html.create_order_form", "GET", "/create_order")
post_json("html.create_order_valid", "user_id=11&pokemon=bulbasaur&country=CO&price=12.5", path="/create_order", headers=FORM)
post_json("html.create_order_html_chars", "user_id=12&pokemon=%3Cscript%3Ealert(1)%3C%2Fscript%3E&country=A%26B&price=3", path="/create_order", headers=FORM)
post_json("html.create_order_lax", "user_id=%2014%20&pokemon=+mew+&country=CO&price=1e1&extra=1", path="/create_order", headers=FORM)
post_json("html.create_order_multipart", MP, path="/create_order", headers={"content-type": f"multipart/form-data; boundary={MP_BOUNDARY}"})
post_json("html.create_order_missing_price", "user_id=1&pokemon=p&country=c", path="/create_order", headers=FORM)
post_json("html.create_order_missing_all", "", path="/create_order", headers=FORM)
req("html.create_order_no_body", "POST", "/create_order", None, {})
post_json("html.create_order_empty_values", "user_id=&pokemon=&country=&price=", path="/create_order", headers=FORM)
post_json("html.create_order_bad_user_id", "user_id=abc&pokemon=p&country=c&price=1", path="/create_order", headers=FORM)
post_json("html.create_order_float_user_id", "user_id=1.5&pokemon=p&country=c&price=1", path="/create_order", headers=FORM)
post_json("html.create_order_float_integral_user_id", "user_id=1.0&pokemon=p&country=c&price=1", path="/create_order", headers=FORM)
post_json("html.create_order_bad_price", "user_id=1&pokemon=p&country=c&price=abc", path="/create_order", headers=FORM)
post_json("html.create_order_user_id_true", "user_id=true&pokemon=p&country=c&price=1", path="/create_order", headers=FORM)
post_json("html.create_order_json_body", VALID, path="/create_order", headers=JSON)
post_json("html.create_order_text_plain", "user_id=1&pokemon=p&country=c&price=1", path="/create_order", headers={"content-type": "text/plain"})
post_json("html.create_order_big_user_id", "user_id=2147483648&pokemon=p&country=c&price=1", path="/create_order", headers=FORM)
req("html.list_orders", "GET", "/list_orders")
req("html.list_orders_pending", "GET", "/list_orders?state=pending")
req("html.list_orders_uppercase_state", "GET", "/list_orders?state=PENDING")
req("html.list_orders_bogus_state", "GET", "/list_orders?state=bogus")
req("html.list_orders_empty_state", "GET", "/list_orders?state=")
req("html.list_orders_html_state", "GET", "/list_orders?state=%3Cb%3E%22x")
req("html.list_orders_page2", "GET", "/list_orders?skip=5&limit=5")
req("html.list_orders_page_state", "GET", "/list_orders?skip=1&limit=2&state=pending")
req("html.list_orders_skip_not_multiple", "GET", "/list_orders?skip=3&limit=5")
req("html.list_orders_bad_limit", "GET", "/list_orders?limit=abc")
req("html.list_orders_zero_limit", "GET", "/list_orders?limit=0")
req("html.list_orders_negative_skip", "GET", "/list_orders?skip=-1")
req("html.list_orders_huge_limit", "GET", "/list_orders?limit=99999999999999999999")

# --- K. OpenAPI / docs -------------------------------------------------------------
req("openapi.json", "GET", "/openapi.json")
req("openapi.docs", "GET", "/docs")
req("openapi.redoc", "GET", "/redoc")
req("openapi.oauth2_redirect", "GET", "/docs/oauth2-redirect")
post_json("openapi.post_openapi", "{}", path="/openapi.json")

# --- L. server errors: out-of-range ints, non-finite floats ------------------------
post_json("bigint.user_id_int32_max_plus1", order(user_id=2147483648, pokemon="big"))
post_json("bigint.user_id_int32_min_minus1", order(user_id=-2147483649, pokemon="big"))
post_json("bigint.user_id_beyond_int64", order(user_id=9223372036854775808, pokemon="big"))
post_json("bigint.user_id_huge_string", order(user_id="123456789012345678901234567890", pokemon="big"))
post_json("bigint.user_id_float_1e20", '{"user_id":1e20,"pokemon":"big","country":"CO","price":1}')
post_json("bigint.user_id_float_1e400", '{"user_id":1e400,"pokemon":"big","country":"CO","price":1}')
post_json("servererr.pokemon_nul_char", order(pokemon="nul\u0000char"))
req("list.after_bigint", "GET", "/orders/?skip=0&limit=100")
post_json("nonfinite.price_string_nan", order(price="NaN", pokemon="nan"))
req("list.after_nan_string", "GET", "/orders/?state=pending&limit=100")
post_json("nonfinite.price_literal_nan", '{"user_id":1,"pokemon":"nan","country":"CO","price":NaN}')
post_json("nonfinite.price_literal_infinity", '{"user_id":1,"pokemon":"inf","country":"CO","price":Infinity}')
post_json("nonfinite.price_overflow_1e400", '{"user_id":1,"pokemon":"inf","country":"CO","price":1e400}')
post_json("nonfinite.price_string_inf", order(price="inf", pokemon="inf"))
post_json("nonfinite.user_id_literal_nan", '{"user_id":NaN,"pokemon":"nan","country":"CO","price":1}')
post_json("html.create_order_nan_price", "user_id=1&pokemon=p&country=c&price=nan", path="/create_order", headers=FORM)
req("list.after_nonfinite", "GET", "/orders/?limit=100")
req("list.after_nonfinite_html", "GET", "/list_orders?limit=100")

# --- M. delete all ------------------------------------------------------------------
req("delete.all", "DELETE", "/orders")
req("delete.list_after", "GET", "/orders/")
req("delete.get_1_after", "GET", "/orders/1")
req("delete.list_html_after", "GET", "/list_orders")
post_json("delete.create_after", order(pokemon="phoenix"))
req("delete.list_after_create", "GET", "/orders/")

if __name__ == "__main__":
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "contract", "order_api", "requests.json")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w", encoding="utf-8") as f:
        json.dump(R, f, indent=2, ensure_ascii=False)
        f.write("\n")
    print(f"{len(R)} requests -> {out}", file=sys.stderr)
