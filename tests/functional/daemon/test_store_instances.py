"""The store and the instance manager together, in a real daemon with real runc containers.

- kill -9 during 100 concurrent creates: every acknowledged instance is there after the
  restart, with the same container and process; nothing is orphaned or destroyed;
- backup and restore round trip: a restored daemon serves the backup's services, re-adopts its
  instances, and keeps (reports, never destroys) a workload started after the backup until an
  operator purges it; a fresh daemon restored from the same file serves the same services.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from fluidedge.core.store import Store, companions
from fluidedge.instances import runc
from fluidedge.instances.manager import InstancesConfig, Manager
from tests.fixtures.daemon import TOKEN, DaemonFactory, DaemonHandle, wait_pools

pytestmark = [pytest.mark.root, pytest.mark.slow]


def _purge(handle: DaemonHandle) -> None:
    """Destroy every container the daemon's state names, and the orphans."""
    handle.stop()
    manager = Manager(
        InstancesConfig(pool_scale=0, prepare_workers=1),
        Store(handle.store_path, reset=True),
        handle.state_dir / "instances",
    )
    with contextlib.suppress(Exception):
        manager.start()
    manager.purge()


@pytest.fixture
def daemons(daemon_factory: DaemonFactory) -> Iterator[list[DaemonHandle]]:
    made: list[DaemonHandle] = []
    try:
        yield made
    finally:
        for handle in made:
            with contextlib.suppress(Exception):
                _purge(handle)


def _runc_ids(handle: DaemonHandle) -> set[str]:
    return {c["id"] for c in runc.Runc(handle.state_dir / "instances" / "runc").list()}


def _http(handle: DaemonHandle) -> httpx.Client:
    return httpx.Client(
        base_url=handle.url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=120
    )


def test_kill9_during_100_concurrent_creates_loses_no_acknowledged_instance(
    daemon_factory: DaemonFactory, daemons: list[DaemonHandle]
) -> None:
    daemon = daemon_factory({"instances": {"pool_scale": 1, "memory_mb": 4096}})
    daemons.append(daemon)
    acked: dict[str, dict[str, Any]] = {}
    lock = threading.Lock()
    enough = threading.Event()

    def create(index: int) -> None:
        try:
            with _http(daemon) as http:
                answer = http.post("/v1/instances", json={"name": f"k{index}", "template": "idle"})
        except httpx.HTTPError:
            return  # the daemon died under this request: not acknowledged
        if answer.status_code == 201:
            with lock:
                acked[f"k{index}"] = answer.json()
                if len(acked) >= 25:
                    enough.set()

    with ThreadPoolExecutor(max_workers=20) as pool:
        futures = [pool.submit(create, i) for i in range(100)]
        enough.wait(timeout=240)
        daemon.kill9()
        for future in futures:
            future.result()
    assert 25 <= len(acked) < 100  # killed in the middle of the burst

    daemon.start()
    with _http(daemon) as http:
        listed = {i["name"]: i for i in http.get("/v1/instances").json()}
        orphans = http.get("/v1/orphans").json()
        pools = http.get("/v1/pools").json()
    for name, made in acked.items():
        again = listed.get(name)
        assert again is not None, f"acknowledged {name} is gone"
        assert (again["id"], again["pid"], again["state"]) == (made["id"], made["pid"], "running")
        assert runc.pid_alive(made["pid"])
    assert orphans == []
    # Every container in our runc root is an instance or a pooled shell the store names.
    running = {i["id"] for i in listed.values() if i["state"] != "exited"}
    assert running <= _runc_ids(daemon)
    shells = _runc_ids(daemon) - running
    assert len(shells) <= sum(p["target"] for p in pools)


def _cli(handle: DaemonHandle, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fluidedge", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "FLUIDEDGE_URL": handle.url, "FLUIDEDGE_TOKEN": TOKEN},
    )


BRIDGE = f"fds{os.getpid() % 100000}"[:15]
NET_TEMPLATE = {
    "name": "net1",
    "command": ["/bin/busybox", "sleep", "100000"],
    "interfaces": [{"name": "eth0", "network": "apps"}],
    "readiness": {"kind": "started"},
    "pool": {"size": 2},
}


def _link_exists(name: str) -> bool:
    shown = subprocess.run(["ip", "link", "show", name], capture_output=True, check=False)
    return shown.returncode == 0


def _service(index: int) -> dict[str, str]:
    return {
        "name": f"svc{index}",
        "serviceIP": f"198.18.60.{index + 1}",
        "applicationIP": f"198.19.60.{index + 1}",
    }


