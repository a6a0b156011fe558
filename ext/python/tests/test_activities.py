"""Every action and probe posts the right call and returns the server's output."""

import inspect

import pytest
from conftest import TOKEN

from chaoslab import actions, probes

# (function, keyword arguments given, expected "arguments" in the request body)
CASES = [
    (
        actions.apply_fault,
        {
            "kind": "network-delay",
            "target": "MQTT_BROKER->FLINK",
            "duration": "30s",
            "parameters": {"latency": "200ms", "jitter": "20ms"},
        },
        {
            "kind": "network-delay",
            "target": "MQTT_BROKER->FLINK",
            "duration": "30s",
            "parameters": {"latency": "200ms", "jitter": "20ms"},
        },
    ),
    (
        actions.apply_fault,
        {"kind": "process-kill", "target": "KAFKA-*", "mode": "fixed", "value": "2"},
        {"kind": "process-kill", "target": "KAFKA-*", "mode": "fixed", "value": "2"},
    ),
    (actions.apply_fault, {"kind": "kafka-broker-down"}, {"kind": "kafka-broker-down"}),
    (actions.remove_fault, {"fault_id": "f-7"}, {"fault_id": "f-7"}),
    (actions.remove_all_faults, {}, {}),
    (actions.stop_component, {"name": "FLINK"}, {"name": "FLINK"}),
    (actions.start_component, {"name": "FLINK"}, {"name": "FLINK"}),
    (actions.crash_component, {"name": "NIFI"}, {"name": "NIFI"}),
    (actions.restart_component, {"name": "SPARK"}, {"name": "SPARK"}),
    (probes.query_metric, {"query": "sum(chaoslab_component_up)"}, {"query": "sum(chaoslab_component_up)"}),
    (probes.component_health, {"name": "ELASTICSEARCH"}, {"name": "ELASTICSEARCH"}),
    (probes.component_up, {"name": "MQTT_BROKER"}, {"name": "MQTT_BROKER"}),
    (probes.list_faults, {}, {}),
    (probes.describe_topic, {"topic": "poke-orders"}, {"topic": "poke-orders"}),
    (probes.consumer_lag, {"group": "order-updater"}, {"group": "order-updater"}),
    (
        probes.consumer_lag,
        {"group": "order-updater", "topic": "poke-orders"},
        {"group": "order-updater", "topic": "poke-orders"},
    ),
    (probes.order_counts, {}, {}),
    (probes.incidents, {}, {}),
    (probes.incidents, {"name": "FLINK"}, {"name": "FLINK"}),
]


def module_of(func) -> str:
    return func.__module__


@pytest.mark.parametrize("func,kwargs,expected", CASES, ids=lambda v: getattr(v, "__name__", None))
def test_posts_the_call_and_returns_the_output(fake, ctx, func, kwargs, expected):
    output = {"from": func.__name__, "n": [1, 2.5, None, True]}
    fake.responses[func.__name__] = output
    assert func(**kwargs, **ctx) == output
    assert fake.calls == [{"module": module_of(func), "func": func.__name__, "arguments": expected}]
    assert fake.authorizations == [f"Bearer {TOKEN}"]
    assert fake.requests == ["POST /api/chaos/call"]


def test_outputs_of_every_json_type_come_back_unchanged(fake, ctx):
    fake.responses["component_up"] = False
    assert probes.component_up("FLINK", **ctx) is False
    fake.responses["consumer_lag"] = 42
    assert probes.consumer_lag("g", **ctx) == 42
    fake.responses["query_metric"] = None
    assert probes.query_metric("up", **ctx) is None
    fake.responses["order_counts"] = {"CREATED": 3, "PAID": 1}
    assert probes.order_counts(**ctx) == {"CREATED": 3, "PAID": 1}
    fake.responses["remove_all_faults"] = [{"id": "f-1"}, {"id": "f-2"}]
    assert actions.remove_all_faults(**ctx) == [{"id": "f-1"}, {"id": "f-2"}]


def test_every_function_of_both_modules_is_covered():
    covered = {(module_of(f), f.__name__) for f, _, _ in CASES}
    exported = {(m.__name__, name) for m in (actions, probes) for name in m.__all__}
    assert covered == exported


@pytest.mark.parametrize("module", [actions, probes], ids=lambda m: m.__name__)
def test_signatures_follow_the_extension_conventions(module):
    for name in module.__all__:
        func = getattr(module, name)
        params = inspect.signature(func).parameters
        assert list(params)[-2:] == ["configuration", "secrets"], name
        assert params["configuration"].default is None and params["secrets"].default is None, name
        assert all(p.annotation is not inspect.Parameter.empty for p in params.values()), name
        assert inspect.signature(func).return_annotation is not inspect.Signature.empty, name
        assert inspect.getdoc(func), name
