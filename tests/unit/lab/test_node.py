"""The eNB/SGW user-plane logic without sockets: encapsulation, TEID lookup, echo, errors."""

from __future__ import annotations

import os
from collections.abc import Iterator
from ipaddress import IPv4Address

import pytest

from fluidedge.codec.gtpu import (
    EchoResponse,
    ErrorIndication,
    GPdu,
    decode,
    echo_request,
    encode_gpdu,
)
from fluidedge.codec.net import ipv4, udp
from fluidedge.lab.config import bearers, load
from fluidedge.lab.node import Node

PDN = IPv4Address("198.18.200.10")


class FakeSocket:
    def __init__(self) -> None:
        self.sent: list[tuple[bytes, tuple[str, int]]] = []

    def sendto(self, data: bytes, address: tuple[str, int]) -> int:
        self.sent.append((bytes(data), address))
        return len(data)


def _node(role: str, name: str, psc: bool = False) -> Node:
    table = bearers(load())
    mine = [b for b in table if (b.enb if role == "enb" else b.sgw) == name]
    raw = []
    for b in mine:
        doc = b.as_json()
        doc["pdu_session_container"] = psc
        raw.append(doc)
    address = str(mine[0].enb_address if role == "enb" else mine[0].sgw_address)
    spec = {
        "role": role,
        "name": name,
        "address": address,
        "tun": "tun0",
        "bearers": raw,
        "echo_peers": [],
        "echo_interval": 0,
        "mme": None,
        "stats_path": "/nonexistent/stats.json",
    }
    return Node(spec)


@pytest.fixture
def tun() -> Iterator[tuple[int, int]]:
    r, w = os.pipe()
    os.set_blocking(r, False)
    try:
        yield r, w
    finally:
        os.close(r)
        os.close(w)


def _packet(src: IPv4Address, dst: IPv4Address) -> bytes:
    s, d = src.packed, dst.packed
    return ipv4.encode(s, d, udp.PROTO_UDP, udp.encode(s, d, 1000, 7, b"hello"), dont_fragment=True)


@pytest.mark.parametrize("psc", [False, True])
def test_enb_uplink_uses_the_bearers_tunnel(psc: bool) -> None:
    node = _node("enb", "enb1", psc)
    node.udp = FakeSocket()  # type: ignore[assignment]
    for b in bearers(load())[:2]:
        node.from_tun(_packet(b.ue_address, PDN))
        data, to = node.udp.sent[-1]  # type: ignore[attr-defined]
        msg = decode(data)
        assert isinstance(msg, GPdu)
        assert to == (str(b.sgw_address), 2152)
        assert msg.header.teid == b.ul_teid
        assert msg.header.qfi == (b.qfi if psc else None)
        assert bytes(msg.payload) == _packet(b.ue_address, PDN)
    # a packet from no known UE is not tunnelled
    node.from_tun(_packet(IPv4Address("198.18.100.77"), PDN))
    assert node.counters.tun_unroutable == 1


def test_sgw_downlink_picks_the_enb_and_teid_of_the_destination() -> None:
    node = _node("sgw", "sgw1")
    node.udp = FakeSocket()  # type: ignore[assignment]
    for b in [b for b in bearers(load()) if b.sgw == "sgw1"]:
        node.from_tun(_packet(PDN, b.ue_address))
        data, to = node.udp.sent[-1]  # type: ignore[attr-defined]
        msg = decode(data)
        assert isinstance(msg, GPdu)
        assert (to, msg.header.teid) == ((str(b.enb_address), 2152), b.dl_teid)


def test_known_teid_is_decapsulated_unknown_gets_error_indication(tun: tuple[int, int]) -> None:
    r, w = tun
    node = _node("sgw", "sgw2")
    node.udp = FakeSocket()  # type: ignore[assignment]
    node.tun = w
    b = next(b for b in bearers(load()) if b.sgw == "sgw2")
    inner = _packet(b.ue_address, PDN)
    node.from_udp(encode_gpdu(b.ul_teid, inner), (str(b.enb_address), 2152))
    assert os.read(r, 2000) == inner
    assert node.counters.bearers[b.ue].ul_packets == 1
    node.from_udp(encode_gpdu(0xABCDEF, inner), (str(b.enb_address), 40000))
    data, to = node.udp.sent[-1]  # type: ignore[attr-defined]
    msg = decode(data)
    assert isinstance(msg, ErrorIndication)
    assert to == (str(b.enb_address), 2152)
    assert msg.teid_data_i == 0xABCDEF
    assert msg.peer_address == b.sgw_address
    assert node.counters.unknown_teid == 1


def test_echo_is_answered_and_garbage_counted() -> None:
    node = _node("enb", "enb2")
    node.udp = FakeSocket()  # type: ignore[assignment]
    node.from_udp(echo_request(42), ("198.18.0.21", 2152))
    data, to = node.udp.sent[-1]  # type: ignore[attr-defined]
    msg = decode(data)
    assert isinstance(msg, EchoResponse)
    assert msg.header.sequence == 42
    assert to == ("198.18.0.21", 2152)
    node.from_udp(b"\x00\x01", ("198.18.0.21", 2152))
    assert node.counters.malformed == 1


def test_enb_tunnels_inner_ipv6_by_source_address() -> None:
    node = _node("enb", "enb1")
    node.udp = FakeSocket()  # type: ignore[assignment]
    b = bearers(load())[0]
    assert b.ue_address6 is not None
    packet = bytes([0x60, 0, 0, 0, 0, 8, 17, 64]) + b.ue_address6.packed + bytes(16) + bytes(8)
    node.from_tun(packet)
    data, to = node.udp.sent[-1]  # type: ignore[attr-defined]
    msg = decode(data)
    assert isinstance(msg, GPdu)
    assert (to, msg.header.teid, bytes(msg.payload)) == (
        (str(b.sgw_address), 2152),
        b.ul_teid,
        packet,
    )


class UnreachableSocket:
    def sendto(self, data: bytes, address: tuple[str, int]) -> int:
        raise OSError(101, "Network is unreachable")


def test_unreachable_sender_of_unknown_teid_is_counted_not_fatal() -> None:
    node = _node("sgw", "sgw1")
    node.udp = UnreachableSocket()  # type: ignore[assignment]
    node.from_udp(encode_gpdu(0xDEAD, b"x" * 20), ("203.0.113.9", 2152))
    node.from_udp(echo_request(5), ("203.0.113.9", 2152))
    assert node.counters.unknown_teid == 1
    assert node.counters.send_errors == 2
    assert node.counters.error_indication_tx == 0
    assert node.counters.echo_response_tx == 0
