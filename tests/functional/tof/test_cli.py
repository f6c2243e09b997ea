"""``fluidedge service ...`` and ``fluidedge tunnels`` against a real daemon."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.fixtures.daemon import DaemonFactory

pytestmark = pytest.mark.root


def test_cli_mirrors_the_api(daemon_factory: DaemonFactory) -> None:
    daemon = daemon_factory(parts={"tof": {"backend": "none"}})
    env = {**os.environ, "FLUIDEDGE_URL": daemon.url, "FLUIDEDGE_TOKEN": daemon.token}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "fluidedge", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    assert cli("service", "add", "web", "198.18.50.1", "198.19.0.10").returncode == 0
    listed = json.loads(cli("service", "list", "--json").stdout)
    assert listed == [{"name": "web", "serviceIP": "198.18.50.1", "applicationIP": "198.19.0.10"}]
    assert cli("service", "update", "web", "--application-ip", "198.19.0.11").returncode == 0
    assert json.loads(cli("service", "list", "--json").stdout)[0]["applicationIP"] == "198.19.0.11"
    conflict = cli("service", "add", "other", "198.18.50.1", "198.19.0.10")
    assert conflict.returncode == 1
    assert "409" in conflict.stderr
    bad = cli("service", "add", "x", "198.18.050.1", "198.19.0.10")
    assert bad.returncode == 1
    assert "400" in bad.stderr
    assert "deleted web" in cli("service", "delete", "198.18.50.1").stdout
    assert json.loads(cli("tunnels", "--json").stdout) == []
    assert "purged 0" in cli("tunnels", "--purge").stdout
    events = json.loads(cli("tunnels", "--events", "--json").stdout)
    assert [(e["event"], e["reason"], e["bearers"]) for e in events] == [("purged", "api", 0)]
    table = cli("tunnels", "--events").stdout
    assert "purged" in table
    assert "0 bearers" in table
    assert json.loads(cli("service", "list", "--json").stdout) == []
