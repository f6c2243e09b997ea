"""Captures read incrementally, from a file or a pipe: pcap and pcapng in constant memory.

:func:`fluidedge.codec.pcap.read_packets` wants the whole capture in memory; operators' captures
are gigabytes and ``tcpdump -w - | fluidedge decode -`` never ends. :class:`CaptureReader`
reads a binary stream in chunks (``chunk_size``, 1 MiB by default) and yields the same records
as ``read_packets`` would for the whole file (property-tested): memory stays at one chunk plus
whatever the consumer keeps. A pcap record's octets come as a ``bytes`` copy (for packets of a
few hundred octets a copy costs what a memoryview slice costs, and ``classify`` reads bytes
fastest); pcapng records are views into their chunk. A record
larger than a chunk (up to the 256 KiB / 16 MiB sanity limits of the formats) makes the reader
read on until it is whole.

Errors are the codecs' (:class:`~fluidedge.codec.errors.CodecError`) with offsets counted from
the start of the stream; they are raised where the damage is, after every record before it
was yielded, so a capture cut short (tcpdump killed mid-write) gives its complete records and
then a :class:`~fluidedge.codec.errors.TruncatedError`.

Reads use ``read1`` when the stream has it (a pipe hands over what it holds instead of
waiting for a full chunk: live captures show up as they arrive).
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from typing import BinaryIO

from fluidedge.codec import pcap, pcapng
from fluidedge.codec.errors import CodecError, MalformedError, TruncatedError
from fluidedge.codec.record import Record

CHUNK_SIZE = 1 << 20
RawRecord = tuple[int, bytes | memoryview, int, int]
"""``(timestamp_ns, data, original_length, linktype)``: a :class:`Record` without the object."""


class CaptureReader:
    """Iterate the records of a pcap or pcapng stream (told apart by the first octets).

    ``position`` is the number of octets consumed so far (updated once per chunk), for
    progress reports; ``records`` counts what was yielded.
    """

    def __init__(self, source: BinaryIO, *, chunk_size: int = CHUNK_SIZE) -> None:
        if chunk_size < 64:
            raise ValueError("chunk_size must be at least 64 octets")
        self._source = source
        read1 = getattr(source, "read1", None)
        self._read: Callable[[int], bytes] = read1 if callable(read1) else source.read
        self._chunk = chunk_size
        self._base = 0  # stream offset of the current window's first octet
        self.position = 0
        self.records = 0

    def __iter__(self) -> Iterator[Record]:
        for ts, data, original, linktype in self.raw():
            yield Record(ts, data, original, linktype)

    def raw(self) -> Iterator[RawRecord]:
        """The records as plain tuples (no object per record: the fast loop of the CLI)."""
        data = self._fill(b"", 4)
        parse = self._pcapng if pcapng.is_pcapng(data) else self._pcap
        try:
            yield from parse(data)
        except CodecError as exc:  # offsets in the window -> offsets in the stream
            raise type(exc)(exc.header, exc.offset + self._base, exc.reason) from None

    # --- I/O ------------------------------------------------------------------------------

    def _more(self, want: int) -> bytes:
        """At least one octet (fewer than ``want`` from a pipe), or b"" at the end."""
        return bytes(self._read(max(want, self._chunk)))

    def _fill(self, data: bytes, need: int) -> bytes:
        """``data`` plus reads until it holds ``need`` octets or the stream ends."""
        parts = [data]
        have = len(data)
        while have < need:
            more = self._more(need - have)
            if not more:
                break
            parts.append(more)
            have += len(more)
        return b"".join(parts) if len(parts) > 1 else data

    def _next_window(self, data: bytes, pos: int, need: int) -> bytes | None:
        """Drop the consumed ``data[:pos]`` and read until ``need`` octets follow: the new
        window (shorter than ``need`` if the stream ended), or None at a clean end."""
        self._base += pos
        self.position = self._base
        window = self._fill(data[pos:], need)
        return window or None

    # --- pcap -----------------------------------------------------------------------------

    def _pcap(self, data: bytes) -> Iterator[RawRecord]:
        data = self._fill(data, 24)
        info = pcap.read_header(data)
        rec = struct.Struct(info.byte_order + "IIII").unpack_from
        scale = 1 if info.nanosecond else 1000
        linktype = info.linktype
        limit = pcap.MAX_RECORD
        pos = 24
        while True:
            size = len(data)
            need = 16
            while size - pos >= 16:
                sec, frac, caplen, original = rec(data, pos)
                if caplen > limit:
                    raise MalformedError("pcap record header", pos + 8, f"captured length {caplen}")
                end = pos + 16 + caplen
                if end > size:
                    need = 16 + caplen
                    break
                self.records += 1
                yield sec * 1_000_000_000 + frac * scale, data[pos + 16 : end], original, linktype
                pos = end
            window = self._next_window(data, pos, need)
            if window is None:
                return
            if len(window) < need:
                _torn_pcap(window, rec)
            data, pos = window, 0

    # --- pcapng ---------------------------------------------------------------------------

    def _pcapng(self, data: bytes) -> Iterator[RawRecord]:
        order = "<"
        interfaces: list[pcapng.Interface] = []
        pos = 0
        while True:
            view = memoryview(data)
            size = len(data)
            need = 12
            while size - pos >= 12:
                (block_type,) = struct.unpack_from(order + "I", view, pos)
                if block_type == pcapng.MAGIC:
                    order = pcapng.section_order(view, pos)
                    interfaces = []
                block_type, length = struct.unpack_from(order + "II", view, pos)
                if length < 12 or length % 4 or length > pcapng.MAX_BLOCK:
                    raise MalformedError(
                        pcapng.BLOCK_HEADER.name, pos + 4, f"block total length {length}"
                    )
                if pos + length > size:
                    need = length
                    break
                record = pcapng.read_block(
                    view, pos, length, block_type, order=order, interfaces=interfaces
                )
                if record is not None:
                    self.records += 1
                    yield record.timestamp_ns, record.data, record.original_length, record.linktype
                pos += length
            window = self._next_window(data, pos, need)
            if window is None:
                return
            if len(window) < need:
                _torn_block(window, need)
            data, pos = window, 0


def _torn_pcap(window: bytes, rec: Callable[..., tuple[int, ...]]) -> None:
    if len(window) < 16:
        raise TruncatedError("pcap record header", 0, f"need 16 bytes, have {len(window)}")
    caplen = rec(window, 0)[2]
    raise TruncatedError(
        "pcap record", 16, f"captured length {caplen}, {len(window) - 16} bytes left"
    )


def _torn_block(window: bytes, need: int) -> None:
    name = pcapng.BLOCK_HEADER.name
    if need == 12:
        raise TruncatedError(name, 0, f"need 12 bytes, have {len(window)}")
    raise TruncatedError(name, 0, f"block of {need} bytes, {len(window)} left")


def read_stream(source: BinaryIO, *, chunk_size: int = CHUNK_SIZE) -> Iterator[Record]:
    """The records of the pcap or pcapng capture ``source`` streams, read in chunks."""
    return iter(CaptureReader(source, chunk_size=chunk_size))
