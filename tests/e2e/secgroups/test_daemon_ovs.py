"""Security groups on an ``ovs`` instance network inside a real daemon: instances on our own
Open vSwitch, filtered by the OpenFlow renderer through the same REST API as Linux-bridge
networks; a rule removal takes effect; a restart adopts the running switch and re-installs the
same table (nothing duplicated, nothing stale)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from fluidedge.linux import netns as netns_mod
from fluidedge.ovs import bridges as ovs_bridges
from fluidedge.ovs.ofctl import Ofctl
from tests.e2e.secgroups.scenario import get, purge, web_and_clients
from tests.fixtures.daemon import DaemonHandle
from tests.fixtures.ovs_datapath import DATAPATH

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
