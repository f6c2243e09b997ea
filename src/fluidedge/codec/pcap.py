"""Classic libpcap files: iterate records from bytes, build file bytes from records.

Sans-I/O on purpose: callers read or write the file; this module only turns bytes into
records and back. Both byte orders and both time resolutions (magic ``a1b2c3d4`` for
microseconds, ``a1b23c4d`` for nanoseconds) are read; files are written little-endian with
microseconds, which every tool (tcpdump, tshark, scapy, tcpreplay) reads.

:func:`read_packets` also reads pcapng files (:mod:`fluidedge.codec.pcapng`, what Wireshark and
dumpcap write), recognised by their first bytes: callers that take "a capture" use it.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from fluidedge.codec import pcapng
from fluidedge.codec.errors import MalformedError, TruncatedError, UnsupportedError
from fluidedge.codec.fields import Field, Layout
from fluidedge.codec.record import LINKTYPE_ETHERNET, PCAPNG_MAGIC, Record

__all__ = [
    "GLOBAL_HEADER",
    "GLOBAL_HEADER_LE",
    "LINKTYPE_ETHERNET",
    "MAX_RECORD",
    "PCAPNG_MAGIC",
    "RECORD_HEADER",
    "PcapInfo",
    "Record",
    "build",
    "iter_records",
    "read_header",
    "read_packets",
]

GLOBAL_HEADER = Layout(
    "pcap global header",
    "draft-ietf-opsawg-pcap §4 (libpcap file format)",
    (
        Field("magic", "I", "§4", "a1b2c3d4 (usec) or a1b23c4d (nsec), in the writer's order"),
        Field("version_major", "H", "§4", "2"),
        Field("version_minor", "H", "§4", "4"),
        Field("thiszone", "i", "§4", "0"),
        Field("sigfigs", "I", "§4", "0"),
        Field("snaplen", "I", "§4"),
        Field("linktype", "I", "§4; LINKTYPE registry", "1 = Ethernet"),
    ),
)
RECORD_HEADER = Layout(
    "pcap record header",
    "draft-ietf-opsawg-pcap §5",
    (
        Field("ts_sec", "I", "§5"),
        Field("ts_frac", "I", "§5", "microseconds or nanoseconds"),
        Field("captured_length", "I", "§5"),
        Field("original_length", "I", "§5"),
    ),
)

_MAGIC_USEC = 0xA1B2C3D4
_MAGIC_NSEC = 0xA1B23C4D
MAX_RECORD = 0x40000  # 256 KiB: larger "captured lengths" are corrupt files


@dataclass(frozen=True, slots=True)
class PcapInfo:
    linktype: int
    snaplen: int
    nanosecond: bool
    byte_order: str  # "<" or ">"


def read_header(data: bytes | bytearray | memoryview) -> PcapInfo:
    """Parse the 24-byte global header."""
    if len(data) < 24:
        raise TruncatedError("pcap global header", 0, f"need 24 bytes, have {len(data)}")
    (magic_le,) = struct.unpack_from("<I", data, 0)
    if magic_le == PCAPNG_MAGIC:
        raise UnsupportedError(
            "pcap global header", 0, "a pcapng file: read it with read_packets()"
        )
    for order in ("<", ">"):
        (magic,) = struct.unpack_from(order + "I", data, 0)
        if magic in (_MAGIC_USEC, _MAGIC_NSEC):
            break
    else:
        raise MalformedError("pcap global header", 0, f"bad magic 0x{magic_le:08x}")
    major, _minor, _zone, _sig, snaplen, linktype = struct.unpack_from(order + "HHiIII", data, 4)
    if major != 2:
        raise UnsupportedError("pcap global header", 4, f"version {major}, expected 2")
    return PcapInfo(linktype & 0x0FFFFFFF, snaplen, magic == _MAGIC_NSEC, order)


def iter_records(data: bytes | bytearray | memoryview) -> Iterator[Record]:
    """Yield every record of a pcap file held in ``data`` (zero-copy views into it)."""
    info = read_header(data)
    view = memoryview(data)
    rec = struct.Struct(info.byte_order + "IIII")
    scale = 1 if info.nanosecond else 1000
    pos = 24
    size = len(view)
    while pos < size:
        if size - pos < 16:
            raise TruncatedError("pcap record header", pos, f"need 16 bytes, have {size - pos}")
        sec, frac, caplen, origlen = rec.unpack_from(view, pos)
        if caplen > MAX_RECORD:
            raise MalformedError("pcap record header", pos + 8, f"captured length {caplen}")
        start = pos + 16
        if start + caplen > size:
            raise TruncatedError(
                "pcap record", start, f"captured length {caplen}, {size - start} bytes left"
            )
        data_view = view[start : start + caplen]
        yield Record(sec * 1_000_000_000 + frac * scale, data_view, origlen, info.linktype)
        pos = start + caplen


def read_packets(data: bytes | bytearray | memoryview) -> Iterator[Record]:
    """Records of a classic pcap or a pcapng file held in ``data``, told apart by the magic."""
    return pcapng.iter_records(data) if pcapng.is_pcapng(data) else iter_records(data)


def build(
    packets: Iterable[bytes | bytearray | memoryview | Record],
    *,
    linktype: int = LINKTYPE_ETHERNET,
    snaplen: int = 65535,
    start_ns: int = 1_700_000_000 * 1_000_000_000,
    step_ns: int = 1_000,
) -> bytes:
    """Bytes of a little-endian, microsecond pcap file holding ``packets``.

    Plain buffers get timestamps ``start_ns + i * step_ns``; :class:`Record` keeps its own.
    """
    out = [GLOBAL_HEADER_LE.pack(_MAGIC_USEC, 2, 4, 0, 0, snaplen, linktype)]
    for i, item in enumerate(packets):
        data: bytes | bytearray | memoryview
        if isinstance(item, Record):
            ts, data, orig = item.timestamp_ns, item.data, item.original_length
        else:
            ts, data, orig = start_ns + i * step_ns, item, len(item)
        sec, ns = divmod(ts, 1_000_000_000)
        out.append(_RECORD_LE.pack(sec, ns // 1000, len(data), orig))
        out.append(bytes(data))
    return b"".join(out)


GLOBAL_HEADER_LE = struct.Struct("<IHHiIII")
_RECORD_LE = struct.Struct("<IIII")
