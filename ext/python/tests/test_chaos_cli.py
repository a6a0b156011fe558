"""The `chaos` CLI validates and runs examples/sample.json against the fake chaoslab.

Runs only where chaostoolkit (the CLI) is installed next to this Python; skipped otherwise.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import TOKEN

pytest.importorskip("chaostoolkit", reason="the chaostoolkit CLI is not installed")

SAMPLE = Path(__file__).resolve().parent.parent / "examples" / "sample.json"
CHAOS = [sys.executable, "-m", "chaostoolkit"]


def chaos(*args, env=None, cwd=None):
    return subprocess.run(
        CHAOS + ["--no-version-check", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=cwd,
    )


def test_sample_validates(tmp_path):
    result = chaos("--log-file", str(tmp_path / "chaos.log"), "validate", str(SAMPLE), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "experiment syntax and semantic look valid" in result.stdout + result.stderr


def test_sample_runs_against_the_fake_chaoslab(fake, tmp_path):
    env = dict(os.environ, CHAOSLAB_URL=fake.url, CHAOSLAB_TOKEN=TOKEN)
    journal_path = tmp_path / "journal.json"
    result = chaos(
        "--log-file",
        str(tmp_path / "chaos.log"),
        "run",
        "--journal-path",
        str(journal_path),
        str(SAMPLE),
        env=env,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert fake.funcs() == [
        "component_up",
        "stop_component",
        "component_up",
        "start_component",
        "component_up",
        "remove_all_faults",
    ]
    assert set(fake.authorizations) == {f"Bearer {TOKEN}"}
    journal = json.loads(journal_path.read_text())
    assert journal["status"] == "completed" and journal["deviated"] is False
    outputs = [run["output"] for run in journal["run"]]
    assert outputs == [
        {"name": "MQTT_BROKER", "state": "stopped"},
        False,
        {"name": "MQTT_BROKER", "state": "running"},
    ]
    assert TOKEN not in (tmp_path / "chaos.log").read_text()


def test_token_from_a_chaostoolkit_secret_reaches_the_server(fake, tmp_path):
    experiment = json.loads(SAMPLE.read_text())
    experiment["secrets"] = {"chaoslab": {"chaoslab_token": {"type": "env", "key": "SECRET_SOURCE"}}}
    for activity in experiment["steady-state-hypothesis"]["probes"] + experiment["method"]:
        activity["provider"]["secrets"] = ["chaoslab"]
    experiment["rollbacks"] = []
    path = tmp_path / "with-secrets.json"
    path.write_text(json.dumps(experiment))
    env = {k: v for k, v in os.environ.items() if k != "CHAOSLAB_TOKEN"}
    env.update(CHAOSLAB_URL=fake.url, SECRET_SOURCE=TOKEN)
    result = chaos(
        "--log-file",
        str(tmp_path / "chaos.log"),
        "run",
        "--journal-path",
        str(tmp_path / "journal.json"),
        str(path),
        env=env,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert len(fake.calls) == 5
    assert set(fake.authorizations) == {f"Bearer {TOKEN}"}


def test_run_fails_when_chaoslab_refuses_the_token(fake, tmp_path):
    env = dict(os.environ, CHAOSLAB_URL=fake.url, CHAOSLAB_TOKEN="wrong-token")
    result = chaos(
        "--log-file",
        str(tmp_path / "chaos.log"),
        "run",
        "--journal-path",
        str(tmp_path / "journal.json"),
        str(SAMPLE),
        env=env,
        cwd=tmp_path,
    )
    assert result.returncode != 0
    assert fake.calls == []
    assert "invalid credentials" in (tmp_path / "chaos.log").read_text()
