"""Golden frames (built by scapy, see tests/fixtures/net/regenerate.py) decode to what they mean."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from fluidedge.codec.net import ipv4, ipv6
from fluidedge.codec.stack import Kind, classify, decode_frame

FIXTURES = Path(__file__).parents[3] / "fixtures" / "net"


def frame(name: str) -> bytes:
    return bytes.fromhex((FIXTURES / f"{name}.hex").read_text())


def ip(text: str) -> bytes:
    return ipaddress.ip_address(text).packed


ENB, SGW, ENB6, UPF6 = ip("198.18.0.1"), ip("198.18.0.2"), ip("2001:db8::1"), ip("2001:db8::2")
UE, SERVER, UE6, SERVER6 = ip("10.45.0.7"), ip("198.19.0.10"), ip("fd00::7"), ip("fd00:1::10")

# name -> the fields of Classified that the frame was built to have
EXPECTED: dict[str, dict[str, object]] = {
    "lte_gpdu_udp": {
        "kind": Kind.GTP_GPDU, "vlan": None, "outer_src": ENB, "outer_dst": SGW,
        "src_port": 2152, "dst_port": 2152, "udp_offset": 34, "message_type": 255,
        "teid": 0x1234, "qfi": None, "inner_offset": 50, "inner_src": UE, "inner_dst": SERVER,
        "inner_proto": 17, "inner_sport": 40000, "inner_dport": 53, "icmp_type": None,
    },
    "n3_ul_psc_tcp": {
        "kind": Kind.GTP_GPDU, "teid": 0xABCDEF01, "qfi": 9, "inner_offset": 58,
        "inner_src": UE, "inner_dst": SERVER, "inner_proto": 6, "inner_sport": 40001,
        "inner_dport": 443,
    },
    "vlan_ipv4opts_icmp": {
        "kind": Kind.GTP_GPDU, "vlan": 100, "outer_src": ENB, "udp_offset": 18 + 28,
        "teid": 7, "inner_proto": 1, "icmp_type": 8, "icmp_id": 0x77, "inner_sport": None,
    },
    "ipv4_fragment_first": {"kind": Kind.FRAGMENT, "outer_src": ENB, "src_port": None},
    "ipv4_fragment_later": {"kind": Kind.FRAGMENT, "outer_dst": SGW},
    "ipv6_hbh_frag_icmpv6": {
        "kind": Kind.GTP_GPDU, "outer_src": ENB6, "outer_dst": UPF6, "udp_offset": 14 + 40 + 16,
        "teid": 0x42, "inner_src": UE6, "inner_dst": SERVER6, "inner_proto": 58,
        "icmp_type": 128, "icmp_id": 0x99,
    },
    "ipv6_fragment_first": {"kind": Kind.FRAGMENT, "outer_src": ENB6},
    "qinq_inner_ipv6_destopts_udp": {
        "kind": Kind.GTP_GPDU, "vlan": 10, "teid": 0x55, "inner_src": UE6, "inner_proto": 17,
        "inner_sport": 5000, "inner_dport": 5001,
    },
    "echo_request_seq": {"kind": Kind.GTP_OTHER, "message_type": 1, "teid": 0, "inner_src": None},
    "arp": {"kind": Kind.NON_IP, "outer_src": None},
    "udp_not_gtp": {"kind": Kind.NON_GTP, "src_port": 5353, "dst_port": 5353, "teid": None},
    "gtpu_truncated_body": {"kind": Kind.MALFORMED, "src_port": 2152},
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_golden_classification(name: str) -> None:
    raw = frame(name)
    got = classify(raw)
    for field, want in EXPECTED[name].items():
        assert getattr(got, field) == want, field
    assert got == decode_frame(raw).classified()


def test_malformed_names_header_and_offset() -> None:
    got = classify(frame("gtpu_truncated_body"))
    assert got.error is not None
    assert got.error.header == "GTP-U message body"
    assert got.error.offset == 14 + 20 + 8 + 8
    assert got.error.error == "TruncatedError"


def test_ipv4_options_are_walked() -> None:
    f = decode_frame(frame("vlan_ipv4opts_icmp"))
    assert isinstance(f.ip, ipv4.IPv4Header)
    assert f.ip.ihl == 7  # 20 + NOP(1) + RR(3 + 4) padded to 28
    assert [o.type for o in f.ip.options] == [1, 7]  # NOP, Record Route
    assert f.ip.options[1].data[0] == 4  # RR pointer as scapy builds it
    assert f.ip.options[1].data[1:5] == ip("198.18.0.9")
    assert f.ethernet is not None
    assert f.ethernet.vlans[0].pcp == 5


def test_ipv6_extension_chain_is_walked() -> None:
    f = decode_frame(frame("ipv6_hbh_frag_icmpv6"))
    assert isinstance(f.ip, ipv6.IPv6Header)
    assert [e.type for e in f.ip.extensions] == [0, 44]
    assert f.ip.fragment is not None
    assert f.ip.fragment.identification == 0x1111
    assert not f.ip.is_fragment  # atomic fragment (RFC 6946)
    assert f.ip.upper_protocol == 17


def test_inner_ipv6_extension_chain() -> None:
    f = decode_frame(frame("qinq_inner_ipv6_destopts_udp"))
    assert f.ethernet is not None
    assert [(t.tpid, t.vid) for t in f.ethernet.vlans] == [(0x88A8, 10), (0x8100, 20)]
    assert f.inner is not None
    assert f.inner.l4_offset == f.inner.offset + 40 + 8


def test_gpdu_payload_is_not_copied() -> None:
    raw = bytearray(frame("lte_gpdu_udp"))
    f = decode_frame(raw)
    assert f.gtpu is not None
    payload = f.gtpu.payload  # type: ignore[union-attr]
    assert isinstance(payload, memoryview)
    raw[50] = 0x46  # the view sees writes to the frame: it is the same memory
    assert payload[0] == 0x46
