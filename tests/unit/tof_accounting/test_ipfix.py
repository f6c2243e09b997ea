"""The IPFIX encoder against its own decoder (Hypothesis) and against fixed wire bytes."""

from __future__ import annotations

import contextlib
import ipaddress
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fluidedge.tof.accounting import ipfix, policy
from fluidedge.tof.accounting.usage import UsageRecord

PEN = 32473

v4 = st.ip_addresses(v=4).map(str)
v6 = st.ip_addresses(v=6).map(str)
teid = st.one_of(st.none(), st.integers(1, 2**32 - 1))
counts = st.integers(0, 2**40)
times = st.integers(0, 2**40).map(lambda ms: ms / 1000)


@st.composite
def records(draw: st.DrawFn) -> UsageRecord:
    ue_family = draw(st.sampled_from([v4, v6]))
    peer_family = draw(st.sampled_from([v4, v6]))
    first = draw(times)
    return UsageRecord(
        ue=draw(ue_family),
        enb=draw(peer_family),
        sgw=draw(peer_family),
        uplink_teid=draw(teid),
        downlink_teid=draw(teid),
        service=draw(st.text(min_size=1, max_size=300)),
        service_ip=draw(ue_family),
        uplink_packets=draw(counts),
        uplink_bytes=draw(counts),
        downlink_packets=draw(counts),
        downlink_bytes=draw(counts),
        first=first,
        last=first + 1.5,
        closed=first + 2,
        trigger=draw(st.sampled_from(policy.TRIGGERS)),
        reason=draw(st.sampled_from(["", "idle", "gtpc_delete"])),
    )


def decode_all(messages: list[bytes]) -> tuple[ipfix.Decoder, list[ipfix.Message]]:
    decoder = ipfix.Decoder(PEN)
    out = []
    for data in messages:
        message, length = decoder.decode(data)
        assert length == len(data)
        out.append(message)
    return decoder, out


@settings(max_examples=60, deadline=None)
@given(st.lists(records(), max_size=30), st.integers(512, 9000))
def test_round_trip(recs: list[UsageRecord], max_message: int) -> None:
    enc = ipfix.Encoder(domain=7, pen=PEN, max_message=max_message)
    messages = enc.messages(recs, export_time=1234, with_templates=True)
    _, decoded = decode_all(messages)
    rows = [row for m in decoded for row in m.records]
    expected = []
    for r in recs:
        both = [(0, r.uplink_packets, r.uplink_bytes), (1, r.downlink_packets, r.downlink_bytes)]
        dirs = [d for d in both if d[1]] or both[:1]
        for direction, packets, size in dirs:
            ue_src = direction == 0
            expected.append(
                {
                    "ue": r.ue,
                    "peer": r.service_ip,
                    "enb": r.enb,
                    "sgw": r.sgw,
                    "octetDeltaCount": size,
                    "packetDeltaCount": packets,
                    "flowDirection": direction,
                    "flowStartMilliseconds": round(r.first * 1000),
                    "flowEndMilliseconds": round(r.last * 1000),
                    "uplinkTEID": r.uplink_teid or 0,
                    "downlinkTEID": r.downlink_teid or 0,
                    "reportTrigger": ipfix.TRIGGER_CODES[r.trigger],
                    "serviceName": r.service,
                    "bearerEndReason": r.reason,
                    "ue_src": ue_src,
                }
            )
    assert len(rows) == len(expected)
    for row, want in zip(rows, expected, strict=True):
        six = ":" in want["ue"]  # type: ignore[operator]
        src = row["sourceIPv6Address" if six else "sourceIPv4Address"]
        dst = row["destinationIPv6Address" if six else "destinationIPv4Address"]
        ue, peer = (src, dst) if want.pop("ue_src") else (dst, src)
        assert (ue, peer) == (want.pop("ue"), want.pop("peer"))
        peer6 = ":" in want["enb"]  # type: ignore[operator]
        assert row["enbIPv6Address" if peer6 else "enbIPv4Address"] == want.pop("enb")
        assert row["sgwIPv6Address" if peer6 else "sgwIPv4Address"] == want.pop("sgw")
        for key, value in want.items():
            assert row[key] == value, key
    # Sizes and sequence numbers (RFC 7011 §3.1: data records before this message).
    seq = 0
    for data, m in zip(messages, decoded, strict=True):
        assert len(data) <= max(max_message, 16 + len(ipfix.template_set(PEN)) + 4 + 700)
        assert m.sequence == seq
        assert m.domain == 7
        seq += len(m.records)
    assert enc.sequence == seq


