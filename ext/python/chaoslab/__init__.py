"""Chaos Toolkit extension for chaoslab: actions and probes that run inside a live chaoslab through
its control API (``POST /api/chaos/call``)."""

import logging
from typing import List

from chaoslib.discovery.discover import (
    discover_actions,
    discover_probes,
    initialize_discovery_result,
)
from chaoslib.types import DiscoveredActivities, Discovery

__all__ = ["__version__", "discover", "load_exported_activities"]
__version__ = "0.1.0"

logger = logging.getLogger("chaostoolkit")


def discover(discover_system: bool = True) -> Discovery:
    """
    Describe what this extension offers, for `chaos discover`. `discover_system` is accepted as the
    discovery protocol requires; chaoslab's own state is read by the probes at run time instead.
    """
    logger.info("Discovering capabilities from chaostoolkit-chaoslab")
    discovery = initialize_discovery_result("chaostoolkit-chaoslab", __version__, "chaoslab")
    discovery["activities"].extend(load_exported_activities())
    return discovery


def load_exported_activities() -> List[DiscoveredActivities]:
    """
    The actions and probes this extension exports, with their arguments and documentation.
    """
    activities = []
    activities.extend(discover_actions("chaoslab.actions"))
    activities.extend(discover_probes("chaoslab.probes"))
    return activities
