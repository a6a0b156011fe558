"""Chaos Toolkit actions that change a running chaoslab: faults from its catalogue and component lifecycle.

Each action runs inside chaoslab through ``POST {chaoslab_url}/api/chaos/call``; see the package
README for the configuration (``chaoslab_url``, ``chaoslab_timeout``) and the ``chaoslab_token`` secret.
"""

from typing import Any, Dict, List

from chaoslib.types import Configuration, Secrets

from chaoslab._client import ACTIONS, call

__all__ = [
    "apply_fault",
    "remove_fault",
    "remove_all_faults",
    "stop_component",
    "start_component",
    "crash_component",
    "restart_component",
]


def apply_fault(
    kind: str,
    target: str = None,
    mode: str = None,
    value: str = None,
    duration: str = None,
    parameters: Dict[str, Any] = None,
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> Dict[str, Any]:
    """
    Apply a fault from chaoslab's catalogue and return its record (with the fault's `id`).

    `kind` names the fault (`network-delay`, `network-partition`, `process-kill`, `process-pause`,
    `clock-offset`, `io-latency`, `http-abort`, `kafka-broker-down`, ...). `target` selects what it
    hits: a component or link name, a glob such as `KAFKA-*`, or `kind:<kind>`; some kinds have a
    default target. `mode` picks among the matches as Chaos Mesh does: `one`, `all`, `fixed`,
    `fixed-percent` or `random-max-percent`, the last three taking their number from `value`.
    `duration` (e.g. `30s`) removes the fault by itself once elapsed; without it the fault stays until
    removed. `parameters` are the kind's own settings (e.g. `{"latency": "200ms"}`).
    """
    arguments = {
        "kind": kind,
        "target": target,
        "mode": mode,
        "value": value,
        "duration": duration,
        "parameters": parameters,
    }
    return call(ACTIONS, "apply_fault", arguments, configuration, secrets)


def remove_fault(
    fault_id: str, configuration: Configuration = None, secrets: Secrets = None
) -> Dict[str, Any]:
    """
    Remove the active fault `fault_id` (as returned by `apply_fault`) and return its final record.
    """
    return call(ACTIONS, "remove_fault", {"fault_id": fault_id}, configuration, secrets)


def remove_all_faults(configuration: Configuration = None, secrets: Secrets = None) -> List[Dict[str, Any]]:
    """
    Remove every active fault and return their records; a typical rollback.
    """
    return call(ACTIONS, "remove_all_faults", {}, configuration, secrets)


def stop_component(name: str, configuration: Configuration = None, secrets: Secrets = None) -> Dict[str, Any]:
    """
    Stop the component `name` gracefully and return its new state; it stays stopped until started.
    """
    return call(ACTIONS, "stop_component", {"name": name}, configuration, secrets)


def start_component(
    name: str, configuration: Configuration = None, secrets: Secrets = None
) -> Dict[str, Any]:
    """
    Start the stopped component `name` and return its new state.
    """
    return call(ACTIONS, "start_component", {"name": name}, configuration, secrets)


def crash_component(
    name: str, configuration: Configuration = None, secrets: Secrets = None
) -> Dict[str, Any]:
    """
    Crash the component `name` (no graceful shutdown) and return its new state; its supervisor's
    restart policy decides what happens next.
    """
    return call(ACTIONS, "crash_component", {"name": name}, configuration, secrets)


def restart_component(
    name: str, configuration: Configuration = None, secrets: Secrets = None
) -> Dict[str, Any]:
    """
    Stop then start the component `name` and return its new state.
    """
    return call(ACTIONS, "restart_component", {"name": name}, configuration, secrets)
