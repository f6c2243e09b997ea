"""pcapng files (what Wireshark and dumpcap write by default): iterate packet records from bytes.

Sans-I/O like :mod:`fluidedge.codec.pcap`: the caller reads the file and gets the same
:class:`~fluidedge.codec.pcap.Record` values (zero-copy views), each with its interface's link
type. What is read (draft-ietf-opsawg-pcapng):

- Section Header Blocks, in either byte order; a new section resets the interfaces;
- Interface Description Blocks: link type, snap length and the ``if_tsresol`` option (powers of
  ten or of two; microseconds when absent);
- Enhanced, Simple and (obsolete) Packet Blocks;
- every other block (name resolution, statistics, secrets, custom...) is skipped by its length.

Errors say which block and at which file offset decoding failed; a packet block naming an
interface that was not described, a block length that is not a multiple of 4 or disagrees with
its trailer, and a truncated block are errors.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass

from fluidedge.codec.errors import MalformedError, TruncatedError, UnsupportedError
from fluidedge.codec.fields import Field, Layout
from fluidedge.codec.record import PCAPNG_MAGIC, Record

SPEC = "draft-ietf-opsawg-pcapng"

BLOCK_HEADER = Layout(
    "pcapng block header",
    f"{SPEC} §3.1 (general block structure)",
    (
        Field("block_type", "I", "§3.1"),
        Field("block_total_length", "I", "§3.1", "whole block, multiple of 4, repeated at its end"),
    ),
)
SECTION_HEADER = Layout(
    "pcapng section header block",
    f"{SPEC} §4.1",
    (
        Field("byte_order_magic", "I", "§4.1", "1a2b3c4d in the writer's byte order"),
        Field("major_version", "H", "§4.1", "1"),
        Field("minor_version", "H", "§4.1", "0"),
        Field("section_length", "q", "§4.1", "-1 when not given"),
    ),
)
INTERFACE_DESCRIPTION = Layout(
    "pcapng interface description block",
    f"{SPEC} §4.2",
    (
        Field("linktype", "H", "§4.2; LINKTYPE registry", "1 = Ethernet"),
        Field("reserved", "H", "§4.2", "0"),
        Field("snaplen", "I", "§4.2", "0 = no limit"),
    ),
)
ENHANCED_PACKET = Layout(
    "pcapng enhanced packet block",
    f"{SPEC} §4.3",
    (
        Field("interface_id", "I", "§4.3"),
        Field("timestamp_high", "I", "§4.3", "upper 32 bits, units of the interface's tsresol"),
        Field("timestamp_low", "I", "§4.3"),
        Field("captured_length", "I", "§4.3"),
        Field("original_length", "I", "§4.3"),
    ),
)
SIMPLE_PACKET = Layout(
    "pcapng simple packet block",
    f"{SPEC} §4.4",
    (Field("original_length", "I", "§4.4", "captured = min(original, snaplen of interface 0)"),),
)
OBSOLETE_PACKET = Layout(
    "pcapng packet block",
    f"{SPEC} Appendix A (obsolete Packet Block)",
    (
        Field("interface_id", "H", "Appendix A"),
        Field("drops_count", "H", "Appendix A"),
        Field("timestamp_high", "I", "Appendix A"),
        Field("timestamp_low", "I", "Appendix A"),
        Field("captured_length", "I", "Appendix A"),
        Field("original_length", "I", "Appendix A"),
    ),
)

MAGIC = PCAPNG_MAGIC  # Section Header Block type; a palindrome, so read in any order
BYTE_ORDER_MAGIC = 0x1A2B3C4D
_IDB, _OPB, _SPB, _EPB = 1, 2, 3, 6
_OPT_END, _IF_TSRESOL = 0, 9
MAX_BLOCK = 0x1000000  # 16 MiB: larger blocks are corrupt files


@dataclass(frozen=True, slots=True)
class Interface:
    linktype: int
    snaplen: int
    ticks_per_second: int


def is_pcapng(data: bytes | bytearray | memoryview) -> bool:
    """True if ``data`` starts with a Section Header Block."""
    return len(data) >= 4 and struct.unpack_from("<I", data, 0)[0] == MAGIC


def iter_records(data: bytes | bytearray | memoryview) -> Iterator[Record]:
    """Yield every packet of a pcapng file held in ``data``, in file order."""
    view = memoryview(data)
    size = len(view)
    if not is_pcapng(view):
        raise MalformedError("pcapng section header block", 0, "file does not start with one")
    order = "<"
    interfaces: list[Interface] = []
    pos = 0
    while pos < size:
        if size - pos < 12:
            raise TruncatedError("pcapng block header", pos, f"need 12 bytes, have {size - pos}")
        (block_type,) = struct.unpack_from(order + "I", view, pos)
        if block_type == MAGIC:
            order = section_order(view, pos)
            interfaces = []
        (block_type, length) = struct.unpack_from(order + "II", view, pos)
        record = read_block(view, pos, length, block_type, order=order, interfaces=interfaces)
        if record is not None:
            yield record
        pos += length


def read_block(
    view: memoryview,
    pos: int,
    length: int,
    block_type: int,
    *,
    order: str,
    interfaces: list[Interface],
) -> Record | None:
    """Check and read the block at ``pos`` (its interfaces go into ``interfaces``); its packet
    if it holds one. Shared with the streaming reader (:mod:`fluidedge.codec.pcapstream`)."""
    _check_length(view, pos, length, order)
    body = view[pos + 8 : pos + length - 4]
    if block_type == MAGIC:
        _check_section(body, pos, order)
    elif block_type == _IDB:
        interfaces.append(_interface(body, pos, order))
    elif block_type == _EPB:
        return _packet(body, pos, order, interfaces, layout=ENHANCED_PACKET, fmt="IIIII")
    elif block_type == _OPB:
        return _packet(body, pos, order, interfaces, layout=OBSOLETE_PACKET, fmt="HHIIII")
    elif block_type == _SPB:
        return _simple(body, pos, order, interfaces)
    return None


def section_order(view: memoryview, pos: int) -> str:
    if len(view) - pos < 12:
        raise TruncatedError(SECTION_HEADER.name, pos, "no byte-order magic")
    for order in ("<", ">"):
        if struct.unpack_from(order + "I", view, pos + 8)[0] == BYTE_ORDER_MAGIC:
            return order
    raise MalformedError(SECTION_HEADER.name, pos + 8, "bad byte-order magic")


def _check_length(view: memoryview, pos: int, length: int, order: str) -> None:
    where = BLOCK_HEADER.name
    if length < 12 or length % 4 or length > MAX_BLOCK:
        raise MalformedError(where, pos + 4, f"block total length {length}")
    if pos + length > len(view):
        raise TruncatedError(where, pos, f"block of {length} bytes, {len(view) - pos} left")
    (trailer,) = struct.unpack_from(order + "I", view, pos + length - 4)
    if trailer != length:
        raise MalformedError(where, pos + length - 4, f"trailer {trailer} != length {length}")


def _check_section(body: memoryview, pos: int, order: str) -> None:
    if len(body) < 16:
        raise TruncatedError(SECTION_HEADER.name, pos + 8, f"need 16 bytes, have {len(body)}")
    _magic, major, _minor, _length = struct.unpack_from(order + "IHHq", body, 0)
    if major != 1:
        raise UnsupportedError(SECTION_HEADER.name, pos + 12, f"version {major}, expected 1")


def _interface(body: memoryview, pos: int, order: str) -> Interface:
    name = INTERFACE_DESCRIPTION.name
    if len(body) < 8:
        raise TruncatedError(name, pos + 8, f"need 8 bytes, have {len(body)}")
    linktype, _reserved, snaplen = struct.unpack_from(order + "HHI", body, 0)
    ticks = 1_000_000
    offset = 8
    while offset + 4 <= len(body):
        code, length = struct.unpack_from(order + "HH", body, offset)
        if code == _OPT_END:
            break
        value = body[offset + 4 : offset + 4 + length]
        if len(value) < length:
            raise TruncatedError(name, pos + 8 + offset, f"option {code} of {length} bytes")
        if code == _IF_TSRESOL and length >= 1:
            resolution = value[0]
            exponent = resolution & 0x7F
            if exponent > (63 if resolution & 0x80 else 18):
                raise UnsupportedError(name, pos + 12 + offset, f"if_tsresol 0x{resolution:02x}")
            ticks = 2**exponent if resolution & 0x80 else 10**exponent
        offset += 4 + (length + 3) // 4 * 4
    return Interface(linktype, snaplen, ticks)


def _lookup(interfaces: list[Interface], index: int, where: str, pos: int) -> Interface:
    if index >= len(interfaces):
        raise MalformedError(where, pos, f"interface {index} was not described")
    return interfaces[index]


def _packet(
    body: memoryview,
    pos: int,
    order: str,
    interfaces: list[Interface],
    *,
    layout: Layout,
    fmt: str,
) -> Record:
    head = struct.calcsize(order + fmt)
    if len(body) < head:
        raise TruncatedError(layout.name, pos + 8, f"need {head} bytes, have {len(body)}")
    fields = struct.unpack_from(order + fmt, body, 0)
    index, high, low, captured, original = fields[0], *fields[-4:]
    interface = _lookup(interfaces, index, layout.name, pos + 8)
    if head + captured > len(body):
        raise TruncatedError(
            layout.name, pos + 8 + head, f"captured length {captured}, {len(body) - head} left"
        )
    ticks = (high << 32) | low
    seconds, rest = divmod(ticks, interface.ticks_per_second)
    timestamp = seconds * 1_000_000_000 + rest * 1_000_000_000 // interface.ticks_per_second
    return Record(timestamp, body[head : head + captured], original, interface.linktype)


def _simple(body: memoryview, pos: int, order: str, interfaces: list[Interface]) -> Record:
    name = SIMPLE_PACKET.name
    if len(body) < 4:
        raise TruncatedError(name, pos + 8, f"need 4 bytes, have {len(body)}")
    (original,) = struct.unpack_from(order + "I", body, 0)
    interface = _lookup(interfaces, 0, name, pos + 8)
    captured = original if interface.snaplen == 0 else min(original, interface.snaplen)
    captured = min(captured, len(body) - 4)
    return Record(0, body[4 : 4 + captured], original, interface.linktype)
