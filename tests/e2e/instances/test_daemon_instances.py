"""The instance manager inside a real daemon: API, restart and kill -9 re-adoption, density."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from fluidedge.core.client import Client, ClientError
from fluidedge.instances import runc
from fluidedge.instances.timing import PHASES
from fluidedge.linux.proc import run
from tests.fixtures.daemon import DaemonHandle, wait_pools
from tests.fixtures.prom import sample
from tests.fixtures.wait import wait_until

from .conftest import BRIDGE

pytestmark = pytest.mark.root


def _runc_ids(handle: DaemonHandle) -> dict[str, str]:
    root = runc.Runc(Path(handle.config["state_dir"]) / "instances" / "runc")
    return {c["id"]: c["status"] for c in root.list()}


def _wait_pools(client: Any, timeout: float = 60) -> list[dict[str, Any]]:
    return wait_pools(lambda: list(client.get("/v1/pools")), timeout)


WEB = {
    "name": "web",
    "command": ["/bin/busybox", "httpd", "-f", "-p", "8080", "-h", "/.fe/www"],
    "files": {"www/index.html": "edge app {name}\n"},
    "interfaces": [{"name": "eth0", "network": "apps"}],
    "readiness": {"kind": "tcp", "port": 8080},
    "pool": {"size": 2},
}


def test_restart_and_kill9_readopt_then_delete_cleans(inst_daemon: DaemonHandle) -> None:
    client = inst_daemon.client()
    client.post("/v1/templates", WEB)
    _wait_pools(client)
    made = client.post(
        "/v1/instances",
        {
            "name": "app1",
            "template": "web",
            "interfaces": {"eth0": {"addresses": ["198.18.30.5/24"]}},
        },
    )
    assert made["path"] == "warm"
    assert set(made["timing"]) >= {
        "accept",
        "placement",
        "shell",
        "config",
        "network",
        "start",
        "ready",
    }
    idle = client.post("/v1/instances", {"name": "idle1", "template": "idle"})
    pools = _wait_pools(client)
    before = _runc_ids(inst_daemon)
    expected = 2 + sum(p["target"] for p in pools)
    assert len(before) == expected

    for crash in (False, True):
        client.close()
        if crash:
            inst_daemon.kill9()
            inst_daemon.start()
        else:
            inst_daemon.restart()
        client = inst_daemon.client()
        again = client.get("/v1/instances/app1")
        assert (again["id"], again["pid"], again["state"]) == (made["id"], made["pid"], "running")
        assert again["timing"] == made["timing"]
        assert client.get("/v1/instances/idle1")["pid"] == idle["pid"]
        # Re-adopted shells, none re-made (counters are per daemon run).
        assert [(p["template"], p["ready"]) for p in _wait_pools(client)] == [
            (p["template"], p["ready"]) for p in pools
        ]
        assert _runc_ids(inst_daemon) == before  # no orphans, no duplicates
        # The address is still known to be taken.
        with pytest.raises(ClientError) as taken:
            client.post(
                "/v1/instances",
                {
                    "name": "dup",
                    "template": "web",
                    "interfaces": {"eth0": {"addresses": ["198.18.30.5/24"]}},
                },
            )
        assert taken.value.status == 409

    # Pause survives a crash too, then DELETE cleans container, cgroups, veths, address.
    client.post("/v1/instances/app1/pause")
    client.close()
    inst_daemon.kill9()
    inst_daemon.start()
    client = inst_daemon.client()
    assert client.get("/v1/instances/app1")["state"] == "paused"
    host_if = made["interfaces"][0]["host_ifname"]
    assert host_if in run(["ip", "-br", "link"]).stdout
    client.delete("/v1/instances/app1")
    assert made["id"] not in _runc_ids(inst_daemon)
    assert runc.leftover_cgroups(made["id"]) == []
    assert host_if not in run(["ip", "-br", "link"]).stdout
    with pytest.raises(ClientError) as gone:
        client.get("/v1/instances/app1")
    assert gone.value.status == 404
    reuse = client.post(
        "/v1/instances",
        {
            "name": "app2",
            "template": "web",
            "interfaces": {"eth0": {"addresses": ["198.18.30.5/24"]}},
        },
    )
    assert reuse["state"] == "running"
    # It came from a re-adopted shell whose launcher was waiting on its go FIFO across the
    # kill -9, and the launcher has exec'd the workload.
    assert reuse["path"] == "warm"
    assert reuse["id"] in before
    assert not (runc.exe_of(reuse["pid"]) or "").endswith("fe-launcher")
    client.close()


def _status(call: Callable[[], Any]) -> tuple[int, str]:
    try:
        call()
    except ClientError as exc:
        return exc.status, exc.detail
    return 200, ""


def test_api_errors_templates_logs_metrics(inst_daemon: DaemonHandle) -> None:
    client = inst_daemon.client()
    assert (
        _status(lambda: client.post("/v1/instances", {"name": "x", "template": "nope"}))[0] == 404
    )
    code, why = _status(lambda: client.post("/v1/instances", {"name": "X!", "template": "idle"}))
    assert (code, "name" in why) == (400, True)
    code, why = _status(
        lambda: client.post(
            "/v1/instances",
            {
                "name": "x",
                "template": "idle",
                "interfaces": {"eth0": {"addresses": ["300.1.1.1/24"]}},
            },
        )
    )
    assert code == 400
    assert "invalid address" in why
    code, why = _status(
        lambda: client.post(
            "/v1/instances", {"name": "x", "template": "idle", "resources": {"memory_mb": 4096}}
        )
    )
    assert code == 409
    assert "memory" in why
    # Sizes beyond what the launcher takes: 400 naming the limit (never silently dropped).
    code, why = _status(
        lambda: client.post(
            "/v1/instances",
            {"name": "x", "template": "idle", "env": {f"V{i}": "1" for i in range(300)}},
        )
    )
    assert (code, "at most 256" in why) == (400, True)
    code, why = _status(
        lambda: client.post(
            "/v1/instances",
            {"name": "x", "template": "idle", "command": ["/bin/busybox", *["x" * 4096] * 40]},
        )
    )
    assert (code, "at most 131071 bytes" in why) == (400, True)
    stats = client.get("/v1/stats")
    assert stats["cgroup"]["mode"] in ("v1", "hybrid", "v2")
    assert stats["launcher"] == "c"
    code, why = _status(
        lambda: client.post(
            "/v1/templates",
            {**WEB, "name": "w2", "interfaces": [{"name": "eth0", "network": "nope"}]},
        )
    )
    assert code == 404
    # Template in use cannot be deleted; logs; pause/resume state errors.
    client.post(
        "/v1/templates",
        {
            "name": "talker",
            "command": ["/bin/busybox", "sh", "-c", "echo hello-$FLUIDEDGE_INSTANCE; sleep 1000"],
            "pool": {"size": 1},
        },
    )
    client.post("/v1/instances", {"name": "t1", "template": "talker"})
    assert _status(lambda: client.delete("/v1/templates/talker"))[0] == 409
    # empty (None) until the workload has written its line: ready means exec'd, not echoed
    assert wait_until(lambda: "hello-t1" in (client.get("/v1/instances/t1/logs") or ""), timeout=10)
    assert _status(lambda: client.post("/v1/instances/t1/resume"))[0] == 409
    begin = time.perf_counter()
    paused = client.post("/v1/instances/t1/pause")
    wall_ms = (time.perf_counter() - begin) * 1000
    assert paused["state"] == "paused"
    assert 0 < paused["op_ms"] <= wall_ms  # the operation's own time, inside the request's
    assert _status(lambda: client.post("/v1/instances/t1/pause"))[0] == 409
    client.post("/v1/instances/t1/resume")
    client.delete("/v1/instances/t1")
    client.delete("/v1/templates/talker")
    assert "talker" not in {t["name"] for t in client.get("/v1/templates")}
    assert _status(lambda: client.get("/v1/instances/t1"))[0] == 404
    metrics = client.get("/metrics")
    started = sample(metrics, "fluidedge_instance_phase_seconds_count", path="cold", phase="start")
    assert started is not None
    assert started >= 1
    paused = sample(metrics, "fluidedge_instance_pause_seconds_count", op="pause")
    assert paused is not None
    assert paused >= 1
    client.close()


@pytest.mark.slow
def test_density_thirty_idle_instances(inst_daemon: DaemonHandle) -> None:
    client = inst_daemon.client()
    _wait_pools(client)
    names = [f"d{i}" for i in range(30)]
    for name in names:
        view = client.post("/v1/instances", {"name": name, "template": "idle"})
        # every request's breakdown accounts for its whole time, however full the host gets
        timing = view["timing"]
        assert timing["total"] > 0
        assert timing["total"] == pytest.approx(sum(timing[p] for p in PHASES), abs=0.05)
    listed = client.get("/v1/instances")
    # thirty at once: all running, each its own process, all alive together
    assert sorted(i["name"] for i in listed) == sorted(names)
    assert all(i["state"] == "running" for i in listed)
    pids = {i["pid"] for i in listed}
    assert len(pids) == 30
    assert all(runc.pid_alive(pid) for pid in pids)
    for name in names:
        client.delete(f"/v1/instances/{name}")
    ids = {i["id"] for i in listed}
    assert not ids & set(_runc_ids(inst_daemon))
    client.close()


def _page(pid: int, address: str) -> str:
    # curl: Debian's busybox wget crashes on -T (and would wait for ever without it)
    argv = ["nsenter", "-t", str(pid), "-n", "--", "curl", "-s", "-m", "2", address]
    return run(argv, check=False).stdout


def _two_apps(client: Client, first: int) -> tuple[dict[str, Any], str]:
    """The web template, apps app1 and app2 at 198.18.30.``first`` and the next address, app2
    fetching app1's page; app2's view and that page's URL."""
    client.post("/v1/templates", WEB)
    _wait_pools(client)
    made = {}
    for name, host in (("app1", first), ("app2", first + 1)):
        made[name] = client.post(
            "/v1/instances",
            {
                "name": name,
                "template": "web",
                "interfaces": {"eth0": {"addresses": [f"198.18.30.{host}/24"]}},
            },
        )
    page = f"http://198.18.30.{first}:8080/"
    assert _page(made["app2"]["pid"], page) == "edge app app1\n"
    return made["app2"], page


def test_a_bridge_deleted_under_the_daemon_comes_back(inst_daemon: DaemonHandle) -> None:
    """``ip link del`` of the network's bridge: within ``switch_check_interval_s`` the bridge
    is back with the instances' ports, and they reach each other again."""
    client = inst_daemon.client()
    app2, page = _two_apps(client, 5)
    run(["ip", "link", "del", BRIDGE])
    assert wait_until(lambda: _page(app2["pid"], page) == "edge app app1\n", 15)
    said = f"bridge {BRIDGE} was deleted from outside; created again"
    assert said in inst_daemon.log()
    client.close()


def test_a_veth_deleted_under_the_daemon_comes_back(inst_daemon: DaemonHandle) -> None:
    """``ip link del`` of an instance's veth: within ``switch_check_interval_s`` it is made
    again with the instance's address, and its neighbour reaches it again."""
    client = inst_daemon.client()
    app2, page = _two_apps(client, 7)
    host = client.get("/v1/instances/app1")["interfaces"][0]["host_ifname"]
    run(["ip", "link", "del", host])
    assert wait_until(lambda: _page(app2["pid"], page) == "edge app app1\n", 15)
    said = f"veth {host} (eth0 on network"
    assert said in inst_daemon.log()
    client.close()
