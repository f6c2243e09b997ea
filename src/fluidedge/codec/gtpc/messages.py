"""GTPv1-C messages (TS 29.060 §6, §7): decode and encode, IEs kept in wire order.

A message is its header fields plus its IEs as ``(type, value)`` pairs; accessors read the
ones the TOF acts on (TEID Data I, TEID Control Plane, NSAPI, End User Address, GSN Address,
Cause, Teardown Ind). Keeping the IEs generic (instead of one class per message) makes a
decoded message re-encode to the same octets whatever it carries, and lets one decoder serve
every message type: the TOF only needs the IEs, and which IE means what is the message type's
business (§7.3.1-§7.3.6), decided by the caller.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from fluidedge.codec.errors import EncodeError, MalformedError, TruncatedError, UnsupportedError
from fluidedge.codec.gtpc.layouts import (
    CAUSE_ACCEPTED,
    HEADER,
    IE_TABLE,
    OPTIONAL,
    PDP_TYPE_IETF,
    PDP_TYPE_IPV4,
    PDP_TYPE_IPV4V6,
    PDP_TYPE_IPV6,
    IEType,
)

_FLAG_E, _FLAG_S, _FLAG_PN = 0x04, 0x02, 0x01
_TLV = struct.Struct("!BH")
Buffer = bytes | bytearray | memoryview


@dataclass(frozen=True, slots=True)
class InformationElement:
    """One IE as on the wire: ``value`` without the type (and TLV length) octets."""

    ie_type: int
    value: bytes


@dataclass(frozen=True, slots=True)
class EndUserAddress:
    """End User Address (§7.7.27): the PDP type and the UE's address(es), if allocated."""

    pdp_type_organisation: int
    pdp_type_number: int
    ipv4: bytes | None = None
    ipv6: bytes | None = None


@dataclass(frozen=True, slots=True)
class GtpcMessage:
    """A GTPv1-C message: header fields and IEs in wire order (``npdu`` only if PN=1)."""

    message_type: int
    teid: int
    sequence: int
    ies: tuple[InformationElement, ...] = ()
    npdu: int | None = None

    def first(self, ie_type: int) -> bytes | None:
        """The value of the first IE of ``ie_type`` (TS 29.060 §7.7.0: the first counts)."""
        for ie in self.ies:
            if ie.ie_type == ie_type:
                return ie.value
        return None

    def _u8(self, ie_type: int) -> int | None:
        value = self.first(ie_type)
        return None if value is None else value[0]

    def _u32(self, ie_type: int) -> int | None:
        value = self.first(ie_type)
        return None if value is None else int.from_bytes(value, "big")

    @property
    def cause(self) -> int | None:
        return self._u8(IEType.CAUSE)

    @property
    def teid_data_i(self) -> int | None:
        return self._u32(IEType.TEID_DATA_I)

    @property
    def teid_control(self) -> int | None:
        return self._u32(IEType.TEID_CONTROL_PLANE)

    @property
    def nsapi(self) -> int | None:
        """NSAPI (§7.7.17): the low 4 bits."""
        value = self._u8(IEType.NSAPI)
        return None if value is None else value & 0x0F

    @property
    def teardown(self) -> bool:
        """Teardown Ind (§7.7.16): bit 1 set = every PDP context of this PDP address."""
        value = self._u8(IEType.TEARDOWN_IND)
        return bool(value is not None and value & 1)

    @property
    def gsn_addresses(self) -> tuple[bytes, ...]:
        """GSN Address IEs (§7.7.32) in order: signalling first, user traffic second."""
        return tuple(ie.value for ie in self.ies if ie.ie_type == IEType.GSN_ADDRESS)

    @property
    def end_user_address(self) -> EndUserAddress | None:
        value = self.first(IEType.END_USER_ADDRESS)
        return None if value is None else end_user_address(value)


def accepted(cause: int | None) -> bool:
    """Whether a response's Cause says the request was accepted (§7.7.1: 128-191)."""
    return cause is not None and cause in CAUSE_ACCEPTED


def end_user_address(value: bytes, offset: int = 0) -> EndUserAddress:
    """Decode an End User Address value (§7.7.27); empty address = dynamic, not yet given."""
    if len(value) < 2:
        raise TruncatedError("GTPv1-C End User Address", offset, "needs 2 octets")
    organisation, number, address = value[0] & 0x0F, value[1], value[2:]
    if organisation != PDP_TYPE_IETF or not address:
        return EndUserAddress(organisation, number)
    sizes = {PDP_TYPE_IPV4: (4,), PDP_TYPE_IPV6: (16,), PDP_TYPE_IPV4V6: (4, 16, 20)}
    if number not in sizes:
        return EndUserAddress(organisation, number)
    if len(address) not in sizes[number]:
        raise MalformedError(
            "GTPv1-C End User Address",
            offset,
            f"PDP type 0x{number:02x} with a {len(address)}-octet address",
        )
    if len(address) == 20:
        return EndUserAddress(organisation, number, address[:4], address[4:])
    if len(address) == 4:
        return EndUserAddress(organisation, number, ipv4=address)
    return EndUserAddress(organisation, number, ipv6=address)


