"""Field and IE tables of GTPv1-C (TS 29.060): the single source of truth for the wire format.

The header is a :class:`~fluidedge.codec.fields.Layout`; the information elements are one
table (:data:`IE_TABLE`) giving each type its name, its TS 29.060 section and, for the TV
types (type < 128, §7.7.0), the fixed value length the decoder needs to find the next IE.
TLV types (type >= 128) carry a 2-octet length. Only the TV types listed can be decoded: a
message with an unknown TV type cannot be walked past it (the spec gives no length), and is
reported as unsupported.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from fluidedge.codec.fields import Field, Layout

GTPC_PORT = 2123
"""TS 29.060 §4.4: GTP-C is carried on UDP port 2123."""

HEADER = Layout(
    "GTPv1-C header",
    "TS 29.060 §6",
    (
        Field("flags", "B", "§6 octet 1", "version(3)=1 PT(1)=1 spare(1) E(1) S(1) PN(1)"),
        Field("message_type", "B", "§6 octet 2, §7.1", "Table 1"),
        Field("length", "H", "§6 octets 3-4", "octets after the mandatory 8"),
        Field("teid", "I", "§6 octets 5-8", "the receiver's TEID-C (0 if not yet known)"),
    ),
)

OPTIONAL = Layout(
    "GTPv1-C optional fields",
    "TS 29.060 §6",
    (
        Field("sequence", "H", "§6 octets 9-10", "S=1 in every GTP-C message (§6.1)"),
        Field("npdu", "B", "§6 octet 11", "N-PDU Number, meaningful only if PN=1"),
        Field("next_extension_type", "B", "§6 octet 12, §6.1", "meaningful only if E=1"),
    ),
)
"""Present iff any of E, S, PN is set (TS 29.060 §6 NOTE 0)."""


class MessageType(IntEnum):
    """The messages the TOF acts on (TS 29.060 §7.1, Table 1)."""

    ECHO_REQUEST = 1
    ECHO_RESPONSE = 2
    CREATE_PDP_CONTEXT_REQUEST = 16
    CREATE_PDP_CONTEXT_RESPONSE = 17
    UPDATE_PDP_CONTEXT_REQUEST = 18
    UPDATE_PDP_CONTEXT_RESPONSE = 19
    DELETE_PDP_CONTEXT_REQUEST = 20
    DELETE_PDP_CONTEXT_RESPONSE = 21


class IEType(IntEnum):
    """The IE types the TOF reads (TS 29.060 §7.7, Table 37)."""

    CAUSE = 1
    RECOVERY = 14
    TEID_DATA_I = 16
    TEID_CONTROL_PLANE = 17
    TEARDOWN_IND = 19
    NSAPI = 20
    END_USER_ADDRESS = 128
    ACCESS_POINT_NAME = 131
    GSN_ADDRESS = 133


@dataclass(frozen=True, slots=True)
class IESpec:
    """One IE type: ``length`` is the value length of a TV type, ``None`` for TLV."""

    name: str
    spec: str
    length: int | None = None


IE_TABLE: dict[int, IESpec] = {
    1: IESpec("Cause", "§7.7.1", 1),
    2: IESpec("IMSI", "§7.7.2", 8),
    3: IESpec("Routeing Area Identity", "§7.7.3", 6),
    4: IESpec("TLLI", "§7.7.4", 4),
    5: IESpec("P-TMSI", "§7.7.5", 4),
    8: IESpec("Reordering Required", "§7.7.6", 1),
    9: IESpec("Authentication Triplet", "§7.7.7", 28),
    11: IESpec("MAP Cause", "§7.7.8", 1),
    12: IESpec("P-TMSI Signature", "§7.7.9", 3),
    13: IESpec("MS Validated", "§7.7.10", 1),
    14: IESpec("Recovery", "§7.7.11", 1),
    15: IESpec("Selection Mode", "§7.7.12", 1),
    16: IESpec("TEID Data I", "§7.7.13", 4),
    17: IESpec("TEID Control Plane", "§7.7.14", 4),
    18: IESpec("TEID Data II", "§7.7.15", 5),
    19: IESpec("Teardown Ind", "§7.7.16", 1),
    20: IESpec("NSAPI", "§7.7.17", 1),
    21: IESpec("RANAP Cause", "§7.7.18", 1),
    22: IESpec("RAB Context", "§7.7.19", 9),
    23: IESpec("Radio Priority SMS", "§7.7.20", 1),
    24: IESpec("Radio Priority", "§7.7.21", 1),
    25: IESpec("Packet Flow Id", "§7.7.22", 2),
    26: IESpec("Charging Characteristics", "§7.7.23", 2),
    27: IESpec("Trace Reference", "§7.7.24", 2),
    28: IESpec("Trace Type", "§7.7.25", 2),
    29: IESpec("MS Not Reachable Reason", "§7.7.25A", 1),
    127: IESpec("Charging ID", "§7.7.26", 4),
    128: IESpec("End User Address", "§7.7.27"),
    131: IESpec("Access Point Name", "§7.7.30"),
    132: IESpec("Protocol Configuration Options", "§7.7.31"),
    133: IESpec("GSN Address", "§7.7.32"),
    134: IESpec("MSISDN", "§7.7.33"),
    135: IESpec("Quality of Service Profile", "§7.7.34"),
    148: IESpec("Common Flags", "§7.7.48"),
    151: IESpec("RAT Type", "§7.7.50"),
    255: IESpec("Private Extension", "§7.7.46"),
}
"""Every TV type (< 128) the decoder can step over, and the TLV types it names."""

CAUSE_ACCEPTED = range(128, 192)
"""TS 29.060 §7.7.1: response cause values 128-191 mean the request was accepted."""

PDP_TYPE_IETF = 1
PDP_TYPE_IPV4 = 0x21
PDP_TYPE_IPV6 = 0x57
PDP_TYPE_IPV4V6 = 0x8D
"""End User Address (§7.7.27): PDP Type Organisation 1 (IETF) and its PDP Type Numbers."""
