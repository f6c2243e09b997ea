"""IPFIX (RFC 7011) for usage records: a sans-I/O encoder, and a decoder for tests and tools.

Every :class:`~fluidedge.tof.accounting.usage.UsageRecord` becomes one Data Record per
direction that carried packets (a record without any packet, e.g. one marking counters as
lost, becomes one uplink Data Record with zero counts): the UE is the source address uplink and
the destination address downlink, so a plain flow collector (nfcapd, nfacctd) aggregates per UE
with its usual ``srcip``/``dstip`` keys, and our enterprise elements carry what IANA has no
element for (the eNB and SGW addresses, the TEIDs, the service, the trigger).

Wire layout (RFC 7011 section numbers):

- Message Header (§3.1): version 10, length, export time (s), sequence number (Data Records
  sent before this message, modulo 2^32), observation domain id.
- Set Header (§3.3.2): set id (2 = Template Set, ≥ 256 = Data Set of that template), length.
- Template Record (§3.4.1): template id, field count, Field Specifiers (§3.2): element id with
  the enterprise bit, field length, and the enterprise number when the bit is set.
- Variable-length fields (§7): one length octet, or 255 and a two-octet length.

Templates are listed in :data:`TEMPLATES`, one per (UE family, peer family); the elements in
:data:`ELEMENTS` with their IANA numbers (https://www.iana.org/assignments/ipfix) or, for
``enterprise`` ones, numbers under the configured Private Enterprise Number (RFC 7011 §3.2;
default 32473, RFC 5612's documentation number: docs/accounting.md).
"""

from __future__ import annotations

import ipaddress
import socket
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from fluidedge.tof.accounting import policy
from fluidedge.tof.accounting.usage import UsageRecord
from fluidedge.tof.errors import TofError

VERSION = 10  # RFC 7011 §3.1
TEMPLATE_SET_ID = 2  # §3.3.2
VARLEN = 65535  # §7
_HEADER = struct.Struct("!HHIII")
_SET = struct.Struct("!HH")


class IpfixError(TofError):
    """An IPFIX message that does not decode (the decoder's only error)."""


@dataclass(frozen=True, slots=True)
class Element:
    """One Information Element: its name, number, encoding and where it is defined."""

    name: str
    number: int
    length: int  # octets, or VARLEN
    kind: str  # "unsigned", "ipv4", "ipv6", "string"
    enterprise: bool = False
    ref: str = ""


# The field table. IANA elements: the registry's numbers and abstract data types.
ELEMENTS = {
    e.name: e
    for e in (
        Element("octetDeltaCount", 1, 8, "unsigned", ref="IANA IE 1 (RFC 7012)"),
        Element("packetDeltaCount", 2, 8, "unsigned", ref="IANA IE 2"),
        Element("sourceIPv4Address", 8, 4, "ipv4", ref="IANA IE 8"),
        Element("destinationIPv4Address", 12, 4, "ipv4", ref="IANA IE 12"),
        Element("sourceIPv6Address", 27, 16, "ipv6", ref="IANA IE 27"),
        Element("destinationIPv6Address", 28, 16, "ipv6", ref="IANA IE 28"),
        Element("flowDirection", 61, 1, "unsigned", ref="IANA IE 61: 0 ingress, 1 egress"),
        Element("flowEndReason", 136, 1, "unsigned", ref="IANA IE 136 (RFC 5102 §5.11.3)"),
        Element("flowStartMilliseconds", 152, 8, "unsigned", ref="IANA IE 152 (ms epoch)"),
        Element("flowEndMilliseconds", 153, 8, "unsigned", ref="IANA IE 153 (ms epoch)"),
        # Enterprise-specific (PEN: IpfixConfig.enterprise_number): what IANA lacks.
        Element("enbIPv4Address", 1, 4, "ipv4", True, "S1-U eNB address of the bearer"),
        Element("sgwIPv4Address", 2, 4, "ipv4", True, "S1-U SGW address of the bearer"),
        Element("uplinkTEID", 3, 4, "unsigned", True, "SGW's TEID (TS 29.281 §5.1); 0: unknown"),
        Element("downlinkTEID", 4, 4, "unsigned", True, "eNB's TEID; 0: unknown"),
        Element("reportTrigger", 5, 1, "unsigned", True, "TRIGGER_CODES"),
        Element("serviceName", 6, VARLEN, "string", True, "TOF service (UTF-8)"),
        Element("bearerEndReason", 7, VARLEN, "string", True, "bearer event reason"),
        Element("enbIPv6Address", 8, 16, "ipv6", True, "S1-U eNB address (IPv6)"),
        Element("sgwIPv6Address", 9, 16, "ipv6", True, "S1-U SGW address (IPv6)"),
    )
}

# reportTrigger values (docs/accounting.md).
TRIGGER_CODES = {name: i + 1 for i, name in enumerate(policy.TRIGGERS)}
TRIGGER_NAMES = {code: name for name, code in TRIGGER_CODES.items()}

