"""The streaming capture reader: the same records as the whole-file reader, whatever the chunk
size, from a file or a pipe; several pcapng interfaces and sections; damage located, records
before it kept."""

from __future__ import annotations

import io
import os
import struct
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.fixtures.captures import editcap_pcapng
from tests.unit.codec.test_pcapng import _epb, _idb, _shb

from fluidedge.codec import pcap
from fluidedge.codec.errors import CodecError, MalformedError, TruncatedError
from fluidedge.codec.pcapstream import CaptureReader, read_stream

FIXTURES = Path(__file__).parents[2] / "fixtures" / "net"
CLASSIC = (FIXTURES / "frames.pcap").read_bytes()


def _tuples(records: object) -> list[tuple[int, bytes, int, int]]:
    return [(r.timestamp_ns, bytes(r.data), r.original_length, r.linktype) for r in records]  # type: ignore[attr-defined]


def _multi_interface_pcapng() -> bytes:
    """Two sections (one big-endian), interfaces of different link types and resolutions."""
    a, b = bytes(range(60)), bytes(range(100, 180))
    return b"".join(
        [
            _shb("<"),
            _idb("<", linktype=1),
            _idb("<", linktype=101, tsresol=9),
            _epb("<", 0, 1_700_000_000_000_001, a),
            _epb("<", 1, 1_700_000_000_000_000_002, b[:20]),
            _epb("<", 0, 1_700_000_000_000_003, b, original=1500),
            _shb(">"),
            _idb(">", linktype=1, tsresol=3),
            _epb(">", 0, 1_700_000_000_004, a[:14]),
        ]
    )


def _big_endian_nsec(data: bytes) -> bytes:
    """The classic fixture rewritten big-endian with nanosecond timestamps."""
    out = [struct.pack(">IHHiIII", 0xA1B23C4D, 2, 4, 0, 0, 65535, 1)]
    for r in pcap.iter_records(data):
        sec, ns = divmod(r.timestamp_ns, 1_000_000_000)
        out.append(struct.pack(">IIII", sec, ns, len(r.data), r.original_length) + bytes(r.data))
    return b"".join(out)


SAMPLES = {
    "pcap": CLASSIC,
    "pcap-nsec-big-endian": _big_endian_nsec(CLASSIC),
    "pcapng-multi": _multi_interface_pcapng(),
}


@pytest.mark.parametrize("name", sorted(SAMPLES))
@pytest.mark.parametrize("chunk", [64, 65, 100, 1000, 1 << 20])
def test_streamed_equals_whole(name: str, chunk: int) -> None:
    data = SAMPLES[name]
    want = _tuples(pcap.read_packets(data))
    assert len(want) >= 4
    reader = CaptureReader(io.BytesIO(data), chunk_size=chunk)
    assert _tuples(reader) == want
    assert reader.records == len(want)
    assert reader.position == len(data)


def test_multi_interface_pcapng_keeps_each_interface() -> None:
    got = _tuples(read_stream(io.BytesIO(SAMPLES["pcapng-multi"]), chunk_size=64))
    assert [r[3] for r in got] == [1, 101, 1, 1]
    assert [r[0] for r in got] == [
        1_700_000_000_000_001_000,  # microseconds (no if_tsresol)
        1_700_000_000_000_000_002,  # nanoseconds
        1_700_000_000_000_003_000,
        1_700_000_000_004_000_000,  # milliseconds, second section, big-endian
    ]
    assert got[2][2] == 1500


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(sorted(SAMPLES)), st.integers(64, 400), st.integers(0, 40))
def test_any_chunking_and_any_cut(name: str, chunk: int, cut_back: int) -> None:
    """Cut anywhere: the streamed reader yields what the whole-file reader yields, then fails
    with the same error class, header and offset (or both end cleanly)."""
    data = SAMPLES[name][: len(SAMPLES[name]) - cut_back]

    def run(records: object) -> tuple[list[tuple[int, bytes, int, int]], object]:
        got: list[tuple[int, bytes, int, int]] = []
        try:
            for r in records:  # type: ignore[attr-defined]
                got.append((r.timestamp_ns, bytes(r.data), r.original_length, r.linktype))
        except CodecError as exc:
            return got, (type(exc), exc.header, exc.offset)
        return got, None

    whole = run(pcap.read_packets(data))
    streamed = run(CaptureReader(io.BytesIO(data), chunk_size=chunk))
    assert streamed == whole
    assert (whole[1] is None) == (cut_back == 0)


