"""NAT of ICMP errors: the quoted packet's addresses are translated and every checksum (quoted
IPv4 header, quoted TCP/UDP, ICMP/ICMPv6) comes out as scapy computes it from scratch."""

from __future__ import annotations

from ipaddress import ip_address

import pytest
from hypothesis import given
from hypothesis import strategies as st
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import ICMPv6DestUnreach, ICMPv6EchoRequest, ICMPv6TimeExceeded, IPv6
from scapy.packet import Packet, Raw

from fluidedge.codec.net import nat

UE4, APP4, SVC4 = "10.45.0.7", "198.19.0.10", "198.18.50.1"
UE6, APP6, SVC6 = "fd00::7", "fd19::10", "fd18::50:1"


def _b(text: str) -> bytes:
    return ip_address(text).packed


def _down4(quote_dst: str, l4: Packet, *, icmp_type: int = 3) -> bytes:
    """An app's ICMP error toward the UE, quoting the UE's packet to ``quote_dst``."""
    return bytes(
        IP(src=APP4, dst=UE4) / ICMP(type=icmp_type, code=3) / IP(src=UE4, dst=quote_dst) / l4
    )


@pytest.mark.parametrize(
    "l4",
    [
        UDP(sport=40000, dport=7000) / b"payload",
        TCP(sport=40000, dport=80, flags="PA") / b"GET / HTTP/1.1\r\n",
        UDP(sport=40000, dport=7000, chksum=0) / b"no checksum",
    ],
    ids=["udp", "tcp", "udp-no-checksum"],
)
def test_downlink_error_quotes_the_service_ip(l4: Packet) -> None:
    buf = bytearray(_down4(APP4, l4))
    delta = nat.rewrite_icmp_error(buf, quoted_destination=(_b(APP4), _b(SVC4)))
    assert delta != 0
    assert bytes(buf) == _down4(SVC4, l4)


def test_uplink_error_quotes_the_application_ip() -> None:
    # The UE answers the app's datagram (which it saw from the service IP) with port unreachable.
    quoted = IP(src=SVC4, dst=UE4) / UDP(sport=7000, dport=40000) / b"x"
    after = IP(src=APP4, dst=UE4) / UDP(sport=7000, dport=40000) / b"x"
    buf = bytearray(bytes(IP(src=UE4, dst=APP4) / ICMP(type=3, code=3) / quoted))
    nat.rewrite_icmp_error(buf, quoted_source=(_b(SVC4), _b(APP4)))
    assert bytes(buf) == bytes(IP(src=UE4, dst=APP4) / ICMP(type=3, code=3) / after)


def test_truncated_quote_keeps_what_it_cannot_hold() -> None:
    # RFC 792 quotes the header and 8 bytes: a TCP quote stops before the TCP checksum.
    tcp = TCP(sport=40000, dport=80, flags="PA") / b"data"

    def error(quote_dst: str) -> bytes:
        quote = bytes(IP(src=UE4, dst=quote_dst) / tcp)[:28]
        return bytes(IP(src=APP4, dst=UE4) / ICMP(type=3, code=3) / Raw(quote))

    buf = bytearray(error(APP4))
    assert nat.rewrite_icmp_error(buf, quoted_destination=(_b(APP4), _b(SVC4))) != 0
    assert bytes(buf) == error(SVC4)


@pytest.mark.parametrize("error", [ICMPv6DestUnreach(code=4), ICMPv6TimeExceeded()])
def test_icmpv6_error(error: Packet) -> None:
    l4 = UDP(sport=40000, dport=7000) / b"six"
    before = IPv6(src=APP6, dst=UE6) / error / IPv6(src=UE6, dst=APP6) / l4
    after = IPv6(src=APP6, dst=UE6) / error.copy() / IPv6(src=UE6, dst=SVC6) / l4
    buf = bytearray(bytes(before))
    nat.rewrite_icmp_error(buf, quoted_destination=(_b(APP6), _b(SVC6)))
    assert bytes(buf) == bytes(after)


def test_other_messages_and_other_addresses_are_left_alone() -> None:
    echo = bytearray(bytes(IP(src=APP4, dst=UE4) / ICMP(type=8) / b"ping"))
    echo6 = bytearray(bytes(IPv6(src=APP6, dst=UE6) / ICMPv6EchoRequest()))
    unrelated = bytearray(_down4("203.0.113.9", UDP(sport=1, dport=2)))
    for buf in (echo, echo6, unrelated):
        before = bytes(buf)
        assert nat.rewrite_icmp_error(buf, quoted_destination=(_b(APP4), _b(SVC4))) == 0
        assert bytes(buf) == before


@given(st.binary(max_size=80), st.integers(0, 255))
def test_never_raises_beyond_codec_errors_on_garbage_quotes(body: bytes, code: int) -> None:
    buf = bytearray(bytes(IP(src=APP4, dst=UE4) / ICMP(type=3, code=code) / body))
    before = bytes(buf)
    delta = nat.rewrite_icmp_error(buf, quoted_destination=(_b(APP4), _b(SVC4)))
    if delta == 0:
        assert bytes(buf) == before
    else:
        rebuilt = IP(bytes(buf))
        rebuilt[ICMP].chksum = None
        assert IP(bytes(rebuilt))[ICMP].chksum == IP(bytes(buf))[ICMP].chksum