def a(text: str) -> bytes:
    return ipaddress.ip_address(text).packed


WEB = UsageRecord(
    ue="198.18.100.1",
    enb="198.18.0.11",
    sgw="198.18.0.21",
    uplink_teid=0x100,
    downlink_teid=None,
    service="web",
    service_ip="198.18.50.1",
    uplink_packets=2,
    uplink_bytes=300,
    downlink_packets=0,
    downlink_bytes=0,
    first=1.5,
    last=2.25,
    closed=3.0,
    trigger=policy.VOLUME,
)


def test_wire_bytes_of_one_record() -> None:
    rec = WEB
    (message,) = ipfix.Encoder(1, PEN).messages([rec], 99, with_templates=False)
    data = (
        a("198.18.100.1")
        + a("198.18.50.1")
        + a("198.18.0.11")
        + a("198.18.0.21")
        + struct.pack("!QQQQBB", 300, 2, 1500, 2250, 0, 2)
        + struct.pack("!IIB", 0x100, 0, 1)
        + b"\x03web\x00"
    )
    header = struct.pack("!HHIII", 10, 16 + 4 + len(data), 99, 0, 1)
    assert message == header + struct.pack("!HH", 256, 4 + len(data)) + data


def test_template_set_names_iana_and_enterprise_elements() -> None:
    body = ipfix.template_set(PEN)
    set_id, length = struct.unpack_from("!HH", body)
    assert (set_id, length) == (2, len(body))
    tid, count = struct.unpack_from("!HH", body, 4)
    assert (tid, count) == (256, len(ipfix.TEMPLATES[256]))
    # sourceIPv4Address (IE 8, 4 octets) first; enterprise bit + PEN on the eNB address.
    assert struct.unpack_from("!HH", body, 8) == (8, 4)
    assert struct.unpack_from("!HHI", body, 16) == (0x8001, 4, PEN)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x00\x0a\x00\x10",
        struct.pack("!HHIII", 9, 16, 0, 0, 0),
        struct.pack("!HHIII", 10, 40, 0, 0, 0),
    ],
)
def test_decoder_refuses_broken_headers(data: bytes) -> None:
    with pytest.raises(ipfix.IpfixError):
        ipfix.Decoder(PEN).decode(data)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_decoder_never_crashes_otherwise(data: bytes) -> None:
    with contextlib.suppress(ipfix.IpfixError):
        ipfix.Decoder(PEN).decode(struct.pack("!HHIII", 10, 16 + len(data), 0, 0, 0) + data)


def test_a_message_split_between_records_of_one_template_stays_within_its_size() -> None:
    """After a split, the next record of the same template opens a new set in the new
    message: its 4-byte header counts toward the size (it did not: a message could exceed
    ``max_message`` by 4 bytes, found by the round trip above)."""
    rec = WEB
    one = len(next(iter(ipfix.data_records(rec)))[1])
    for max_message in range(16 + 4 + one, 16 + 4 + 8 * one):
        enc = ipfix.Encoder(domain=7, pen=PEN, max_message=max_message)
        templates = enc.messages([], export_time=1234, with_templates=True)
        messages = enc.messages([rec] * 20, export_time=1234, with_templates=False)
        assert len(messages) > 1
        assert all(len(m) <= max_message for m in messages), max_message
        _, decoded = decode_all(templates + messages)
        assert sum(len(m.records) for m in decoded) == 20
