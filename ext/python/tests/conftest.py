"""Shared fixtures: a fake chaoslab on a free loopback port, and a clean CHAOSLAB_* environment."""

from typing import Any, Dict

import pytest
from fake_chaoslab import FakeChaoslab

TOKEN = "tok-3f9a1c"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    """The tests decide where URL and token come from, not the machine's environment."""
    monkeypatch.delenv("CHAOSLAB_URL", raising=False)
    monkeypatch.delenv("CHAOSLAB_TOKEN", raising=False)


@pytest.fixture
def fake():
    server = FakeChaoslab(token=TOKEN).start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def ctx(fake) -> Dict[str, Any]:
    """The keyword arguments Chaos Toolkit would pass: configuration and secrets aimed at `fake`."""
    return {
        "configuration": {"chaoslab_url": fake.url, "chaoslab_timeout": 5},
        "secrets": {"chaoslab_token": TOKEN},
    }
