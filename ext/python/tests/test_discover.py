"""`chaos discover` sees every activity with its arguments, types and documentation."""

import chaoslab
from chaoslab import actions, probes


def test_discover_lists_every_activity():
    discovery = chaoslab.discover(discover_system=False)
    assert discovery["extension"]["name"] == "chaostoolkit-chaoslab"
    assert discovery["extension"]["version"] == chaoslab.__version__
    found = {(a["mod"], a["name"], a["type"]) for a in discovery["activities"]}
    expected = {("chaoslab.actions", n, "action") for n in actions.__all__}
    expected |= {("chaoslab.probes", n, "probe") for n in probes.__all__}
    assert found == expected
    assert all(a["doc"] for a in discovery["activities"])


def test_discovered_arguments_and_types():
    by_name = {a["name"]: a for a in chaoslab.load_exported_activities()}
    apply = by_name["apply_fault"]
    args = {a["name"]: a for a in apply["arguments"]}
    assert list(args) == [
        "kind",
        "target",
        "mode",
        "value",
        "duration",
        "parameters",
        "configuration",
        "secrets",
    ]
    assert args["kind"] == {"name": "kind", "type": "string"}
    assert args["mode"]["default"] is None
    assert args["parameters"]["type"] == "mapping"
    assert apply["return_type"] == "mapping"
    assert by_name["component_up"]["return_type"] == "boolean"
    assert by_name["consumer_lag"]["return_type"] == "integer"
    assert by_name["list_faults"]["return_type"] == "list"