# flowEndReason (RFC 5102 §5.11.3): 0x02 active timeout, 0x03 end of flow, 0x04 forced end.
_END_REASON = {
    policy.VOLUME: 2,
    policy.TIME: 2,
    policy.PERIODIC: 2,
    policy.BEARER_END: 3,
    policy.TEID_REPLACED: 3,
    policy.SHUTDOWN: 4,
    policy.LOST: 4,
}

_COMMON = (
    "octetDeltaCount",
    "packetDeltaCount",
    "flowStartMilliseconds",
    "flowEndMilliseconds",
    "flowDirection",
    "flowEndReason",
    "uplinkTEID",
    "downlinkTEID",
    "reportTrigger",
    "serviceName",
    "bearerEndReason",
)


def _template(ue6: bool, peer6: bool) -> tuple[str, ...]:
    ue = (
        ("sourceIPv6Address", "destinationIPv6Address")
        if ue6
        else (
            "sourceIPv4Address",
            "destinationIPv4Address",
        )
    )
    peers = ("enbIPv6Address", "sgwIPv6Address") if peer6 else ("enbIPv4Address", "sgwIPv4Address")
    return ue + peers + _COMMON


# Template id -> element names, one per (UE family, peer family).
TEMPLATES = {
    256: _template(False, False),
    257: _template(True, False),
    258: _template(False, True),
    259: _template(True, True),
}


def _template_id(ue6: bool, peer6: bool) -> int:
    return 256 + int(ue6) + 2 * int(peer6)


def _field_specifiers(names: Iterable[str], pen: int) -> bytes:
    out = bytearray()
    for name in names:
        e = ELEMENTS[name]
        if e.enterprise:
            out += struct.pack("!HHI", 0x8000 | e.number, e.length, pen)
        else:
            out += struct.pack("!HH", e.number, e.length)
    return bytes(out)


def template_set(pen: int) -> bytes:
    """The Template Set (§3.4.1) announcing every template in :data:`TEMPLATES`."""
    body = bytearray()
    for tid, names in TEMPLATES.items():
        body += struct.pack("!HH", tid, len(names)) + _field_specifiers(names, pen)
    return _SET.pack(TEMPLATE_SET_ID, 4 + len(body)) + body


def _varlen(value: bytes) -> bytes:
    if len(value) < 255:
        return bytes([len(value)]) + value
    return b"\xff" + struct.pack("!H", len(value)) + value


def _ip(text: str) -> bytes:
    if not text:
        return b""
    return socket.inet_pton(socket.AF_INET6 if ":" in text else socket.AF_INET, text)


def data_records(record: UsageRecord) -> Iterator[tuple[int, bytes]]:
    """``(template id, encoded Data Record)`` for each direction of ``record`` (module doc)."""
    ue, svc = _ip(record.ue), _ip(record.service_ip)
    enb, sgw = _ip(record.enb), _ip(record.sgw)
    ue6 = len(ue) == 16
    peer6 = len(enb) == 16
    width = 16 if ue6 else 4
    ue = ue or bytes(width)
    svc = svc if len(svc) == width else bytes(width)
    pwidth = 16 if peer6 else 4
    enb, sgw = enb or bytes(pwidth), sgw if len(sgw) == pwidth else bytes(pwidth)
    tail = struct.pack(
        "!IIB", record.uplink_teid or 0, record.downlink_teid or 0, TRIGGER_CODES[record.trigger]
    )
    tail += _varlen(record.service.encode()) + _varlen(record.reason.encode())
    start, end = round(record.first * 1000), round(record.last * 1000)
    end_reason = _END_REASON[record.trigger]
    directions = [
        (0, ue, svc, record.uplink_packets, record.uplink_bytes),
        (1, svc, ue, record.downlink_packets, record.downlink_bytes),
    ]
    if not (record.uplink_packets or record.downlink_packets):
        directions = directions[:1]
    tid = _template_id(ue6, peer6)
    for direction, src, dst, packets, size in directions:
        if not packets and (record.uplink_packets or record.downlink_packets):
            continue
        yield (
            tid,
            src
            + dst
            + enb
            + sgw
            + struct.pack("!QQQQBB", size, packets, start, end, direction, end_reason)
            + tail,
        )


