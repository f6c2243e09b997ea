"""Chain functions that are real runc instances, created through the daemon's API.

Two host instances (``a``, ``b``) and function instances of the built-in templates
(:mod:`fluidedge.chains.functions`, registered through ``POST /v1/chains/function-templates``)
on one instance network, ``ovs`` (OpenFlow) or ``linuxbridge`` (tc/eBPF). A function's legs are
plugged isolated (the template's ``isolated`` interfaces): while no chain uses it, nothing of
the network reaches it although it bridges its legs (no loop, no flood), and once a chain
takes it, the classified traffic crosses it once each way and comes back.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

from fluidedge.core.client import Client, ClientError
from fluidedge.linux import netns as netns_mod
from fluidedge.linux import tc
from fluidedge.linux.proc import run
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


@pytest.fixture(params=["ovs", "linuxbridge"])
def fn_daemon(
    daemon_factory: Callable[..., DaemonHandle], tmp_path: Path, request: pytest.FixtureRequest
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
                            "driver": request.param,
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


# A UDP receiver (prints {port: datagrams} once nothing came for a second) and a sender of
# ``n`` datagrams to each port, run by this interpreter in an instance's namespace.
RECEIVER = """
import json, selectors, socket, sys
ports = [int(p) for p in sys.argv[1].split(",")]
sel = selectors.DefaultSelector()
for port in ports:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("0.0.0.0", port))
    sel.register(s, selectors.EVENT_READ, port)
got = {p: 0 for p in ports}
print("ready", flush=True)
idle = 8.0
while True:
    events = sel.select(idle)
    if not events:
        break
    idle = 1.0
    for key, _ in events:
        key.fileobj.recv(2048)
        got[key.data] += 1
print(json.dumps(got), flush=True)
"""
SENDER = """
import socket, sys, time
dst, ports, n = sys.argv[1], [int(p) for p in sys.argv[2].split(",")], int(sys.argv[3])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for i in range(n):
    for port in ports:
        s.sendto(b"x%d" % i, (dst, port))
    time.sleep(0.005)
