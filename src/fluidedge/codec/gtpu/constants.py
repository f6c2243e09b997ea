"""GTP-U numbers from 3GPP TS 29.281: the UDP port, message types, extension and IE types.

Kept apart from the codec so that policy code (the TOF, the lab) can name message and
extension types without importing the decoder.
"""

from __future__ import annotations

from enum import IntEnum

GTPU_PORT = 2152
"""UDP port of GTP-U (TS 29.281 §4.4.2.0)."""

GTP_VERSION = 1
"""Version field value of GTPv1 (TS 29.281 §5.1); GTPv2 is control plane only."""


class MessageType(IntEnum):
    """GTP-U message types (TS 29.281 §6.1, Table 6.1-1)."""

    ECHO_REQUEST = 1
    ECHO_RESPONSE = 2
    ERROR_INDICATION = 26
    SUPPORTED_EXTENSION_HEADERS_NOTIFICATION = 31
    END_MARKER = 254
    G_PDU = 255


class ExtensionType(IntEnum):
    """Next Extension Header Type values (TS 29.281 §5.2.1, Figure 5.2.1-3).

    The two most significant bits are the comprehension bits (§5.2.1, Table 5.2.1-1):
    ``00``/``01`` comprehension not required, ``10`` required at the endpoint receiver,
    ``11`` required by endpoint and intermediate nodes.
    """

    NO_MORE = 0x00
    SERVICE_CLASS_INDICATOR = 0x20
    UDP_PORT = 0x40
    RAN_CONTAINER = 0x81
    LONG_PDCP_PDU_NUMBER = 0x82
    XW_RAN_CONTAINER = 0x83
    NR_RAN_CONTAINER = 0x84
    PDU_SESSION_CONTAINER = 0x85
    PDCP_PDU_NUMBER = 0xC0


COMPREHENSION_REQUIRED_MASK = 0x80
"""Types with the top bit set (``10``/``11``) must be understood by the endpoint receiver
(TS 29.281 §5.2.1)."""

COMPREHENSION_BITS = 0xC0
"""The two comprehension bits of an extension type (TS 29.281 §5.2.1, Table 5.2.1-1)."""

COMPREHENSION_BY_ALL = 0xC0
"""Comprehension bits ``11``: every node, intermediate ones too, must understand the type.

The codec rejects only these when it does not know them: ``00``/``01``/``10`` are forwarded by
intermediate nodes (the TOF is one on S1-U) and decode to
:class:`~fluidedge.codec.gtpu.UnknownExtension`."""


class IEType(IntEnum):
    """Information element types used by GTP-U (TS 29.281 §8.1, Table 8.1-1)."""

    RECOVERY = 14
    TEID_DATA_I = 16
    GTPU_PEER_ADDRESS = 133
    EXTENSION_HEADER_TYPE_LIST = 141
    PRIVATE_EXTENSION = 255


TV_IE_VALUE_LENGTHS: dict[int, int] = {IEType.RECOVERY: 1, IEType.TEID_DATA_I: 4}
"""Value length of the TV (type < 128) IEs GTP-U defines; other TV types cannot be skipped."""
