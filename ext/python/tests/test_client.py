"""Where URL, token and timeout come from, and every way a call can fail."""

import socket

import pytest
from chaoslib.exceptions import ActivityFailed
from conftest import TOKEN
from fake_chaoslab import Reply

from chaoslab import _client, actions, probes


def test_server_error_text_is_raised_as_activity_failed(fake, ctx):
    fake.responses["remove_fault"] = Reply(404, {"error": "no active fault f-9"})
    with pytest.raises(ActivityFailed) as e:
        actions.remove_fault("f-9", **ctx)
    assert str(e.value) == "chaoslab remove_fault: HTTP 404: no active fault f-9"


def test_non_200_success_status_is_a_failure(fake, ctx):
    fake.responses["apply_fault"] = Reply(201, {"output": {"id": "f-1"}})
    with pytest.raises(ActivityFailed, match="HTTP 201"):
        actions.apply_fault("process-kill", target="FLINK", **ctx)


def test_non_json_error_body_is_quoted_shortly(fake, ctx):
    fake.responses["order_counts"] = Reply(502, b"<html>" + b"x" * 1000 + b"</html>")
    with pytest.raises(ActivityFailed) as e:
        probes.order_counts(**ctx)
    message = str(e.value)
    assert message.startswith("chaoslab order_counts: HTTP 502: <html>xxx") and message.endswith("...")
    assert len(message) < 400


def test_wrong_token_fails_with_the_server_reason(fake, ctx):
    ctx["secrets"] = {"chaoslab_token": "not-the-token"}
    with pytest.raises(ActivityFailed) as e:
        probes.list_faults(**ctx)
    assert str(e.value) == "chaoslab list_faults: HTTP 401: invalid credentials"
    assert "not-the-token" not in str(e.value)
    assert fake.calls == []


def test_missing_token_sends_no_header_and_says_how_to_give_one(fake, ctx):
    ctx["secrets"] = None
    with pytest.raises(
        ActivityFailed, match="no token given: set the chaoslab_token secret or CHAOSLAB_TOKEN"
    ):
        probes.list_faults(**ctx)
    assert fake.authorizations == [None]


def test_200_without_output_or_json_is_a_failure(fake, ctx):
    fake.responses["list_faults"] = Reply(200, {"result": []})
    with pytest.raises(ActivityFailed, match='has no "output"'):
        probes.list_faults(**ctx)
    fake.responses["list_faults"] = Reply(200, b"not json")
    with pytest.raises(ActivityFailed, match="is not JSON"):
        probes.list_faults(**ctx)


def test_redirects_are_not_followed_with_the_token(fake, ctx):
    fake.responses["list_faults"] = Reply(307, {"error": "moved"}, {"Location": fake.url + "/elsewhere"})
    with pytest.raises(ActivityFailed, match="HTTP 307: moved"):
        probes.list_faults(**ctx)
    fake.responses["order_counts"] = Reply(302, {"error": "moved"}, {"Location": fake.url + "/elsewhere"})
    with pytest.raises(ActivityFailed, match="HTTP 302: moved"):
        probes.order_counts(**ctx)
    assert fake.requests == ["POST /api/chaos/call", "POST /api/chaos/call"]


def test_slow_server_times_out_with_the_configured_timeout(fake, ctx):
    fake.responses["query_metric"] = Reply(200, {"output": 1}, delay=1.0)
    ctx["configuration"]["chaoslab_timeout"] = "0.2"
    with pytest.raises(ActivityFailed, match=r"no answer from .* within 0.2 s"):
        probes.query_metric("up", **ctx)


@pytest.mark.parametrize("bad", ["soon", 0, -1, [1]])
def test_bad_timeout_is_refused_before_any_request(fake, ctx, bad):
    ctx["configuration"]["chaoslab_timeout"] = bad
    with pytest.raises(ActivityFailed, match="chaoslab_timeout"):
        probes.list_faults(**ctx)
    assert fake.requests == []


def test_unreachable_server_is_a_failure():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # Nothing listens on `port` any more.
    with pytest.raises(ActivityFailed, match=rf"cannot reach http://127.0.0.1:{port}/api/chaos/call"):
        probes.list_faults(configuration={"chaoslab_url": f"http://127.0.0.1:{port}"}, secrets={})


def test_environment_supplies_url_and_token(fake, monkeypatch):
    monkeypatch.setenv("CHAOSLAB_URL", fake.url + "/")
    monkeypatch.setenv("CHAOSLAB_TOKEN", TOKEN)
    assert probes.component_up("FLINK") is True
    assert fake.authorizations == [f"Bearer {TOKEN}"]


def test_configuration_and_secrets_win_over_the_environment(fake, ctx, monkeypatch):
    monkeypatch.setenv("CHAOSLAB_URL", "http://127.0.0.1:9/never")
    monkeypatch.setenv("CHAOSLAB_TOKEN", "env-token")
    assert probes.component_up("FLINK", **ctx) is True
    assert fake.authorizations == [f"Bearer {TOKEN}"]


def test_defaults():
    assert _client._base_url(None) == "http://127.0.0.1:8080"
    assert _client._base_url({}) == _client.DEFAULT_URL
    assert _client._timeout(None) == 30.0
    assert _client._token(None) is None


def test_truncated_answer_is_a_failure(fake, ctx):
    # Content-Length promises more than is sent, then the connection closes.
    fake.responses["list_faults"] = Reply(
        200, b'{"output": [', {"Content-Length": "500", "Connection": "close"}
    )
    with pytest.raises(ActivityFailed, match="chaoslab list_faults: broken answer from .*IncompleteRead"):
        probes.list_faults(**ctx)