class Encoder:
    """Packs usage records into IPFIX messages (no I/O: the exporter sends the bytes).

    ``sequence`` follows §3.1 per observation domain; :meth:`messages` adds the Template Set
    to the first message when asked (UDP: at start and every refresh interval, §8.4; TCP: once
    per connection, §8).
    """

    def __init__(self, domain: int, pen: int, max_message: int = 1400) -> None:
        self.domain = domain
        self.pen = pen
        self.max_message = max_message
        self.sequence = 0
        self._templates = template_set(pen)

    def messages(
        self, records: Iterable[UsageRecord], export_time: int, *, with_templates: bool
    ) -> list[bytes]:
        out: list[bytes] = []
        sets: list[bytes] = [self._templates] if with_templates else []
        size = 16 + sum(len(s) for s in sets)
        current_tid = -1
        current = bytearray()
        count = 0  # data records in the message being built
        seq = self.sequence

        def close_set() -> None:
            nonlocal current, size
            if current:
                sets.append(_SET.pack(current_tid, 4 + len(current)) + current)
                current = bytearray()

        def close_message() -> None:
            nonlocal sets, size, count, seq
            close_set()
            if sets:
                body = b"".join(sets)
                out.append(
                    _HEADER.pack(VERSION, 16 + len(body), export_time, seq, self.domain) + body
                )
                seq = (seq + count) & 0xFFFFFFFF
            sets, size, count = [], 16, 0

        for record in records:
            for tid, data in data_records(record):
                new_set = tid != current_tid or not current  # a set header (4 bytes) first
                if size + len(data) + (4 if new_set else 0) > self.max_message and count:
                    close_message()
                    new_set = True  # the new message's first set
                if new_set:
                    close_set()
                    current_tid = tid
                    size += 4
                current += data
                size += len(data)
                count += 1
        close_message()
        self.sequence = seq
        return out


# ---------------------------------------------------------------------- decoding (tests, tools)


@dataclass(frozen=True, slots=True)
class Message:
    export_time: int
    sequence: int
    domain: int
    records: list[dict[str, object]]  # decoded Data Records, element name -> value
    templates: list[int]


def _decode_value(e: Element, raw: bytes) -> object:
    if e.kind == "unsigned":
        return int.from_bytes(raw, "big")
    if e.kind in ("ipv4", "ipv6"):
        return str(ipaddress.ip_address(raw))
    return raw.decode()


class Decoder:
    """Decodes the messages :class:`Encoder` writes (templates learned per domain, §8)."""

    def __init__(self, pen: int) -> None:
        self.pen = pen
        self.templates: dict[tuple[int, int], list[tuple[Element | None, int]]] = {}
        self._by_number = {(e.enterprise, e.number): e for e in ELEMENTS.values()}

    def decode(self, data: bytes) -> tuple[Message, int]:
        """One message from the start of ``data`` and its length (a TCP stream holds many)."""
        if len(data) < 16:
            raise IpfixError("truncated message header")
        version, length, export_time, seq, domain = _HEADER.unpack_from(data)
        if version != VERSION or length < 16 or length > len(data):
            raise IpfixError(f"bad message header (version {version}, length {length})")
        pos, records, templates = 16, [], []
        while pos < length:
            if pos + 4 > length:
                raise IpfixError("truncated set header")
            set_id, set_len = _SET.unpack_from(data, pos)
            if set_len < 4 or pos + set_len > length:
                raise IpfixError(f"bad set length {set_len}")
            body = data[pos + 4 : pos + set_len]
            if set_id == TEMPLATE_SET_ID:
                templates += self._templates(body, domain)
            elif set_id >= 256:
                records += self._data(body, domain, set_id)
            pos += set_len
        return Message(export_time, seq, domain, records, templates), length

    def _templates(self, body: bytes, domain: int) -> list[int]:
        pos, ids = 0, []
        while pos + 4 <= len(body):
            tid, count = struct.unpack_from("!HH", body, pos)
            pos += 4
            fields: list[tuple[Element | None, int]] = []
            for _ in range(count):
                if pos + 4 > len(body):
                    raise IpfixError("truncated field specifier")
                number, length = struct.unpack_from("!HH", body, pos)
                pos += 4
                enterprise = bool(number & 0x8000)
                if enterprise:
                    (pen,) = struct.unpack_from("!I", body, pos)
                    pos += 4
                    element = (
                        self._by_number.get((True, number & 0x7FFF)) if pen == self.pen else None
                    )
                else:
                    element = self._by_number.get((False, number))
                fields.append((element, length))
            self.templates[(domain, tid)] = fields
            ids.append(tid)
        return ids

    def _data(self, body: bytes, domain: int, tid: int) -> list[dict[str, object]]:
        fields = self.templates.get((domain, tid))
        if fields is None:
            raise IpfixError(f"data set for unknown template {tid}")
        out: list[dict[str, object]] = []
        pos = 0
        minimum = sum(1 if n == VARLEN else n for _, n in fields)
        while len(body) - pos >= minimum and minimum:
            row: dict[str, object] = {}
            for element, declared in fields:
                length = declared
                if declared == VARLEN:
                    length = body[pos]
                    pos += 1
                    if length == 255:
                        (length,) = struct.unpack_from("!H", body, pos)
                        pos += 2
                if pos + length > len(body):
                    raise IpfixError("truncated data record")
                if element is not None:
                    row[element.name] = _decode_value(element, body[pos : pos + length])
                pos += length
            out.append(row)
        return out
