"""The TOF across hosts on the multi-host tier: node A's daemon runs the TOF (its S1 toward an
eNB and an SGW namespace, its apps side a host port of the ``ovn`` apps network on A's
chassis); the edge app runs on node B. A UE's traffic to the service IP, tunnelled over S1 to
A, is offloaded to the app on B over geneve and its answer comes back to the UE through A's
tunnel. With ``failover = "recreate"`` the app survives B's death: re-created on A at its
address (and gateway), the service needs no change and the UE's next request is answered; B's
old logical port is gone from the NB at once."""

from __future__ import annotations

import ipaddress
import subprocess
from typing import Any

import httpx
import pytest

from tests.fixtures.ovn_nodes import (
    DOWN_TEID,
    TOF_GATEWAY,
    TWO_NODE_SITE,
    OvnNodes,
    downlink,
    echo,
    replies,
    uplink,
)
from tests.fixtures.wait import wait_for

pytestmark = pytest.mark.root

NODES = {**TWO_NODE_SITE, "tof": 0}
UE = ipaddress.ip_address("198.18.100.1").packed
PDN = ipaddress.ip_address("198.18.200.10").packed
SERVICE = "198.18.50.1"
APP, APP2, APP3, APP4 = (
    "198.19.7.20",
    "198.19.7.21",
    "198.19.7.22",
    "198.19.7.23",
)  # one per test: A's neighbour entry of the last
# test's app may still be REACHABLE with a MAC that no longer exists (tens of seconds)


def ask(nodes: OvnNodes, seq: int, wait: float = 1.0) -> list[tuple[int, str, int]]:
    """The UE pings the service once through A's S1; the answers that reach the eNB."""
    assert nodes.s1 is not None
    nodes.s1.send("enb", uplink(echo(UE, ipaddress.ip_address(SERVICE).packed, seq)))
    return [r for r in replies(nodes.s1.received("enb", wait)) if r[2] == seq]


def answered(nodes: OvnNodes, first: int, deadline: float) -> int:
    """Ping until answered (the first packets may meet unlearned neighbours); the sequence
    number that was answered, as the UE sees it: the service's address, A's downlink TEID."""
    seq = first
    found: list[tuple[int, str, int]] = []

    def one() -> bool:
        nonlocal seq, found
        seq += 1
        found = ask(nodes, seq)
        return bool(found)

    def state() -> str:
        a = nodes.nodes[0]
        neigh = subprocess.run(
            ["ip", "-n", a.netns, "neigh", "show", "dev", "apps0"],
            capture_output=True, text=True, check=False,
        ).stdout  # fmt: skip
        stats = a.client().get("/stats")
        return (
            f"the UE's request to the service answered (a's neighbours on apps0: {neigh!r}; "
            f"stats {stats}; tunnels {a.client().get('/tunnels')})"
        )

    wait_for(one, deadline, state)
    assert found == [(DOWN_TEID, SERVICE, seq)]
    return seq


@pytest.fixture
def apps(nodes: OvnNodes) -> str:
    nodes.network(nodes.tof_network, "198.19.7.0/24")
    assert nodes.s1 is not None
    # the bearer, learned both ways (the SGW's downlink G-PDU reveals the downlink TEID)
    nodes.s1.send("enb", uplink(echo(UE, PDN, 1)))
    nodes.s1.send("sgw", downlink(echo(PDN, UE, 1)))
    return nodes.tof_network


def app(nodes: OvnNodes, template: str, node: str, address: str) -> dict[str, Any]:
    a = nodes.nodes[0]
    body = {
        "name": "edgeapp",
        "template": template,
        "node": node,
        "interfaces": {"eth0": {"addresses": [f"{address}/24"], "gateway": TOF_GATEWAY[:-3]}},
    }
    made: dict[str, Any] = a.client().post("/v1/instances", body)
    assert made["state"] == "running", made
    return made


def lsps(nodes: OvnNodes) -> set[str]:
    return set(
        nodes.lab.nbctl.run("--bare", "--columns=name", "list", "Logical_Switch_Port").split()
    )


def test_the_tof_on_one_node_offloads_to_an_app_on_another(nodes: OvnNodes, apps: str) -> None:
    a, b = nodes.nodes
    nodes.template("edge", apps)
    made = app(nodes, "edge", b.name, APP)  # sent to a, runs on b
    port = f"{b.name}.{made['interfaces'][0]['host_ifname']}"
    nodes.lab.nbctl.run("wait-until", "Logical_Switch_Port", port, "up=true", wait="hv")
    assert nodes.bound_on(port) == b.name
    # the TOF's apps side: a logical port of the apps network on a's chassis
    assert nodes.bound_on(f"{a.name}.apps0-ls") == a.name
    a.client().post("/service", {"name": "web", "serviceIP": SERVICE, "applicationIP": APP})
    answered(nodes, 100, 20)
    stats = a.client().get("/stats")
    web = stats["services"]["web"]
    assert web["upPackets"] >= 1, web
    assert web["downPackets"] >= 1, web
    # what is not for the service still crosses A untouched (to the SGW)
    assert nodes.s1 is not None
    frame = uplink(echo(UE, PDN, 7))
    nodes.s1.send("enb", frame)
    assert frame in nodes.s1.received("sgw", 1.0)


