"""Chain functions that are real runc instances, created through the daemon's API.

Two host instances (``a``, ``b``) and function instances of the built-in templates
(:mod:`fluidedge.chains.functions`) on one ``ovs`` instance network. A function's legs are
plugged isolated (the template's ``isolated`` interfaces): while no chain uses it, nothing of
the network reaches it although it bridges its legs (no loop, no flood), and once a chain
takes it, the classified traffic crosses it once each way and comes back.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from fluidedge.chains import functions
from fluidedge.core.client import Client
from fluidedge.linux import netns as netns_mod
from fluidedge.ovs import bridges as ovs_bridges
from fluidedge.ovs.vsctl import Vsctl
from tests.e2e.chains.cleanup import purge_daemon_state
from tests.fixtures.daemon import DaemonHandle
from tests.fixtures.ovs_datapath import DATAPATH
from tests.fixtures.wait import wait_for

pytestmark = pytest.mark.root

TAG = f"fn{os.getpid() % 100000}"
NET = TAG
NS = f"fe{TAG}-sw"
BRIDGE = f"fe{TAG}"[:15]
SUBNET = "198.18.46"


@pytest.fixture
def fn_daemon(
    daemon_factory: Callable[..., DaemonHandle], tmp_path: Path
) -> Iterator[DaemonHandle]:
    state = tmp_path / "state"
    netns_mod.create(NS)
    try:
        handle = daemon_factory(
            state_dir=state,
            parts={
                "instances": {
                    "pool_scale": 1,
                    "memory_mb": 1024,
                    "builtin_templates": False,
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
                "chains": {"poll_interval": 0.2},
            },
        )
        try:
            yield handle
        finally:
            handle.stop()
    finally:
        purge_daemon_state(state, NS)
        netns_mod.delete(NS)


def nsexec(pid: int, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """``argv`` (a host program) in instance ``pid``'s network namespace."""
    return subprocess.run(
        ["nsenter", "-t", str(pid), "-n", *argv],
        capture_output=True, text=True, timeout=60, check=check,
    )  # fmt: skip


def rx(pid: int, ifname: str) -> int:
    """Packets ``ifname`` of instance ``pid`` received (its kernel's count)."""
    links = json.loads(nsexec(pid, "ip", "-j", "-s", "link", "show", "dev", ifname).stdout)
    return int(links[0]["stats64"]["rx"]["packets"])


def ping(pid: int, address: str, count: int) -> int:
    """Echo replies ``count`` pings from instance ``pid`` got."""
    done = nsexec(
        pid, "ping", "-n", "-q", "-c", str(count), "-i", "0.2", "-W", "2", address, check=False
    )
    for line in done.stdout.splitlines():
        if "received" in line:
            return int(line.split(",")[1].split()[0])
    return 0


def host_template(client: Client) -> None:
    client.post(
        "/v1/templates",
        {
            "name": f"{TAG}-host",
            "command": ["/bin/busybox", "sleep", "2147483647"],
            "interfaces": [{"name": "eth0", "network": NET}],
            "pool": {"size": 0},
        },
    )


def host(client: Client, name: str, index: int) -> dict[str, Any]:
    body = {
        "name": name,
        "template": f"{TAG}-host",
        "interfaces": {"eth0": {"addresses": [f"{SUBNET}.{index}/24"]}},
    }
    made: dict[str, Any] = client.post("/v1/instances", body)
    return made


def ports(instance: dict[str, Any]) -> dict[str, str]:
    """Interface name -> its switch port (the veth's host end)."""
    return {i["name"]: i["host_ifname"] for i in instance["interfaces"]}


def tag_of(vsctl: Vsctl, port: str) -> str:
    return vsctl.run("get", "Port", port, "tag").strip()


def test_counter_instance_in_a_chain(fn_daemon: DaemonHandle) -> None:
    client = fn_daemon.client()
    try:
        _counter_scenario(fn_daemon, client)
    finally:
        client.close()


def _counter_scenario(handle: DaemonHandle, client: Client) -> None:
    ovs_bridges.configure(Path(handle.config["state_dir"]) / "instances")
    vsctl = Vsctl(ovs_bridges.switch(NS))
    host_template(client)
    client.post("/v1/templates", functions.counter(f"{TAG}-ctr", NET))
    a, b = host(client, "a", 1), host(client, "b", 2)
    ctr = client.post("/v1/instances", {"name": "ctr", "template": f"{TAG}-ctr"})
    legs = ports(ctr)

    # Plugged isolated: each leg an access port of its own VLAN from the start, although the
    # function bridges them and no pair names them yet.
    for leg in legs.values():
        assert tag_of(vsctl, leg) == str(ovs_bridges.isolation_vlan(vsctl.ofport(leg)))
    assert ping(a["pid"], f"{SUBNET}.2", 5) == 5  # the learning switch, direct
    # Nothing of a's and b's traffic (their ARP broadcasts included) reached the function.
    assert rx(ctr["pid"], "eth0") == 0
    assert rx(ctr["pid"], "eth1") == 0

    client.post(
        "/v1/chains/port-pairs", {"id": "ctr", "ingress": legs["eth0"], "egress": legs["eth1"]}
    )
    client.post("/v1/chains/port-pair-groups", {"id": "count", "port_pairs": ["ctr"]})
    client.post(
        "/v1/chains/flow-classifiers",
        {"id": "ab", "protocol": "icmp", "logical_source_port": ports(a)["eth0"],
         "logical_destination_port": ports(b)["eth0"]},
    )  # fmt: skip
    client.post(
        "/v1/chains", {"id": "ab", "port_pair_groups": ["count"], "flow_classifiers": ["ab"]}
    )
    assert ping(a["pid"], f"{SUBNET}.2", 20) == 20
    # Each echo request entered the function once on its ingress, each reply once on its
    # egress (exactly: nothing else of the network reaches an isolated port).
    assert rx(ctr["pid"], "eth0") == 20
    assert rx(ctr["pid"], "eth1") == 20
    # The legs stay isolated: the chain's flows alone reach them.
    for leg in legs.values():
        assert tag_of(vsctl, leg) == str(ovs_bridges.isolation_vlan(vsctl.ofport(leg)))

    # The function instance goes: the closed chain drops its traffic; without the chain,
    # a and b talk directly again.
    client.delete("/v1/instances/ctr")
    wait_for(lambda: ping(a["pid"], f"{SUBNET}.2", 1) == 0, 30, "the closed chain dropping")
    client.delete("/v1/chains/ab")
    assert ping(a["pid"], f"{SUBNET}.2", 3) == 3
    for name in ("a", "b"):
        client.delete(f"/v1/instances/{name}")
