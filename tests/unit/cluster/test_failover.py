"""Failover decisions: publish, fence, forget, take over; the claim transaction's body."""

from __future__ import annotations

import base64
from types import SimpleNamespace

from fluidedge.cluster.etcd import decode_revisions, swap_body
from fluidedge.cluster.failover import (
    FIRST_DELAY,
    MAX_ATTEMPTS,
    MAX_DELAY,
    Record,
    plan,
    request_of,
)
from fluidedge.cluster.placement import NodeState


def node(name: str, memory_used: int, alive: bool = True) -> NodeState:
    return NodeState(name, f"http://127.0.0.1:1/{name}", alive, 4.0, 1000, 0.0, memory_used)


def record(name: str, owner: str, taken_from: str | None = None, memory: int = 100) -> Record:
    value = {"node": owner, "request": {"name": name, "template": "t"}, "memory_mb": memory}
    if taken_from:
        value["taken_from"] = taken_from
    return Record.of(name, value, "7")


VIEW = [node("a", 500), node("b", 100), node("dead", 0, alive=False)]


def test_a_dead_nodes_instances_go_where_placement_says_once() -> None:
    records = {"x": record("x", "dead"), "y": record("y", "dead", memory=950)}
    # spread: b has the most free memory, so b takes x; y (950 MB) fits nowhere: stays lost
    assert [r.name for r in plan("b", VIEW, records, {}).take] == ["x"]
    assert plan("a", VIEW, records, {}).take == []
    # a live owner's instance is nobody's to take
    assert plan("b", VIEW, {"z": record("z", "a")}, {}).take == []


def test_a_failed_re_creation_is_given_back_and_retried_after_a_doubling_delay() -> None:
    """The claimer that failed puts the record back as the dead node's, with one more attempt
    and a delay; placement skips it until then, and for good after MAX_ATTEMPTS."""
    claimed = Record.of("x", record("x", "dead").taken_by("b"), "8")
    assert (claimed.node, claimed.taken_from) == ("b", "dead")
    original = record("x", "dead")
    back = Record.of("x", original.given_back("image missing", 1000.0), "9")
    assert (back.node, back.attempts, back.error) == ("dead", 1, "image missing")
    assert back.retry_at == 1000.0 + FIRST_DELAY
    assert plan("b", VIEW, {"x": back}, {}, now=1000.5).take == []  # not yet
    assert [r.name for r in plan("b", VIEW, {"x": back}, {}, now=1002.5).take] == ["x"]
    assert plan("b", VIEW, {"x": back}, {}, now=1002.5).forget == []  # never forgotten
    # the delay doubles, capped; the attempts survive a claim
    again = Record.of("x", back.given_back("still", 2000.0), "10")
    assert again.retry_at == 2000.0 + 2 * FIRST_DELAY
    assert Record.of("x", again.taken_by("b"), "11").attempts == 2
    many = Record.of("x", {**original.given_back("x", 0.0), "attempts": 30}, "12")
    assert Record.of("x", many.given_back("x", 0.0), "13").retry_at == MAX_DELAY
    spent = Record.of("x", {**back.given_back("x", 0.0), "attempts": MAX_ATTEMPTS}, "14")
    assert plan("b", VIEW, {"x": spent}, {}, now=10**9).take == []  # given up: stays lost


def test_publish_forget_and_fence() -> None:
    records = {
        "mine": record("mine", "a"),
        "gone": record("gone", "a"),  # deleted here: its record goes
        "taken": record("taken", "b", taken_from="a"),  # taken over while a was seen dead
        "same": record("same", "b"),  # another node's instance of the same name: not ours
    }
    local = {"mine": True, "new": True, "off": False, "taken": True, "same": True}
    todo = plan("a", VIEW, records, local)
    assert todo.publish == ["new"]
    assert todo.forget == ["gone"]
    assert todo.fence == ["taken"]


def test_the_request_that_makes_an_instance_again() -> None:
    inst = SimpleNamespace(
        name="web1",
        template="web",
        interfaces=[
            SimpleNamespace(name="eth0", addresses=["10.0.0.5/24"], gateway=None),
            SimpleNamespace(name="eth1", addresses=[], gateway=None),
            SimpleNamespace(name="apps", addresses=["10.1.0.5/24"], gateway="10.1.0.1"),
        ],
        labels={"app": "web"},
        resources=SimpleNamespace(cpus=0.5, memory_mb=64),
    )
    assert request_of(inst) == {
        "name": "web1",
        "template": "web",
        "interfaces": {
            "eth0": {"addresses": ["10.0.0.5/24"]},
            "apps": {"addresses": ["10.1.0.5/24"], "gateway": "10.1.0.1"},  # its route back
        },
        "labels": {"app": "web"},
        "resources": {"cpus": 0.5, "memory_mb": 64},
    }