def test_backup_restore_round_trip_readopts_and_keeps_later_workloads(
    daemon_factory: DaemonFactory, daemons: list[DaemonHandle], tmp_path: Path
) -> None:
    instances = {
        "pool_scale": 0.5,
        "memory_mb": 2048,
        "networks": {"apps": {"bridge": BRIDGE, "subnet": "198.18.31.0/24"}},
    }
    daemon = daemon_factory({"tof": {"backend": "none"}, "instances": instances})
    daemons.append(daemon)
    with _http(daemon) as http:
        for index in range(3):
            assert http.post("/service", json=_service(index)).status_code == 200
        made = {
            name: http.post("/v1/instances", json={"name": name, "template": "idle"}).json()
            for name in ("i1", "i2")
        }
        assert http.post("/v1/templates", json=NET_TEMPLATE).status_code == 201
        wait_pools(lambda: list(http.get("/v1/pools").json()))
    backup = tmp_path / "backup.sqlite"
    out = _cli(daemon, "state", "backup", str(backup), "--config", str(daemon.config_path))
    assert out.returncode == 0, out.stderr
    assert backup.stat().st_mode & 0o777 == 0o600
    with _http(daemon) as http:  # after the backup: the restore will not know these
        # From a shell the backup names as pooled: its row says "shell", its container runs.
        late = http.post(
            "/v1/instances",
            json={
                "name": "late",
                "template": "net1",
                "interfaces": {"eth0": {"addresses": ["198.18.31.7/24"]}},
            },
        ).json()
        assert late["path"] == "warm"
        late_veth = late["interfaces"][0]["host_ifname"]
        assert http.post("/service", json=_service(9)).status_code == 200

    # The store is lost; the daemon refuses to come up empty over it; restore it.
    daemon.stop()
    for file in companions(daemon.store_path):
        file.unlink(missing_ok=True)
    assert "is missing, but a store was created there" in daemon.start_refused()
    out = _cli(daemon, "state", "restore", str(backup), "--config", str(daemon.config_path))
    assert out.returncode == 0, out.stderr
    daemon.start()

    with _http(daemon) as http:
        services = {s["name"] for s in http.get("/service").json()}
        instances = {i["name"]: i for i in http.get("/v1/instances").json()}
        orphans = {o["id"]: o for o in http.get("/v1/orphans").json()}
    assert services == {"svc0", "svc1", "svc2"}
    assert set(instances) == {"i1", "i2"}
    for name, before in made.items():
        again = instances[name]
        assert (again["id"], again["pid"], again["state"]) == (
            before["id"],
            before["pid"],
            "running",
        )
    # The workload started after the backup is kept and reported, not destroyed.
    assert late["id"] in orphans
    assert orphans[late["id"]]["kind"] == "container"
    assert orphans[late["id"]]["pid"] == late["pid"]
    assert orphans[late["id"]]["veths"] == [late_veth]
    assert runc.pid_alive(late["pid"])
    assert _link_exists(late_veth)
    assert late["id"] in _cli(daemon, "pool", "orphans", "--json").stdout
    gauge = re.search(
        r"^fluidedge_orphans ([0-9.]+)$", httpx.get(f"{daemon.url}/metrics").text, re.M
    )
    assert gauge is not None
    assert float(gauge.group(1)) == len(orphans)

    purged = _cli(daemon, "pool", "purge", "--orphans")
    assert purged.returncode == 0, purged.stderr
    assert late["id"] in purged.stdout
    assert late["id"] not in _runc_ids(daemon)
    assert runc.leftover_cgroups(late["id"]) == []
    assert not _link_exists(late_veth)
    with _http(daemon) as http:
        assert http.get("/v1/orphans").json() == []
        assert {i["name"] for i in http.get("/v1/instances").json()} == {"i1", "i2"}

    # A fresh daemon (new state_dir) restored from the same file serves the same services.
    fresh = daemon_factory({"tof": {"backend": "none"}}, start=False)
    out = _cli(fresh, "state", "restore", str(backup), "--config", str(fresh.config_path))
    assert out.returncode == 0, out.stderr
    fresh.start()
    names = {s["name"] for s in httpx.get(f"{fresh.url}/service").json()}
    assert names == {"svc0", "svc1", "svc2"}
    marker = json.loads((fresh.state_dir / "fluidedge.sqlite.created").read_text())
    assert marker["restored_from"] == str(backup)


def test_store_removed_while_running_refuses_creates_and_deletes_and_keeps_workloads(
    daemon_factory: DaemonFactory, daemons: list[DaemonHandle]
) -> None:
    daemon = daemon_factory({"instances": {"pool_scale": 0.5, "memory_mb": 2048}})
    daemons.append(daemon)
    with _http(daemon) as http:
        made = http.post("/v1/instances", json={"name": "w1", "template": "idle"}).json()
        for file in companions(daemon.store_path):
            file.unlink()
        refused = http.delete("/v1/instances/w1")
        assert refused.status_code == 503
        assert "was removed while the daemon ran" in refused.json()["detail"]
        created = http.post("/v1/instances", json={"name": "w2", "template": "idle"})
        assert created.status_code == 503
        # The workload the store would still name was not destroyed; nothing half-made.
        assert runc.pid_alive(made["pid"])
        assert made["id"] in _runc_ids(daemon)
        assert {i["name"] for i in http.get("/v1/instances").json()} == {"w1"}