"""


def udp(
    src: dict[str, Any], dst: dict[str, Any], dst_ip: str, ports: list[int], n: int
) -> dict[int, int]:
    """Send ``n`` datagrams from ``src`` to each of ``ports`` of ``dst``; what ``dst`` got."""
    text = ",".join(map(str, ports))
    receiver = subprocess.Popen(
        ["nsenter", "-t", str(dst["pid"]), "-n", sys.executable, "-c", RECEIVER, text],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert receiver.stdout is not None
        assert receiver.stdout.readline().strip() == "ready"
        nsexec(src["pid"], sys.executable, "-c", SENDER, dst_ip, text, str(n))
        out, _ = receiver.communicate(timeout=60)
    finally:
        if receiver.poll() is None:
            receiver.kill()
            receiver.communicate()
    return {int(k): v for k, v in json.loads(out.strip().splitlines()[-1]).items()}


def counter_after(client: Client) -> dict[str, Any]:
    """A counter instance ``ctr``, declared as group ``count`` (a chain's second group)."""
    body = {"kind": "counter", "name": f"{TAG}-ctr2", "network": NET}
    client.post("/v1/chains/function-templates", body)
    ctr: dict[str, Any] = client.post("/v1/instances", {"name": "ctr", "template": f"{TAG}-ctr2"})
    legs = ports(ctr)
    client.post(
        "/v1/chains/port-pairs", {"id": "ctr", "ingress": legs["eth0"], "egress": legs["eth1"]}
    )
    client.post("/v1/chains/port-pair-groups", {"id": "count", "port_pairs": ["ctr"]})
    return ctr


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


def driver_of(handle: DaemonHandle) -> str:
    return str(handle.config["instances"]["networks"][NET]["driver"])


def assert_isolated(handle: DaemonHandle, legs: Iterable[str]) -> None:
    """Each leg is out of the learning switch: on ``ovs`` an access port of its own VLAN; on
    ``linuxbridge`` no learning or flooding to it and a drop-all filter on its ingress."""
    if driver_of(handle) == "ovs":
        ovs_bridges.configure(Path(handle.config["state_dir"]) / "instances")
        vsctl = Vsctl(ovs_bridges.switch(NS))
        for leg in legs:
            assert tag_of(vsctl, leg) == str(ovs_bridges.isolation_vlan(vsctl.ofport(leg)))
        return
    for leg in legs:
        info = run(["bridge", "-n", NS, "-d", "link", "show", "dev", leg]).stdout
        for flag in ("learning off", "flood off", "mcast_flood off", "bcast_flood off"):
            assert flag in info, (leg, info)
        assert tc.isolation(tc.show_filters(NS, leg, "ingress")) == tc.PLUGGED
        assert "bytecode" in tc.show_filters(NS, leg, "egress")  # only what a chain steers


def test_counter_instance_in_a_chain(fn_daemon: DaemonHandle) -> None:
    client = fn_daemon.client()
    try:
        _counter_scenario(fn_daemon, client)
    finally:
        client.close()


def _counter_scenario(handle: DaemonHandle, client: Client) -> None:
    host_template(client)
    made = client.post(
        "/v1/chains/function-templates", {"kind": "counter", "name": f"{TAG}-ctr", "network": NET}
    )
    assert made["interfaces"][0]["isolated"] is True
    a, b = host(client, "a", 1), host(client, "b", 2)
    ctr = client.post("/v1/instances", {"name": "ctr", "template": f"{TAG}-ctr"})
    legs = ports(ctr)

    # Plugged isolated from the start, although the function bridges them and no pair names
    # them yet.
    assert_isolated(handle, legs.values())
    assert ping(a["pid"], f"{SUBNET}.2", 5) == 5  # the learning switch, direct
    # Nothing of a's and b's traffic (their ARP broadcasts included) reached the function.
    assert rx(ctr["pid"], "eth0") == 0
    assert rx(ctr["pid"], "eth1") == 0

    client.post(
        "/v1/chains/port-pairs", {"id": "ctr", "ingress": legs["eth0"], "egress": legs["eth1"]}
    )
    client.post("/v1/chains/port-pair-groups", {"id": "count", "port_pairs": ["ctr"]})
    # A mirror after it: a tap instance (one leg) in a tap group gets a copy of each packet.
    tap_body = {"kind": "tap", "name": f"{TAG}-tap", "network": NET}
    assert len(client.post("/v1/chains/function-templates", tap_body)["interfaces"]) == 1
    tap = client.post("/v1/instances", {"name": "tap", "template": f"{TAG}-tap"})
    client.post("/v1/chains/port-pairs", {"id": "tap", "ingress": ports(tap)["eth0"]})
    mirror = {"id": "mirror", "port_pairs": ["tap"], "tap_enabled": True}
    assert client.post("/v1/chains/port-pair-groups", mirror)["tap_enabled"] is True
    client.post(
        "/v1/chains/flow-classifiers",
        {"id": "ab", "protocol": "icmp", "logical_source_port": ports(a)["eth0"],
         "logical_destination_port": ports(b)["eth0"]},
    )  # fmt: skip
    client.post(
        "/v1/chains",
        {"id": "ab", "port_pair_groups": ["count", "mirror"], "flow_classifiers": ["ab"]},
    )
    assert ping(a["pid"], f"{SUBNET}.2", 20) == 20
    # Each echo request entered the function once on its ingress, each reply once on its
    # egress (exactly: nothing else of the network reaches an isolated port).
    assert rx(ctr["pid"], "eth0") == 20
    assert rx(ctr["pid"], "eth1") == 20
    # The mirror saw each request and each reply once, on its one leg, and held none up.
    assert rx(tap["pid"], "eth0") == 40
    assert client.get("/v1/chains/port-pairs/tap/packets")["ingress"]["to_function"] == 40
    # Flow by flow (the pins: ICMP pinned by addresses): a -> b and b -> a, every reply and
    # every request (on ovs all but the first, which learned the pin). Flow counters follow
    # the traffic late on ovs (the switch's revalidators push them): polled.
    first = 19 if driver_of(handle) == "ovs" else 20
    want = {(f"{SUBNET}.1", f"{SUBNET}.2", 1): first, (f"{SUBNET}.2", f"{SUBNET}.1", 1): 20}
    last: list[dict[tuple[str, str, int], int]] = [{}]

    def settled() -> bool:
        flows = client.get("/v1/chains/port-pairs/tap/flows")["flows"]
        last[0] = {(f["src"], f["dst"], f["protocol"]): f["packets"] for f in flows}
        return last[0] == want

    wait_for(settled, 20, lambda: f"the tap's flows {last[0]} to be {want}")
    # The switch's side of it, over the API: what it handed the function on each leg.
    seen = client.get("/v1/chains/port-pairs/ctr/packets")
    assert (seen["ingress"]["to_function"], seen["egress"]["to_function"]) == (20, 20)
    assert seen["ingress"]["from_function"] >= 20  # the replies back (and its own chatter)
    # The legs stay isolated: the chain's steering alone reaches them.
    assert_isolated(handle, legs.values())

    # The function instance goes: the closed chain drops its traffic; without the chain,
    # a and b talk directly again.
    client.delete("/v1/instances/ctr")
    wait_for(lambda: ping(a["pid"], f"{SUBNET}.2", 1) == 0, 30, "the closed chain dropping")
    client.delete("/v1/chains/ab")
    assert ping(a["pid"], f"{SUBNET}.2", 3) == 3
    for name in ("a", "b", "tap"):
        client.delete(f"/v1/instances/{name}")


def test_firewall_instance_drops_exactly_its_traffic(fn_daemon: DaemonHandle) -> None:
    client = fn_daemon.client()
    try:
        _firewall_scenario(client)
    finally:
        client.close()


def _firewall_scenario(client: Client) -> None:
    host_template(client)
    body = {"kind": "firewall", "name": f"{TAG}-fw", "network": NET,
            "rules": ["udp dport 7001 counter drop"]}  # fmt: skip
    assert client.post("/v1/chains/function-templates", body)["image"] == "nft"
    assert client.get("/v1/images/nft")["name"] == "nft"  # built from the host's nft
    a, b = host(client, "a", 1), host(client, "b", 2)
    fw = client.post("/v1/instances", {"name": "fw", "template": f"{TAG}-fw"})
    ctr = counter_after(client)
    legs = ports(fw)
    client.post(
        "/v1/chains/port-pairs", {"id": "fw", "ingress": legs["eth0"], "egress": legs["eth1"]}
    )
    client.post("/v1/chains/port-pair-groups", {"id": "fw", "port_pairs": ["fw"]})
    client.post(
        "/v1/chains/flow-classifiers",
        {"id": "ab", "protocol": "udp", "logical_source_port": ports(a)["eth0"],
         "logical_destination_port": ports(b)["eth0"]},
    )  # fmt: skip
    chain = {"id": "ab", "port_pair_groups": ["fw", "count"], "flow_classifiers": ["ab"]}
    client.post("/v1/chains", chain)

    got = udp(a, b, f"{SUBNET}.2", [7000, 7001], 200)
    assert got == {7000: 200, 7001: 0}
    # Both ports' datagrams crossed the firewall's ingress; its rule counted the dropped ones;
    # the counter after it saw exactly what it let through.
    assert rx(fw["pid"], "eth0") == 400
    ruleset = nsexec(fw["pid"], "nft", "list", "ruleset").stdout
    assert "udp dport 7001 counter packets 200 " in ruleset
    assert rx(ctr["pid"], "eth0") == 200

    # Live rules through the API: the running firewall (same process, same legs, its chain
    # untouched) now drops 7000 and lets 7001 through; what its kernel holds is readable.
    path = "/v1/chains/firewalls/fw/rules"
    assert "udp dport 7001 counter packets 200 " in client.get(path)["ruleset"]
    changed = client.put(path, {"rules": ["udp dport 7000 counter drop"]})
    assert "udp dport 7000 counter packets 0 " in changed["ruleset"]
    assert "7001" not in changed["ruleset"]
    # A rule nft refuses is a 422 (the schema cannot know nft's grammar), one the schema
    # refuses a 400; either leaves the rules as they were (one transaction).
    for bad, status in (({"rules": ["udp dport nope drop"]}, 422),
                        ({"rules": ["drop; flush ruleset"]}, 400)):  # fmt: skip
        with pytest.raises(ClientError) as refused:
            client.put(path, bad)
        assert refused.value.status == status
    assert "udp dport 7000 counter packets 0 " in client.get(path)["ruleset"]
    got = udp(a, b, f"{SUBNET}.2", [7000, 7001], 50)
    assert got == {7000: 0, 7001: 50}
    assert "udp dport 7000 counter packets 50 " in client.get(path)["ruleset"]
    assert client.get("/v1/instances/fw")["pid"] == fw["pid"]  # not restarted
    # Only a running vFirewall has live rules: a counter is a 409, a missing instance a 404.
    for name, status in (("ctr", 409), ("nosuch", 404)):
        with pytest.raises(ClientError) as refused:
            client.put(f"/v1/chains/firewalls/{name}/rules", {"rules": []})
        assert refused.value.status == status
    for name in ("fw", "ctr", "a", "b"):
        client.delete(f"/v1/instances/{name}")


def ttl_of_reply(pid: int, address: str) -> int:
    """The TTL of the echo reply one ping from instance ``pid`` got (0: none)."""
    done = nsexec(pid, "ping", "-n", "-c", "1", "-W", "2", address, check=False)
    for word in done.stdout.split():
        if word.startswith("ttl="):
            return int(word[4:])
    return 0


def test_router_instance_is_the_next_hop(fn_daemon: DaemonHandle) -> None:
    client = fn_daemon.client()
    try:
        _router_scenario(client)
    finally:
        client.close()


def _router_scenario(client: Client) -> None:
    host_template(client)
    a_ip, b_ip = f"{SUBNET}.1", f"{SUBNET}.2"
    body = {"kind": "router", "name": f"{TAG}-rtr", "network": NET,
            "ingress_routes": [f"{a_ip}/32"], "egress_routes": [f"{b_ip}/32"]}  # fmt: skip
    client.post("/v1/chains/function-templates", body)
    a, b = host(client, "a", 1), host(client, "b", 2)
    rtr = client.post("/v1/instances", {"name": "rtr", "template": f"{TAG}-rtr"})
    ctr = counter_after(client)
    legs = ports(rtr)
    assert ttl_of_reply(a["pid"], b_ip) == 64  # direct: no hop decrements it
    client.post(
        "/v1/chains/port-pairs",
        {"id": "rtr", "ingress": legs["eth0"], "egress": legs["eth1"], "kind": "routed"},
    )
    client.post("/v1/chains/port-pair-groups", {"id": "route", "port_pairs": ["rtr"]})
    client.post(
        "/v1/chains/flow-classifiers",
        {"id": "ab", "protocol": "icmp", "logical_source_port": ports(a)["eth0"],
         "logical_destination_port": ports(b)["eth0"]},
    )  # fmt: skip
    chain = {"id": "ab", "port_pair_groups": ["route", "count"], "flow_classifiers": ["ab"]}
    client.post("/v1/chains", chain)
    assert ping(a["pid"], b_ip, 20) == 20
    # Each request and each reply was routed once by the function (its TTL taken down by
    # one: the reply a gets left b with 64), entering by the port of its direction; the
    # transparent counter after it saw each once too (re-addressed to b, then to the router).
    assert ttl_of_reply(a["pid"], b_ip) == 63
    assert rx(rtr["pid"], "eth0") == 21
    assert rx(rtr["pid"], "eth1") == 21
    assert rx(ctr["pid"], "eth0") == 21
    assert rx(ctr["pid"], "eth1") == 21
    for name in ("rtr", "ctr", "a", "b"):
        client.delete(f"/v1/instances/{name}")