def test_a_record_keeps_its_logical_ports_through_a_claim() -> None:
    value = {"node": "b", "request": {"name": "x"}, "ports": ["b.fe1234"]}
    taken = Record.of("x", value, "3").taken_by("a")
    assert Record.of("x", value, "3").ports == ("b.fe1234",)
    assert "ports" not in taken  # the dead node's ports are removed by the claimer
    assert (taken["node"], taken["taken_from"]) == ("a", "b")


def test_the_claim_compares_the_revision() -> None:
    body = swap_body("/fe/instances/x", "7", {"node": "b"})
    assert body["compare"] == [
        {
            "key": base64.b64encode(b"/fe/instances/x").decode(),
            "target": "MOD",
            "result": "EQUAL",
            "mod_revision": "7",
        }
    ]
    assert body["success"][0]["request_put"]["key"] == body["compare"][0]["key"]
    kv = {"key": body["compare"][0]["key"], "value": body["success"][0]["request_put"]["value"]}
    assert decode_revisions({"kvs": [{**kv, "mod_revision": "9"}]}) == {
        "/fe/instances/x": ({"node": "b"}, "9")
    }


def test_a_gratuitous_arp_frame() -> None:
    from fluidedge.cluster.garp import garp_frame

    mac = bytes.fromhex("02aabbccddee")
    frame = garp_frame(mac, "10.0.0.9")
    assert frame[:6] == b"\xff" * 6
    assert frame[6:12] == mac
    assert frame[12:14] == b"\x08\x06"
    arp = frame[14:]
    assert arp[:8] == bytes.fromhex("0001080006040001")  # Ethernet/IPv4, request
    assert arp[8:14] == mac  # sender
    assert arp[14:18] == bytes([10, 0, 0, 9])
    assert arp[18:24] == b"\0" * 6  # target = sender's address
    assert arp[24:28] == bytes([10, 0, 0, 9])
    assert len(frame) == 42


def test_an_unsolicited_neighbour_advertisement_frame() -> None:
    from scapy.layers.inet6 import ICMPv6ND_NA, ICMPv6NDOptDstLLAddr, IPv6
    from scapy.layers.l2 import Ether

    from fluidedge.cluster.garp import frames_for, unsolicited_na_frame

    mac = bytes.fromhex("02aabbccddee")
    frame = unsolicited_na_frame(mac, "fd00::9")
    parsed = Ether(frame)
    assert parsed.dst == "33:33:00:00:00:01"
    assert parsed.src == "02:aa:bb:cc:dd:ee"
    ip6 = parsed[IPv6]
    assert (ip6.src, ip6.dst, ip6.hlim, ip6.nh) == ("fd00::9", "ff02::1", 255, 58)
    na = parsed[ICMPv6ND_NA]
    assert (na.tgt, na.R, na.S, na.O) == ("fd00::9", 0, 0, 1)
    assert parsed[ICMPv6NDOptDstLLAddr].lladdr == "02:aa:bb:cc:dd:ee"
    # scapy recomputes the checksum: ours must be the same
    sent_csum = na.cksum
    del parsed[ICMPv6ND_NA].cksum
    assert Ether(bytes(parsed))[ICMPv6ND_NA].cksum == sent_csum
    # one frame per address, by family
    both = frames_for(mac, ["10.0.0.9/24", "fd00::9/64"])
    assert [f[12:14] for f in both] == [b"\x08\x06", b"\x86\xdd"]


def test_a_tenants_record_keeps_its_tenant_through_a_claim_and_a_give_back() -> None:
    value = {**record("acme-x", "dead").taken_by("dead"), "tenant": "acme"}
    value.pop("taken_from", None)
    original = Record.of("acme-x", value, "3")
    assert original.tenant == "acme"
    claimed = Record.of("acme-x", original.taken_by("b"), "4")
    assert claimed.tenant == "acme"
    back = Record.of("acme-x", claimed.given_back("no room", 0.0), "5")
    assert back.tenant == "acme"
    assert record("y", "dead").tenant is None  # the admin's
    assert Record.of("z", {**value, "tenant": 7}, "6").tenant is None  # malformed: ignored