def test_truncated_pcap_yields_the_records_before_the_damage() -> None:
    cut = CLASSIC[:-5]
    reader = CaptureReader(io.BytesIO(cut), chunk_size=100)
    got: list[bytes] = []

    def consume() -> None:
        for record in reader:
            got.append(bytes(record.data))

    with pytest.raises(TruncatedError) as info:
        consume()
    assert len(got) == len(list(pcap.iter_records(CLASSIC))) - 1
    assert info.value.header == "pcap record"
    # the offset is the stream offset of the torn record's data, as the whole-file reader says
    with pytest.raises(TruncatedError) as whole:
        list(pcap.read_packets(cut))
    assert info.value.offset == whole.value.offset > 24


def test_corrupt_length_is_an_error_at_its_stream_offset() -> None:
    bad = bytearray(CLASSIC)
    first_len = int.from_bytes(bad[24 + 8 : 24 + 12], "little")
    second = 24 + 16 + first_len
    bad[second + 8 : second + 12] = (10_000_000).to_bytes(4, "little")
    with pytest.raises(MalformedError) as info:
        list(CaptureReader(io.BytesIO(bytes(bad)), chunk_size=64))
    assert (info.value.header, info.value.offset) == ("pcap record header", second + 8)


def test_pipe_delivers_records_as_they_arrive() -> None:
    """A pipe that holds one record and then waits: that record comes out before the writer
    sends the rest (read1, not a full chunk)."""
    records = list(pcap.iter_records(CLASSIC))
    first_end = 24 + 16 + len(records[0].data)
    read_fd, write_fd = os.pipe()
    reader_file = os.fdopen(read_fd, "rb")
    writer_file = os.fdopen(write_fd, "wb", buffering=0)
    writer_file.write(CLASSIC[:first_end])
    got_first = threading.Event()
    finished: list[list[bytes]] = []

    def consume() -> None:
        out = []
        for record in CaptureReader(reader_file):
            out.append(bytes(record.data))
            got_first.set()
        finished.append(out)

    thread = threading.Thread(target=consume, daemon=True)
    thread.start()
    assert got_first.wait(timeout=30), "the first record did not come out of the pipe"
    writer_file.write(CLASSIC[first_end:])
    writer_file.close()
    thread.join(timeout=30)
    reader_file.close()
    assert finished == [[bytes(r.data) for r in records]]


def test_empty_and_foreign_streams() -> None:
    with pytest.raises(TruncatedError):
        list(CaptureReader(io.BytesIO(b"")))
    with pytest.raises(MalformedError):
        list(CaptureReader(io.BytesIO(b"definitely not a capture file")))
    with pytest.raises(ValueError, match="chunk_size"):
        CaptureReader(io.BytesIO(CLASSIC), chunk_size=8)


def test_editcap_pcapng_from_a_real_pipe(tmp_path: Path) -> None:
    """Wireshark's own pcapng, through a real OS pipe (a child process writing it)."""
    converted = editcap_pcapng(CLASSIC, tmp_path)
    child = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdout.buffer.write(open(sys.argv[1],'rb').read())",
         str(converted)],
        stdout=subprocess.PIPE,
    )  # fmt: skip
    assert child.stdout is not None
    got = _tuples(CaptureReader(child.stdout, chunk_size=128))
    assert child.wait(timeout=60) == 0
    child.stdout.close()
    assert got == _tuples(pcap.read_packets(converted.read_bytes()))
