"""Instances on two fluidedge nodes (each its own daemon, chassis and state directory) on the
same ``ovn`` network reach each other over geneve; tenants' networks with the same subnet on
both nodes stay apart."""

from __future__ import annotations

import re
import subprocess
from typing import Any

import pytest

from fluidedge.core.client import Client
from tests.fixtures.ovn_nodes import OvnNodes
from tests.fixtures.wait import wait_until

pytestmark = pytest.mark.root

NODES = {"count": 2, "members": 3}


def ping(pid: int, dst: str) -> bool:
    done = subprocess.run(
        ["nsenter", "-t", str(pid), "-n", "ping", "-c", "1", "-W", "1", "-q", dst],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    return done.returncode == 0


def create(client: Client, name: str, template: str, address: str) -> dict[str, Any]:
    body = {"name": name, "template": template, "interfaces": {"eth0": {"addresses": [address]}}}
    made: dict[str, Any] = client.post("/v1/instances", body)
    assert made["state"] == "running", made
    return made


def test_instances_on_two_nodes_reach_each_other(nodes: OvnNodes) -> None:
    net = f"{nodes.prefix}-a"[-15:]
    nodes.network(net, "10.61.0.0/24")
    nodes.template("sleeper", net)
    a, b = nodes.nodes
    ia = create(a.client(), "ia", "sleeper", "10.61.0.2/24")
    ib = create(b.client(), "ib", "sleeper", "10.61.0.3/24")
    # each is a logical port bound on its own node's chassis
    port_a = f"{a.name}.{ia['interfaces'][0]['host_ifname']}"
    port_b = f"{b.name}.{ib['interfaces'][0]['host_ifname']}"
    for port in (port_a, port_b):
        nodes.lab.nbctl.run("wait-until", "Logical_Switch_Port", port, "up=true", wait="hv")
    assert nodes.bound_on(port_a) == a.name
    assert nodes.bound_on(port_b) == b.name
    assert wait_until(lambda: ping(ia["pid"], "10.61.0.3"), timeout=20)
    assert ping(ib["pid"], "10.61.0.2")


def test_tenants_with_the_same_subnet_on_both_nodes_stay_apart(nodes: OvnNodes) -> None:
    red, blue = f"{nodes.prefix}-r"[-15:], f"{nodes.prefix}-b"[-15:]
    for net in (red, blue):
        nodes.network(net, "10.62.0.0/24")
    nodes.template("red", red)
    nodes.template("blue", blue)
    a, b = nodes.nodes
    red_a = create(a.client(), "ra", "red", "10.62.0.2/24")
    red_b = create(b.client(), "rb", "red", "10.62.0.3/24")
    blue_a = create(a.client(), "ba", "blue", "10.62.0.4/24")
    blue_b = create(b.client(), "bb", "blue", "10.62.0.3/24")  # the same address as red's rb
    assert wait_until(lambda: ping(red_a["pid"], "10.62.0.3"), timeout=20)
    assert wait_until(lambda: ping(blue_a["pid"], "10.62.0.3"), timeout=20)
    # red's and blue's 10.62.0.3 are different instances: each sees only its own network
    assert not ping(red_b["pid"], "10.62.0.4")  # blue_a, across the tenants' line
    assert not ping(blue_b["pid"], "10.62.0.2")  # red_a
    assert ping(blue_b["pid"], "10.62.0.4")


def test_losing_the_ovn_leaders_under_traffic_loses_nothing(nodes: OvnNodes) -> None:
    """The daemons' data plane does not depend on the central: the NB and SB leaders and the
    active northd killed while an instance on A pings one on B lose no packet; a creation
    through a daemon afterwards (its ovn-nbctl skips the dead members) binds and answers."""
    net = f"{nodes.prefix}-l"[-15:]
    nodes.network(net, "10.64.0.0/24")
    nodes.template("sleeper", net)
    a, b = nodes.nodes
    ia = create(a.client(), "ia", "sleeper", "10.64.0.2/24")
    create(b.client(), "ib", "sleeper", "10.64.0.3/24")
    assert wait_until(lambda: ping(ia["pid"], "10.64.0.3"), timeout=20)
    central = nodes.lab.central
    assert wait_until(central.northd_active, timeout=30)
    count = 80  # 4 s at 50 ms: the kills happen inside it
    pinger = subprocess.Popen(
        ["nsenter", "-t", str(ia["pid"]), "-n", "ping", "-c", str(count), "-i", "0.05",
         "-W", "2", "-q", "10.64.0.3"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    killed = []
    try:
        active = next(m for m in central.members if central.northd_status(m) == "active")
        central.kill_member_daemon(active, "northd")
        for kind in ("nb", "sb"):
            leader = central.leader(kind)
            assert leader is not None, f"no {kind} leader"
            central.kill_member_daemon(leader, kind)
            killed.append(leader)
        out, _ = pinger.communicate(timeout=60)
        found = re.search(r"(\d+) packets transmitted, (\d+) received", out)
        assert found is not None, out
        assert (int(found.group(1)), int(found.group(2))) == (count, count), out
        # new leaders; a creation through B's daemon now reaches the NB and B's chassis
        assert wait_until(lambda: central.leader("nb") is not None, timeout=30)
        assert wait_until(lambda: central.leader("sb") is not None, timeout=30)
        assert wait_until(central.northd_active, timeout=30)
        ic = create(b.client(), "ic", "sleeper", "10.64.0.4/24")
        port = f"{b.name}.{ic['interfaces'][0]['host_ifname']}"
        nodes.lab.nbctl.run("wait-until", "Logical_Switch_Port", port, "up=true", wait="hv")
        assert wait_until(lambda: ping(ia["pid"], "10.64.0.4"), timeout=20)
    finally:
        if pinger.poll() is None:
            pinger.kill()
            pinger.wait()
        central.start()  # the killed members rejoin (the module's later tests use them)
    for member in killed:
        assert wait_until(
            lambda m=member: all(
                "Status: cluster member" in central.cluster_status(m, k) for k in ("nb", "sb")
            ),
            timeout=30,
        )
