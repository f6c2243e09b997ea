"""Cluster state and placement on the multi-host tier: two daemons registered in an etcd of
the test's own (``[cluster]``), each with its chassis on one OVN central.

Nodes list each other with capacity and liveness; a creation sent to any node runs on the node
it names or on the one placement picks (spread/pack over the reported capacity), forwarded
with the site token; the instance is reachable from the other node; refusals; losing etcd's
leader (3 members) kills no node's liveness and stops no forwarding; a node killed is seen
dead and its instances lost, and comes back alive with them (ports bound, reachable) after a
restart; a template deleted while a node was down is deleted there when it is back; with
``failover = "recreate"`` a dead node's instance is re-created on a live node at the same
address, and the node, back, deletes its stale copy."""

from __future__ import annotations

import subprocess
import time
from typing import Any

import httpx
import pytest

from fluidedge.cluster.etcd import Etcd
from fluidedge.core.client import Client, ClientError
from tests.fixtures.daemon import TOKEN
from tests.fixtures.ovn_nodes import OvnNodes
from tests.fixtures.wait import wait_for, wait_until

pytestmark = pytest.mark.root

NODES = {
    "count": 2,
    "members": 1,
    "cluster": True,
    "etcd_members": 3,
    "cluster_settings": {"heartbeat": 0.5, "ttl": 2},
}
SUBNET = "10.63.0"


