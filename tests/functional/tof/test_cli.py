"""``fluidedge service ...`` and ``fluidedge tunnels`` against a real daemon."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import httpx
import pytest
from typer.testing import CliRunner

from fluidedge.cli import app
from fluidedge.core.store import Store
from fluidedge.tof import cli as tof_cli
from fluidedge.tof.catalog import ServiceCatalog
from fluidedge.tof.models import Match, Service
from fluidedge.tof.tunnel_pages import row_marker
from tests.fixtures.daemon import DaemonFactory
from tests.functional.tof.test_tunnel_pages import learning_daemon

pytestmark = pytest.mark.root


def _cli(url: str, token: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "FLUIDEDGE_URL": url, "FLUIDEDGE_TOKEN": token}
    return subprocess.run(
        [sys.executable, "-m", "fluidedge", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_cli_mirrors_the_api(daemon_factory: DaemonFactory) -> None:
    daemon = daemon_factory(parts={"tof": {"backend": "none"}})

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return _cli(daemon.url, daemon.token, *args)

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


def test_delete_by_a_shared_service_ip_is_refused_until_one_service_is_left(
    daemon_factory: DaemonFactory,
) -> None:
    """Two classified services on one address (stored as the ME platform stores them): the
    address alone names neither, so DELETE by it is a 409 naming both, through the API and the
    CLI, and deletes nothing, even after a restart; by name it works, then the address names
    the one left."""
    daemon = daemon_factory(parts={"tof": {"backend": "none"}}, start=False)
    daemon.state_dir.mkdir(mode=0o700, parents=True)
    store = Store(daemon.store_path)
    try:
        catalog = ServiceCatalog(store, lambda services: None)
        catalog.add(
            Service("mec-web", "198.18.50.1", "198.19.0.10", match=Match((6,), ((80, 80),)))
        )
        catalog.add(
            Service("mec-dns", "198.18.50.1", "198.19.0.11", match=Match((17,), ((53, 53),)))
        )
    finally:
        store.close()
    daemon.start()
    headers = {"Authorization": f"Bearer {daemon.token}"}
    with httpx.Client(base_url=daemon.url, headers=headers, timeout=30) as client:
        r = client.delete("/service/198.18.50.1")
        assert r.status_code == 409
        assert "'mec-dns', 'mec-web'" in r.json()["detail"]
        assert client.get("/service/198.18.50.1/instances").status_code == 409
        refused = _cli(daemon.url, daemon.token, "service", "delete", "198.18.50.1")
        assert refused.returncode == 1
        assert "409" in refused.stderr
        assert "name the service" in refused.stderr
        daemon.restart()
        assert {s["name"] for s in client.get("/service").json()} == {"mec-web", "mec-dns"}
        assert client.delete("/service/mec-web").json()["name"] == "mec-web"
        deleted = _cli(daemon.url, daemon.token, "service", "delete", "198.18.50.1")
        assert "deleted mec-dns (198.18.50.1)" in deleted.stdout
        daemon.restart()
        assert client.get("/service").json() == []


def test_tunnels_walks_the_pages_or_prints_one(
    daemon_factory: DaemonFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``fluidedge tunnels`` follows the ``Link`` headers of pages (here of 3, not 500, so
    7 bearers take three); ``--limit N [--after MARKER]`` prints one page and, on stderr,
    the ``--after`` of the next, as ``fluidedge instance ls`` does."""
    with learning_daemon(daemon_factory, "c") as env:
        env.learn(*range(10, 17))
        api = env.http.get("/tunnels").json()
        # In process, to page by 3: all 7 rows printed means the links were followed.
        monkeypatch.setattr(tof_cli, "TUNNELS_PAGE", 3)
        runner = CliRunner(
            env={"FLUIDEDGE_URL": env.daemon.url, "FLUIDEDGE_TOKEN": env.daemon.token}
        )
        everything = runner.invoke(app, ["tunnels", "--json"])
        assert everything.exit_code == 0, everything.output
        rows = json.loads(everything.stdout)
        assert [row_marker(r) for r in rows] == sorted(row_marker(r) for r in api)

        def cli(*args: str) -> subprocess.CompletedProcess[str]:
            return _cli(env.daemon.url, env.daemon.token, *args)

        walked: list[dict[str, object]] = []
        after: list[str] = []
        for _ in range(3):
            one = cli("tunnels", "--json", "--limit", "3", *after)
            assert one.returncode == 0, one.stderr
            page = json.loads(one.stdout)
            walked += page
            more = [line for line in one.stderr.splitlines() if line.startswith("more: ")]
            if not more:
                break
            assert more == [f"more: --after {row_marker(page[-1])}"]
            after = more[0].removeprefix("more: ").split()
        assert len(walked) == 7
        assert [row_marker(r) for r in walked] == [row_marker(r) for r in rows]
        table = cli("tunnels", "--limit", "2")
        assert table.returncode == 0
        assert "tunnels" in table.stdout
        assert "more: --after" in table.stderr
        bad = cli("tunnels", "--limit", "2", "--after", "198.18.100.10")
        assert bad.returncode == 1
        assert "400" in bad.stderr
        assert "after" in bad.stderr