def test_failover_keeps_the_service_answering(nodes: OvnNodes, apps: str) -> None:
    a, b = nodes.nodes
    nodes.template("keeper", apps, failover="recreate")
    made = app(nodes, "keeper", b.name, APP2)
    old_port = f"{b.name}.{made['interfaces'][0]['host_ifname']}"
    nodes.lab.nbctl.run("wait-until", "Logical_Switch_Port", old_port, "up=true", wait="hv")
    a.client().post("/service", {"name": "web", "serviceIP": SERVICE, "applicationIP": APP2})
    seq = answered(nodes, 200, 20)
    wait_for(
        lambda: "edgeapp" in a.client().get(f"/v1/nodes/{b.name}")["instances"],
        10,
        "edgeapp in b's record",
    )
    nodes.kill_node(b)  # daemon and chassis: the app and its port die with the host
    try:
        wait_for(
            lambda: any(i["name"] == "edgeapp" for i in a.client().get("/v1/instances")),
            20,
            "edgeapp re-created on a",
        )
        # the dead node's logical port is gone; the new one is bound on a
        assert old_port not in lsps(nodes)
        again = a.client().get("/v1/instances/edgeapp")
        assert again["interfaces"][0]["addresses"] == [f"{APP2}/24"]
        assert again["interfaces"][0]["gateway"] == TOF_GATEWAY[:-3]
        new_port = f"{a.name}.{again['interfaces'][0]['host_ifname']}"
        assert nodes.bound_on(new_port) == a.name
        # the service is unchanged and answers: the UE's next request is served by the new app
        assert a.client().get("/service")[0]["applicationIP"] == APP2
        answered(nodes, seq, 10)  # the announcement waits for the port to be up
    finally:
        b.handle.start()
    wait_for(
        lambda: all(i["name"] != "edgeapp" for i in b.client().get("/v1/instances")),
        20,
        "b fenced its stale copy",
    )


def served_from_b(nodes: OvnNodes, apps: str, address: str, first: int) -> int:
    """An app on node B at ``address`` behind the service on A, answered; the sequence number
    that was (A's client closed, for a restart of A to follow)."""
    a, b = nodes.nodes
    nodes.template("edge", apps)
    app(nodes, "edge", b.name, address)
    a.client().post("/service", {"name": "web", "serviceIP": SERVICE, "applicationIP": address})
    seq = answered(nodes, first, 20)
    a.close_client()
    return seq


def relearned(nodes: OvnNodes, seq: int, marker: int, deadline: float) -> None:
    """After A's restart: its tunnels are re-learned from traffic, and the service answers."""
    assert nodes.s1 is not None
    nodes.s1.send("enb", uplink(echo(UE, PDN, marker)))
    nodes.s1.send("sgw", downlink(echo(PDN, UE, marker)))
    answered(nodes, seq, deadline)


def test_the_tof_node_restarted_plugs_its_apps_port_again(nodes: OvnNodes, apps: str) -> None:
    a = nodes.nodes[0]
    seq = served_from_b(nodes, apps, APP3, 300)
    a.handle.restart()  # graceful: the port goes with the TOF, and comes back with it
    assert nodes.bound_on(f"{a.name}.apps0-ls") == a.name
    assert a.client().get("/service")[0]["applicationIP"] == APP3  # restored from the store
    relearned(nodes, seq, 2, 20)


def test_the_tof_node_started_before_the_central_waits_for_it(nodes: OvnNodes, apps: str) -> None:
    """A site's reboot: node A comes up while the OVN central is still down. Its TOF cannot
    plug its apps port yet; it used to refuse A's whole start (after ovn-nbctl's 30 s). Now A
    serves, the TOF waits for the northbound database, and offloads once the central is up."""
    a = nodes.nodes[0]
    seq = served_from_b(nodes, apps, APP4, 400)
    a.handle.stop()
    nodes.lab.central.stop()
    try:
        a.handle.start()
        health = httpx.get(f"{a.handle.url}/healthz", timeout=30).json()
        assert health["status"] == "degraded", health
        assert health["waiting"]["tof"].startswith("ovn: the northbound database"), health
        assert a.client().get("/service")[0]["applicationIP"] == APP4  # declared, kept
    finally:
        nodes.lab.central.start()
    wait_for(
        lambda: a.client().get("/stats")["dataplane"] == "running",
        30,
        lambda: f"the TOF started once the central is up ({a.client().get('/stats')})",
    )
    assert httpx.get(f"{a.handle.url}/healthz", timeout=30).json()["waiting"] == {}
    wait_for(  # the chassis binds the port once its controller is back on the southbound
        lambda: nodes.bound_on(f"{a.name}.apps0-ls") == a.name, 20, "a's apps port bound on a"
    )
    relearned(nodes, seq, 3, 30)