def ping(pid: int, dst: str) -> bool:
    done = subprocess.run(
        ["nsenter", "-t", str(pid), "-n", "ping", "-c", "1", "-W", "1", "-q", dst],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    return done.returncode == 0


def in_netns(pid: int, *argv: str) -> str:
    done = subprocess.run(
        ["nsenter", "-t", str(pid), "-n", *argv],
        capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    return done.stdout


def mac_of(pid: int) -> str:
    """The MAC of ``eth0`` in the namespace of ``pid`` (not /sys: that is the host's)."""
    words = in_netns(pid, "ip", "-o", "link", "show", "eth0").split()
    return words[words.index("link/ether") + 1]


def create(client: Client, name: str, index: int, **more: Any) -> dict[str, Any]:
    body = {
        "name": name,
        "template": "sleeper",
        "interfaces": {"eth0": {"addresses": [f"{SUBNET}.{index}/24"]}},
        **more,
    }
    made: dict[str, Any] = client.post("/v1/instances", body)
    assert made["state"] == "running", made
    return made


def node_view(client: Client, name: str) -> dict[str, Any]:
    view: dict[str, Any] = client.get(f"/v1/nodes/{name}")
    return view


def runs_on(nodes: OvnNodes, instance: str) -> list[str]:
    """The nodes whose own API knows ``instance``."""
    found = []
    for node in nodes.nodes:
        listed = node.client().get("/v1/instances")
        if any(inst["name"] == instance for inst in listed):
            found.append(node.name)
    return found


@pytest.fixture
def net(nodes: OvnNodes) -> str:
    name = f"{nodes.prefix}-c"[-15:]
    nodes.network(name, f"{SUBNET}.0/24")
    nodes.template("sleeper", name)
    return name


def test_every_node_lists_every_node_alive_with_capacity(nodes: OvnNodes) -> None:
    names = sorted(node.name for node in nodes.nodes)
    for node in nodes.nodes:
        listed = node.client().get("/v1/nodes")
        assert [n["name"] for n in listed] == names
        for view in listed:
            assert view["state"] == "alive"
            assert view["memory_capacity_mb"] == 1024
            assert view["cpu_capacity"] > 0
            assert view["url"].startswith("http://127.0.0.1:")
    with pytest.raises(ClientError) as refused:
        nodes.nodes[0].client().get("/v1/nodes/nosuchnode")
    assert refused.value.status == 404


def test_a_creation_naming_another_node_runs_there_and_is_reachable(
    nodes: OvnNodes, net: str
) -> None:
    a, b = nodes.nodes
    here = create(a.client(), "here", 2, node=a.name)
    there = create(a.client(), "there", 3, node=b.name)  # sent to a, forwarded to b
    assert there["pid"] > 0
    assert runs_on(nodes, "there") == [b.name]
    assert runs_on(nodes, "here") == [a.name]
    port = f"{b.name}.{there['interfaces'][0]['host_ifname']}"
    nodes.lab.nbctl.run("wait-until", "Logical_Switch_Port", port, "up=true", wait="hv")
    assert nodes.bound_on(port) == b.name
    assert wait_until(lambda: ping(here["pid"], f"{SUBNET}.3"), timeout=20)
    # the cluster state says where it runs, on every node
    for client in (a.client(), b.client()):
        wait_for(
            lambda c=client: "there" in node_view(c, b.name)["instances"],
            10,
            "b's record lists the forwarded instance",
        )
    assert "there" not in node_view(b.client(), a.name)["instances"]
    # the admin reads and deletes it through a too: relayed to b, which answers
    auth = {"Authorization": f"Bearer {TOKEN}"}
    read = httpx.get(f"{a.handle.url}/v1/instances/there", headers=auth, timeout=30)
    assert read.status_code == 200, read.text
    assert read.headers["x-fluidedge-node"] == b.name
    assert read.json()["pid"] == there["pid"]
    gone = httpx.delete(f"{a.handle.url}/v1/instances/there", headers=auth, timeout=30)
    assert gone.status_code == 204, gone.text
    assert runs_on(nodes, "there") == []
    missing = httpx.get(f"{a.handle.url}/v1/instances/there", headers=auth, timeout=30)
    assert missing.status_code == 404


def test_placement_spreads_and_packs_over_reported_capacity(nodes: OvnNodes, net: str) -> None:
    a, b = nodes.nodes
    big = {"resources": {"memory_mb": 512}}
    create(a.client(), "big", 2, node=a.name, **big)
    wait_for(
        lambda: node_view(b.client(), a.name)["memory_committed_mb"] >= 512,
        10,
        "a's committed memory reported",
    )
    create(a.client(), "spread", 3)  # a is fuller: spread picks b, a forwards
    assert runs_on(nodes, "spread") == [b.name]
    wait_for(
        lambda: node_view(b.client(), b.name)["memory_committed_mb"] > 0,
        10,
        "b's committed memory reported",
    )
    create(b.client(), "packed", 4, placement="pack")  # the fullest that fits: a
    assert runs_on(nodes, "packed") == [a.name]
    # nothing fits 2 GB: refused, created nowhere
    with pytest.raises(ClientError) as full:
        create(a.client(), "huge", 5, resources={"memory_mb": 2048})
    assert full.value.status == 503
    assert runs_on(nodes, "huge") == []


def test_refusals(nodes: OvnNodes, net: str) -> None:
    a, b = nodes.nodes
    with pytest.raises(ClientError) as unknown:
        create(a.client(), "x1", 2, node="nosuchnode")
    assert unknown.value.status == 404
    with pytest.raises(ClientError) as invalid:
        create(a.client(), "x2", 2, node="../etc;rm")
    assert invalid.value.status == 400
    body = {"name": "x3", "template": "sleeper", "node": b.name}
    # a request another node forwarded, naming a third: not forwarded again
    loop = httpx.post(
        f"{a.handle.url}/v1/instances",
        json=body,
        headers={"Authorization": f"Bearer {TOKEN}", "X-Fluidedge-Forwarded": b.name},
        timeout=30,
    )
    assert loop.status_code == 409, loop.text
    # without the token nothing is created, nothing forwarded
    anonymous = httpx.post(f"{a.handle.url}/v1/instances", json=body, timeout=30)
    assert anonymous.status_code == 401
    assert runs_on(nodes, "x1") == runs_on(nodes, "x3") == []


def test_losing_the_etcd_leader_loses_no_node(nodes: OvnNodes, net: str) -> None:
    assert nodes.etcd is not None
    a, b = nodes.nodes
    leader = nodes.etcd.leader()
    leader.kill9()
    try:
        # longer than the lease (2 s): a node whose heartbeats were lost would be dead by now
        deadline = time.monotonic() + 4
        while time.monotonic() < deadline:
            for client in (a.client(), b.client()):
                states = {n["name"]: n["state"] for n in client.get("/v1/nodes")}
                assert states == {a.name: "alive", b.name: "alive"}
            time.sleep(0.2)
        create(a.client(), "afterloss", 3, node=b.name)
        assert runs_on(nodes, "afterloss") == [b.name]
        wait_for(
            lambda: "afterloss" in node_view(a.client(), b.name)["instances"],
            10,
            "the record written through the new leader",
        )
        assert nodes.etcd.leader() is not leader
    finally:
        nodes.etcd.start()  # the member rejoins with its data directory


def test_a_killed_node_is_seen_dead_with_its_instances_lost(nodes: OvnNodes, net: str) -> None:
    a, b = nodes.nodes
    create(a.client(), "victim", 3, node=b.name)
    wait_for(lambda: "victim" in node_view(a.client(), b.name)["instances"], 10, "victim listed")
    b.close_client()
    b.handle.kill9()
    try:
        wait_for(
            lambda: node_view(a.client(), b.name)["state"] == "dead",
            10,
            "b seen dead after its lease (2 s)",
        )
        view = node_view(a.client(), b.name)
        assert view["lost"] == ["victim"]
        with pytest.raises(ClientError) as dead:
            create(a.client(), "late", 4, node=b.name)
        assert dead.value.status == 409
        create(a.client(), "elsewhere", 4)  # placement skips the dead node
        assert a.client().get("/v1/instances/elsewhere")["state"] == "running"
    finally:
        b.handle.start()
    wait_for(lambda: node_view(a.client(), b.name)["state"] == "alive", 10, "b alive again")
    view = node_view(a.client(), b.name)
    assert view["instances"] == ["victim"]  # re-adopted
    assert view["lost"] == []
    # with its logical port: still bound on b's chassis, reachable from a's instance
    victim = b.client().get("/v1/instances/victim")
    assert victim["state"] == "running"
    assert nodes.bound_on(f"{b.name}.{victim['interfaces'][0]['host_ifname']}") == b.name
    elsewhere = a.client().get("/v1/instances/elsewhere")
    assert wait_until(lambda: ping(elsewhere["pid"], f"{SUBNET}.3"), timeout=20)


def test_a_dead_nodes_instance_is_recreated_on_a_live_node_and_fenced_when_it_returns(
    nodes: OvnNodes, net: str
) -> None:
    assert nodes.etcd is not None
    a, b = nodes.nodes
    dual = f"{nodes.prefix}-d"[-15:]  # IPv4 and IPv6 (no one subnet)
    nodes.network(dual, None)
    nodes.template("dual", dual)
    nodes.template("keeper", dual, failover="recreate")
    v6 = {"interfaces": {"eth0": {"addresses": [f"{SUBNET}.2/24", "fd63::2/64"]}}}
    probe = create(a.client(), "probe", 2, node=a.name, template="dual", **v6)
    body = {
        "name": "survivor",
        "template": "keeper",
        "node": b.name,
        "interfaces": {"eth0": {"addresses": [f"{SUBNET}.9/24", "fd63::9/64"]}},
    }
    a.client().post("/v1/instances", body)
    etcd = Etcd(nodes.etcd.url)
    key = "/fluidedge/instances/survivor"
    try:
        wait_for(lambda: key in etcd.get_prefix(key), 10, "survivor recorded for failover")
        assert etcd.get_prefix(key)[key]["node"] == b.name
        assert wait_until(lambda: ping(probe["pid"], f"{SUBNET}.9"), timeout=20)
        assert wait_until(lambda: ping(probe["pid"], "fd63::9"), timeout=20)
        old_mac = mac_of(b.client().get("/v1/instances/survivor")["pid"])
        assert old_mac in in_netns(probe["pid"], "ip", "neigh", "show", f"{SUBNET}.9")
        assert old_mac in in_netns(probe["pid"], "ip", "-6", "neigh", "show", "fd63::9")
        nodes.kill_node(b)  # the daemon and the chassis: survivor's port is gone with them
        try:
            wait_for(
                lambda: any(i["name"] == "survivor" for i in a.client().get("/v1/instances")),
                20,
                "survivor re-created on a",
            )
            taken = etcd.get_prefix(key)[key]
            assert (taken["node"], taken["taken_from"]) == (a.name, b.name)
            assert a.client().get("/v1/instances/survivor")["state"] == "running"
            # the same address answers again, from its new node: a new MAC, which its
            # gratuitous ARP taught the probe (whose entry still had the old one)
            assert wait_until(lambda: ping(probe["pid"], f"{SUBNET}.9"), timeout=3)
            new_pid = a.client().get("/v1/instances/survivor")["pid"]
            new_mac = mac_of(new_pid)
            assert new_mac in in_netns(probe["pid"], "ip", "neigh", "show", f"{SUBNET}.9")
            assert new_mac != old_mac
            # IPv6 likewise: its unsolicited neighbour advertisement moved the probe's entry
            assert new_mac in in_netns(probe["pid"], "ip", "-6", "neigh", "show", "fd63::9")
            assert wait_until(lambda: ping(probe["pid"], "fd63::9"), timeout=3)
            # the dead node's logical port of it is gone from the NB; the new one is a's
            ports = nodes.lab.nbctl.run("--bare", "--columns=name", "list", "Logical_Switch_Port")
            assert not any(p.startswith(f"{b.name}.") for p in ports.split())
            assert etcd.get_prefix(key)[key]["ports"] == [
                f"{a.name}.{a.client().get('/v1/instances/survivor')['interfaces'][0]['host_ifname']}"
            ]
            view = node_view(a.client(), b.name)
            assert view["state"] == "dead"
            assert "survivor" in view["instances"]  # b's last record
            wait_for(
                lambda: node_view(a.client(), b.name)["lost"] == [],
                10,
                "survivor not lost: a runs it now",
            )
        finally:
            b.handle.start()
        # back, b finds survivor taken over and deletes its own copy
        wait_for(
            lambda: all(i["name"] != "survivor" for i in b.client().get("/v1/instances")),
            20,
            "b fenced its stale copy",
        )
        assert a.client().get("/v1/instances/survivor")["state"] == "running"
        assert etcd.get_prefix(key)[key]["node"] == a.name
    finally:
        etcd.close()


def test_a_template_deleted_while_a_node_was_down_leaves_it_when_back(
    nodes: OvnNodes, net: str
) -> None:
    """What the site held at a node's last pass is kept in its store: back from a stop during
    which the template was deleted through another node, it deletes its own copy."""
    a, b = nodes.nodes
    body = {
        "name": "passing",
        "command": ["/bin/busybox", "sleep", "2147483647"],
        "interfaces": [{"name": "eth0", "network": net}],
    }
    a.client().post("/v1/templates", body)
    wait_for(
        lambda: any(t["name"] == "passing" for t in b.client().get("/v1/templates")),
        10,
        "a's template on b",
    )
    b.close_client()
    b.handle.stop()
    try:
        a.client().delete("/v1/templates/passing")
    finally:
        b.handle.start()
    wait_for(
        lambda: all(t["name"] != "passing" for t in b.client().get("/v1/templates")),
        15,
        "the template deleted while b was down, gone from b",
    )
    assert any(t["name"] == "sleeper" for t in b.client().get("/v1/templates"))  # the rest stays


def test_a_network_and_a_template_made_through_one_node_are_the_sites(
    nodes: OvnNodes, net: str
) -> None:
    a, b = nodes.nodes
    # the network too (made through a by the fixture): b has it, in its own namespace
    assert b.client().get(f"/v1/networks/{net}")["netns"] == b.netns
    assert a.client().get(f"/v1/networks/{net}")["netns"] == a.netns
    body = {
        "name": "shared",
        "command": ["/bin/busybox", "sleep", "2147483647"],
        "interfaces": [{"name": "eth0", "network": net}],
        "resources": {"cpus": 0.1, "memory_mb": 16},
    }
    b.client().post("/v1/templates", body)
    wait_for(
        lambda: any(t["name"] == "shared" for t in a.client().get("/v1/templates")),
        10,
        "b's template on a",
    )
    assert a.client().get("/v1/templates/shared")["resources"]["memory_mb"] == 16
    made = a.client().post(
        "/v1/instances",
        {
            "name": "user",
            "template": "shared",
            "node": a.name,
            "interfaces": {"eth0": {"addresses": [f"{SUBNET}.20/24"]}},
        },
    )
    assert made["state"] == "running"
    # deleted on b: gone from a once a's instance of it is gone
    b.client().delete("/v1/templates/shared")
    time.sleep(1.5)  # passes that must keep it: a still runs an instance of it
    assert any(t["name"] == "shared" for t in a.client().get("/v1/templates"))
    a.client().delete("/v1/instances/user")
    wait_for(
        lambda: all(t["name"] != "shared" for t in a.client().get("/v1/templates")),
        10,
        "the template gone from a",
    )
    # the network (and the fixture's template on it), deleted through a, leave b too (b
    # deletes the network once its template is gone: a pass may find it still used)
    a.client().delete("/v1/templates/sleeper")
    a.client().delete(f"/v1/networks/{net}")
    wait_for(
        lambda: all(n["name"] != net for n in b.client().get("/v1/networks")),
        10,
        "the network gone from b",
    )


def test_what_changed_while_etcd_was_away_reaches_the_site_when_it_is_back(
    nodes: OvnNodes, net: str
) -> None:
    """A template made and one deleted through a while the whole etcd cluster is down: a's API
    answers as usual, and once etcd is back a's pass writes both to the site: b gets the new
    one and drops the deleted one, which a never makes again from the site's stale copy."""
    assert nodes.etcd is not None
    a, b = nodes.nodes

    def body(name: str) -> dict[str, Any]:
        return {
            "name": name,
            "command": ["/bin/busybox", "sleep", "2147483647"],
            "interfaces": [{"name": "eth0", "network": net}],
        }

    def names(node: Any) -> set[str]:
        return {t["name"] for t in node.client().get("/v1/templates")}

    a.client().post("/v1/templates", body("doomed"))
    wait_for(lambda: "doomed" in names(b), 10, "a's template on b")
    nodes.etcd.stop()
    try:
        a.client().post("/v1/templates", body("offline"))
        a.client().delete("/v1/templates/doomed")
        assert "offline" in names(a)
        assert "doomed" not in names(a)
    finally:
        nodes.etcd.start()
    wait_for(lambda: "offline" in names(b), 20, "the template made while etcd was away, on b")
    wait_for(lambda: "doomed" not in names(b), 20, "the one deleted meanwhile, gone from b")
    nodes.wait_formed()
    assert "doomed" not in names(a)  # not made again from the site's old copy
    assert {"offline", "sleeper"} <= names(a)
