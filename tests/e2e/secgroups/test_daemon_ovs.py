"""Security groups on an ``ovs`` instance network inside a real daemon: instances on our own
Open vSwitch, filtered by the OpenFlow renderer through the same REST API as Linux-bridge
networks; a rule removal takes effect; a restart adopts the running switch and re-installs the
same table (nothing duplicated, nothing stale)."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from fluidedge.linux import netns as netns_mod
from fluidedge.ovs import bridges as ovs_bridges
from fluidedge.ovs.ofctl import Ofctl
from tests.e2e.secgroups.scenario import get, purge, run, web_and_clients
from tests.fixtures.daemon import DaemonHandle
from tests.fixtures.ovs_datapath import DATAPATH
from tests.fixtures.wait import wait_until

pytestmark = pytest.mark.root

NET = f"so{os.getpid() % 100000}"
NS = f"feso{os.getpid() % 100000}-sw"  # the switch's own namespace (one netdev datapath each)
BRIDGE = f"feso{os.getpid() % 100000}"[:15]
SUBNET = "198.18.43"


@pytest.fixture
def ovs_daemon(daemon_factory: Callable[..., DaemonHandle]) -> Iterator[DaemonHandle]:
    netns_mod.create(NS)
    try:
        yield from _daemon(daemon_factory)
    finally:
        netns_mod.delete(NS)


def _daemon(daemon_factory: Callable[..., DaemonHandle]) -> Iterator[DaemonHandle]:
    handle = daemon_factory(
        parts={
            "instances": {
                "pool_scale": 1,
                "memory_mb": 2048,
                "ovs_datapath": DATAPATH,
                "networks": {
                    NET: {
                        "bridge": BRIDGE,
                        "netns": NS,
                        "subnet": f"{SUBNET}.0/24",
                        "driver": "ovs",
                    }
                },
            },
            "secgroups": {},
        }
    )
    try:
        yield handle
    finally:
        handle.stop()
        purge(handle)  # deletes the ovs bridge, which stops our switch with it


def _flows(handle: DaemonHandle) -> list[str]:
    state = Path(handle.config["state_dir"]) / "instances"
    ovs_bridges.configure(state)
    return sorted(Ofctl(ovs_bridges.switch(NS), BRIDGE).dump())


def test_ovs_network_filtered_through_the_api_and_restart(ovs_daemon: DaemonHandle) -> None:
    client = ovs_daemon.client()
    assert client.get(f"/v1/networks/{NET}")["driver"] == "ovs"
    scene = web_and_clients(client, NET, SUBNET, "so")
    app_ip, c1, c2 = scene.app_ip, scene.c1, scene.c2
    flows = _flows(ovs_daemon)
    assert any("conjunction(" in f for f in flows)  # the remote group, as a conjunction
    assert any("ct(table=72,zone=NXM_NX_REG6[0..15])" in f for f in flows)

    client.close()
    ovs_daemon.restart()
    client = ovs_daemon.client()
    assert _flows(ovs_daemon) == flows  # re-installed whole: nothing duplicated or stale
    assert get(c1["pid"], app_ip) == "edge app app"
    assert get(c2["pid"], app_ip) == ""

    client.delete("/v1/security-groups/web/rules/http")
    assert get(c1["pid"], app_ip) == ""
    for name in ("app", "c1", "c2"):
        client.delete(f"/v1/instances/{name}")
    client.close()


@pytest.mark.parametrize("victim", ["ovs-vswitchd", "ovsdb-server"])
def test_a_switch_killed_under_the_daemon_comes_back_with_its_rules(
    ovs_daemon: DaemonHandle, victim: str
) -> None:
    """``kill -9`` of the switch's daemon (an OOM kill): the instances part restarts the switch
    within its check interval, the security groups put their table back before the bridge
    gets any other flow, and the same policy holds: c1 gets the page again, c2 still not."""
    client = ovs_daemon.client()
    scene = web_and_clients(client, NET, SUBNET, "sk")
    app_ip, c1, c2 = scene.app_ip, scene.c1, scene.c2
    flows = _flows(ovs_daemon)
    run = Path(ovs_daemon.config["state_dir"]) / "instances" / "ovs" / f"ns-{NS}" / "run"
    pid = int((run / f"{victim}.pid").read_text())
    os.kill(pid, signal.SIGKILL)

    assert wait_until(lambda: get(c1["pid"], app_ip) == "edge app app", 30)
    assert get(c2["pid"], app_ip) == ""
    assert pid not in {int(p.read_text()) for p in run.glob("*.pid")}
    assert _flows(ovs_daemon) == flows  # the same table, nothing missing, nothing duplicated
    log = ovs_daemon.log()
    assert f"{victim} of the switch of namespace {NS} died" in log
    assert f"the switch of bridge {BRIDGE} was restarted" in log  # the groups' table again
    assert f"the switch of namespace {NS} is whole again" in log
    for name in ("app", "c1", "c2"):
        client.delete(f"/v1/instances/{name}")
    client.close()


def test_a_switch_that_died_while_the_daemon_was_down_is_adopted_at_its_start(
    ovs_daemon: DaemonHandle,
) -> None:
    """The switch killed while no daemon runs (a host's OOM kill of both): its bridge's
    interface stays behind, still ours; the next start restarts the switch from its database
    and restores the same rules (a restart restores all declared state)."""
    client = ovs_daemon.client()
    scene = web_and_clients(client, NET, SUBNET, "sd")
    app_ip, c1, c2 = scene.app_ip, scene.c1, scene.c2
    flows = _flows(ovs_daemon)
    client.close()
    ovs_daemon.stop()
    run = Path(ovs_daemon.config["state_dir"]) / "instances" / "ovs" / f"ns-{NS}" / "run"
    os.kill(int((run / "ovs-vswitchd.pid").read_text()), signal.SIGKILL)
    assert wait_until(lambda: get(c1["pid"], app_ip) == "", 10)  # nothing forwards

    ovs_daemon.start()
    client = ovs_daemon.client()
    assert client.get(f"/v1/networks/{NET}")["driver"] == "ovs"
    assert wait_until(lambda: get(c1["pid"], app_ip) == "edge app app", 30)
    assert get(c2["pid"], app_ip) == ""
    assert _flows(ovs_daemon) == flows
    for name in ("app", "c1", "c2"):
        client.delete(f"/v1/instances/{name}")
    client.close()


def test_an_instance_made_again_by_its_restart_policy_keeps_its_policy(
    ovs_daemon: DaemonHandle,
) -> None:
    """``restart = "always"``: the workload killed, the instance is made again under its id,
    with the same device name and a new OpenFlow port. Its filter follows the new port: the
    client in ``clients`` gets its page and the one outside nothing, as before. (The number
    kept from before named a port that was gone: nobody reached it. After a reboot, where the
    device had no number at all when the table was made, it was left unfiltered and open to
    every neighbour: tests/functional/daemon/test_reboot.py.)"""
    client = ovs_daemon.client()
    scene = web_and_clients(client, NET, SUBNET, "sr")
    app2 = run(client, SUBNET, "app2", "srweb", 6, restart="always")
    assert wait_until(lambda: get(scene.c1["pid"], f"{SUBNET}.6") == "edge app app2", 30)
    assert get(scene.c2["pid"], f"{SUBNET}.6") == ""
    os.kill(app2["pid"], signal.SIGKILL)

    def again() -> bool:
        now = client.get("/v1/instances/app2")
        return bool(now["state"] == "running" and now["pid"] != app2["pid"])

    assert wait_until(again, 30), client.get("/v1/instances/app2")
    assert client.get("/v1/instances/app2")["restarts"] == 1
    assert wait_until(lambda: get(scene.c1["pid"], f"{SUBNET}.6") == "edge app app2", 30)
    assert get(scene.c2["pid"], f"{SUBNET}.6") == ""  # still filtered
    client.close()
