"""The pcapng reader: against editcap's and scapy's files, both byte orders, timestamp
resolutions, several interfaces and sections, skipped blocks, damage located."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether
from scapy.utils import PcapNgWriter
from tests.fixtures.captures import editcap_pcapng

from fluidedge.codec import pcap, pcapng
from fluidedge.codec.errors import MalformedError, TruncatedError, UnsupportedError

FRAMES = [bytes(Ether() / IP(dst="198.18.0.1") / UDP(dport=2152) / (b"x" * n)) for n in (0, 7, 300)]


def _block(order: str, kind: int, body: bytes) -> bytes:
    body += bytes(-len(body) % 4)
    length = 12 + len(body)
    return struct.pack(order + "II", kind, length) + body + struct.pack(order + "I", length)


def _shb(order: str = "<") -> bytes:
    return _block(order, 0x0A0D0D0A, struct.pack(order + "IHHq", 0x1A2B3C4D, 1, 0, -1))


def _idb(
    order: str = "<", linktype: int = 1, snaplen: int = 0, tsresol: int | None = None
) -> bytes:
    options = b""
    if tsresol is not None:
        options = struct.pack(order + "HH", 9, 1) + bytes([tsresol, 0, 0, 0])
        options += struct.pack(order + "HH", 0, 0)
    return _block(order, 1, struct.pack(order + "HHI", linktype, 0, snaplen) + options)


def _epb(order: str, iface: int, ticks: int, data: bytes, original: int | None = None) -> bytes:
    head = struct.pack(
        order + "IIIII", iface, ticks >> 32, ticks & 0xFFFFFFFF, len(data), original or len(data)
    )
    return _block(order, 6, head + data)


def test_editcap_conversion_matches_the_classic_file(tmp_path: Path) -> None:
    classic = pcap.build(FRAMES, start_ns=1_700_000_000_123_456_000, step_ns=1_000)
    converted = editcap_pcapng(classic, tmp_path).read_bytes()
    assert pcapng.is_pcapng(converted)
    ours = [(r.timestamp_ns, bytes(r.data), r.original_length, r.linktype) for r in
            pcap.read_packets(converted)]  # fmt: skip
    want = [(r.timestamp_ns, bytes(r.data), r.original_length, 1) for r in
            pcap.iter_records(classic)]  # fmt: skip
    assert ours == want


def test_scapy_writer_nanosecond_timestamps(tmp_path: Path) -> None:
    path = tmp_path / "scapy.pcapng"
    packets = [Ether(f) for f in FRAMES]
    for i, packet in enumerate(packets):
        packet.time = 1_700_000_000 + i * 0.25
    with PcapNgWriter(str(path)) as writer:
        for packet in packets:
            writer.write(packet)
    records = list(pcapng.iter_records(path.read_bytes()))
    assert [bytes(r.data) for r in records] == FRAMES
    assert [r.timestamp_ns for r in records] == [
        1_700_000_000_000_000_000 + i * 250_000_000 for i in range(3)
    ]


@pytest.mark.parametrize("order", ["<", ">"])
def test_both_byte_orders_resolutions_interfaces_and_sections(order: str) -> None:
    data = (
        _shb(order)
        + _idb(order)  # microseconds (no option)
        + _idb(order, linktype=113, tsresol=9)  # nanoseconds, Linux cooked
        + _block(order, 4, b"\x00\x00\x00\x00")  # name resolution block: skipped
        + _epb(order, 0, 5_000_001, b"abc", original=60)
        + _epb(order, 1, 7_000_000_002, b"defg")
        + _block(order, 5, struct.pack(order + "III", 0, 0, 0))  # statistics: skipped
        + _shb(order)  # a new section forgets the interfaces
        + _idb(order, tsresol=0x80 | 10)  # 2^-10 s
        + _epb(order, 0, 3 * 1024 + 512, b"hi")
    )
    got = [(r.timestamp_ns, bytes(r.data), r.original_length, r.linktype) for r in
           pcapng.iter_records(data)]  # fmt: skip
    assert got == [
        (5_000_001_000, b"abc", 60, 1),
        (7_000_000_002, b"defg", 4, 113),
        (3_500_000_000, b"hi", 2, 1),
    ]


def test_simple_and_obsolete_packet_blocks() -> None:
    opb = struct.pack("<HHIIII", 0, 0, 0, 2_000_000, 3, 3) + b"xyz"
    spb = struct.pack("<I", 10) + b"0123456789"
    data = _shb() + _idb(snaplen=4) + _block("<", 2, opb) + _block("<", 3, spb)
    got = [(r.timestamp_ns, bytes(r.data), r.original_length) for r in pcapng.iter_records(data)]
    assert got == [(2_000_000_000, b"xyz", 3), (0, b"0123", 10)]


@given(st.lists(st.binary(max_size=100), max_size=8), st.sampled_from(["<", ">"]))
def test_hand_built_files_read_back(frames: list[bytes], order: str) -> None:
    data = _shb(order) + _idb(order) + b"".join(_epb(order, 0, i, f) for i, f in enumerate(frames))
    assert [bytes(r.data) for r in pcapng.iter_records(data)] == frames


def test_damage_is_located() -> None:
    good = _shb() + _idb() + _epb("<", 0, 1, b"abcd")
    with pytest.raises(TruncatedError) as truncated:
        list(pcapng.iter_records(good[:-2]))
    assert truncated.value.header == "pcapng block header"
    assert truncated.value.offset == len(_shb() + _idb())
    with pytest.raises(MalformedError, match="interface 3 was not described"):
        list(pcapng.iter_records(_shb() + _idb() + _epb("<", 3, 1, b"abcd")))
    bad_trailer = bytearray(good)
    bad_trailer[-1] ^= 0xFF
    with pytest.raises(MalformedError, match="trailer"):
        list(pcapng.iter_records(bytes(bad_trailer)))
    with pytest.raises(MalformedError, match="byte-order magic"):
        list(pcapng.iter_records(_block("<", 0x0A0D0D0A, bytes(16))))
    shb = _block("<", 0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 2, 0, -1))
    with pytest.raises(UnsupportedError, match="version 2"):
        list(pcapng.iter_records(shb))
    oversized = _shb() + _idb() + _epb("<", 0, 1, b"ab")[:-4]
    with pytest.raises((TruncatedError, MalformedError)):
        list(pcapng.iter_records(oversized))
    with pytest.raises(MalformedError):
        list(pcapng.iter_records(b"\x00" * 16))


def test_classic_reader_points_to_read_packets() -> None:
    with pytest.raises(UnsupportedError, match="read_packets"):
        pcap.read_header(_shb())
