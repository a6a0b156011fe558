"""Chaos Toolkit probes that read a running chaoslab: metrics, component health, faults, the bus and
the order services.

Each probe runs inside chaoslab through ``POST {chaoslab_url}/api/chaos/call``; see the package
README for the configuration (``chaoslab_url``, ``chaoslab_timeout``) and the ``chaoslab_token`` secret.
"""

from typing import Any, Dict, List

from chaoslib.types import Configuration, Secrets

from chaoslab._client import PROBES, call

__all__ = [
    "query_metric",
    "component_health",
    "component_up",
    "list_faults",
    "describe_topic",
    "consumer_lag",
    "order_counts",
    "incidents",
]


def query_metric(query: str, configuration: Configuration = None, secrets: Secrets = None) -> Any:
    """
    Evaluate the PromQL `query` against chaoslab's metrics now and return the result as JSON (a
    number for a scalar, a list of samples for a vector).
    """
    return call(PROBES, "query_metric", {"query": query}, configuration, secrets)


def component_health(
    name: str, configuration: Configuration = None, secrets: Secrets = None
) -> Dict[str, Any]:
    """
    Return the supervisor's view of the component `name`: its state, restarts and last error.
    """
    return call(PROBES, "component_health", {"name": name}, configuration, secrets)


def component_up(name: str, configuration: Configuration = None, secrets: Secrets = None) -> bool:
    """
    Tell whether the component `name` is running; use with a `true` tolerance in a hypothesis.
    """
    return call(PROBES, "component_up", {"name": name}, configuration, secrets)


def list_faults(configuration: Configuration = None, secrets: Secrets = None) -> List[Dict[str, Any]]:
    """
    Return the records of the active faults.
    """
    return call(PROBES, "list_faults", {}, configuration, secrets)


def describe_topic(
    topic: str, configuration: Configuration = None, secrets: Secrets = None
) -> Dict[str, Any]:
    """
    Describe the bus topic `topic`: its partitions with leader, replicas and in-sync replicas.
    """
    return call(PROBES, "describe_topic", {"topic": topic}, configuration, secrets)


def consumer_lag(
    group: str, topic: str = None, configuration: Configuration = None, secrets: Secrets = None
) -> int:
    """
    Return the total lag of the consumer group `group` (records not yet committed), over `topic`
    only when given, else over every topic the group consumes.
    """
    arguments = {"group": group, "topic": topic}
    return call(PROBES, "consumer_lag", arguments, configuration, secrets)


def order_counts(configuration: Configuration = None, secrets: Secrets = None) -> Dict[str, int]:
    """
    Return how many orders the order services hold, by status.
    """
    return call(PROBES, "order_counts", {}, configuration, secrets)


def incidents(
    name: str = None, configuration: Configuration = None, secrets: Secrets = None
) -> List[Dict[str, Any]]:
    """
    Return the incident reports chaoslab's reasoner produced so far (the reference's
    `iot-incident-reports`: name, composite signal, dateTime, signals, components), only those of the
    incident `name` (e.g. "Data Loading Incident") when given.
    """
    return call(PROBES, "incidents", {"name": name}, configuration, secrets)
