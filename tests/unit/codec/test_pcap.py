"""The pcap reader/writer: round trips, both byte orders and resolutions, damage reported."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st
from scapy.layers.l2 import Ether
from scapy.utils import rdpcap

from fluidedge.codec import pcap
from fluidedge.codec.errors import CodecError, TruncatedError, UnsupportedError


@given(st.lists(st.binary(max_size=200), max_size=10))
def test_build_then_read_round_trip(frames: list[bytes]) -> None:
    data = pcap.build(frames)
    assert [bytes(r.data) for r in pcap.iter_records(data)] == frames


def test_scapy_reads_what_we_write(tmp_path: object) -> None:
    frames = [bytes(Ether(dst="02:00:00:00:00:02") / (b"x" * n)) for n in (1, 50, 400)]
    path = f"{tmp_path}/ours.pcap"
    with open(path, "wb") as fh:
        fh.write(pcap.build(frames, start_ns=1_700_000_000_123_456_000))
    read = rdpcap(path)
    assert [bytes(p) for p in read] == frames
    assert float(read[0].time) == pytest.approx(1_700_000_000.123456)


@pytest.mark.parametrize("order", ["<", ">"])
@pytest.mark.parametrize(("magic", "scale"), [(0xA1B2C3D4, 1000), (0xA1B23C4D, 1)])
def test_reads_both_orders_and_resolutions(order: str, magic: int, scale: int) -> None:
    head = struct.pack(order + "IHHiIII", magic, 2, 4, 0, 0, 65535, 1)
    rec = struct.pack(order + "IIII", 5, 7, 3, 60) + b"abc"
    (r,) = pcap.iter_records(head + rec)
    assert (bytes(r.data), r.original_length, r.timestamp_ns) == (b"abc", 60, 5 * 10**9 + 7 * scale)


def test_damage_is_located() -> None:
    data = pcap.build([b"abcdef", b"ghijkl"])
    with pytest.raises(TruncatedError) as err:
        list(pcap.iter_records(data[:-2]))
    assert (err.value.header, err.value.offset) == ("pcap record", 24 + 16 + 6 + 16)
    with pytest.raises(UnsupportedError):
        pcap.read_header(struct.pack("<I", 0x0A0D0D0A) + bytes(20))
    with pytest.raises(CodecError):
        pcap.read_header(b"\x00" * 24)