def decode(buf: Buffer, offset: int = 0) -> GtpcMessage:
    """Decode the GTPv1-C message at ``offset`` (the UDP payload) or raise ``CodecError``."""
    flags, message_type, length, teid = HEADER.unpack(buf, offset)
    if flags >> 5 != 1:
        raise MalformedError("GTPv1-C header", offset, f"version {flags >> 5} is not 1")
    if not flags & 0x10:
        raise UnsupportedError("GTPv1-C header", offset, "PT=0 (GTP') is not GTP")
    end = offset + 8 + length
    if end > len(buf):
        raise TruncatedError(
            "GTPv1-C header", offset, f"length {length} runs past the buffer's end"
        )
    pos = offset + 8
    sequence, npdu = 0, None
    if flags & (_FLAG_E | _FLAG_S | _FLAG_PN):
        if end - pos < OPTIONAL.size:
            raise MalformedError("GTPv1-C header", offset, "length too small for the options")
        sequence, npdu_octet, next_type = OPTIONAL.unpack(buf, pos)
        if flags & _FLAG_E and next_type:
            raise UnsupportedError(
                "GTPv1-C header", offset, "extension headers are not decoded (§6.1)"
            )
        npdu = npdu_octet if flags & _FLAG_PN else None
        pos += OPTIONAL.size
    ies: list[InformationElement] = []
    while pos < end:
        ie_type = buf[pos]
        spec = IE_TABLE.get(ie_type)
        if ie_type < 128:
            if spec is None or spec.length is None:
                raise UnsupportedError(
                    "GTPv1-C IE", pos, f"TV type {ie_type} has no known length (§7.7.0)"
                )
            start, stop = pos + 1, pos + 1 + spec.length
        else:
            if end - pos < 3:
                raise TruncatedError(f"GTPv1-C IE {ie_type}", pos, "needs 3 octets")
            start = pos + 3
            stop = start + _TLV.unpack_from(buf, pos)[1]
        if stop > end:
            raise TruncatedError(
                f"GTPv1-C IE {ie_type}", pos, f"runs {stop - end} octets past the message"
            )
        ies.append(InformationElement(ie_type, bytes(buf[start:stop])))
        pos = stop
    return GtpcMessage(message_type, teid, sequence, tuple(ies), npdu)


def encode(message: GtpcMessage) -> bytes:
    """The octets of ``message`` (S=1 always, as §6.1 requires of GTP-C; PN=1 if ``npdu``)."""
    body = bytearray()
    for ie in message.ies:
        if not 0 <= ie.ie_type <= 255:
            raise EncodeError("GTPv1-C IE", f"type {ie.ie_type} out of range")
        if ie.ie_type < 128:
            spec = IE_TABLE.get(ie.ie_type)
            if spec is None or spec.length != len(ie.value):
                want = "unknown TV type" if spec is None else f"{spec.length} octets"
                raise EncodeError(f"GTPv1-C IE {ie.ie_type}", f"value needs {want}")
            body += bytes((ie.ie_type,)) + ie.value
        else:
            if len(ie.value) > 0xFFFF:
                raise EncodeError(f"GTPv1-C IE {ie.ie_type}", "value longer than 65535")
            body += _TLV.pack(ie.ie_type, len(ie.value)) + ie.value
    flags = 0x30 | _FLAG_S | (_FLAG_PN if message.npdu is not None else 0)
    for name, value, top in (
        ("message type", message.message_type, 0xFF),
        ("TEID", message.teid, 0xFFFFFFFF),
        ("sequence", message.sequence, 0xFFFF),
        ("N-PDU", message.npdu or 0, 0xFF),
    ):
        if not 0 <= value <= top:
            raise EncodeError("GTPv1-C header", f"{name} {value} out of range")
    length = OPTIONAL.size + len(body)
    if length > 0xFFFF:
        raise EncodeError("GTPv1-C header", "message longer than 65535")
    return (
        HEADER.pack(flags, message.message_type, length, message.teid)
        + OPTIONAL.pack(message.sequence, message.npdu or 0, 0)
        + bytes(body)
    )
