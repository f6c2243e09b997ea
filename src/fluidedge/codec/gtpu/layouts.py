"""Field tables of the fixed-size parts of GTP-U (TS 29.281) and its extension headers.

These :class:`~fluidedge.codec.fields.Layout` objects are the single source of truth for the
wire format: the decoder and encoder use their precompiled ``struct`` objects, and the docs
page (``docs/codec-gtpu.md``) is rendered from :meth:`Layout.describe`.
Bit fields inside an octet are named in the ``doc`` column, most significant bit first.
"""

from __future__ import annotations

from fluidedge.codec.fields import Field, Layout

HEADER = Layout(
    "GTP-U header",
    "TS 29.281 §5.1",
    (
        Field("flags", "B", "§5.1 octet 1", "version(3) PT(1) spare(1) E(1) S(1) PN(1)"),
        Field("message_type", "B", "§5.1 octet 2, §6.1", "Table 6.1-1"),
        Field("length", "H", "§5.1 octets 3-4", "octets after the mandatory 8 (options+ext+body)"),
        Field("teid", "I", "§5.1 octets 5-8", "Tunnel Endpoint Identifier"),
    ),
)

OPTIONAL = Layout(
    "GTP-U optional fields",
    "TS 29.281 §5.1",
    (
        Field("sequence", "H", "§5.1 octets 9-10", "meaningful only if S=1"),
        Field("npdu", "B", "§5.1 octet 11", "N-PDU Number, meaningful only if PN=1"),
        Field("next_extension_type", "B", "§5.1 octet 12, §5.2.1", "meaningful only if E=1"),
    ),
)
"""Present iff any of E, S, PN is set (TS 29.281 §5.1 NOTE 0)."""

EXTENSION_LENGTH = Layout(
    "GTP-U extension header",
    "TS 29.281 §5.2.1",
    (Field("length", "B", "§5.2.1 octet 1", "in 4-octet units, 0 is invalid"),),
)
"""Every extension header: this octet, ``4*length-2`` content octets, next type octet."""

UDP_PORT = Layout(
    "UDP Port extension",
    "TS 29.281 §5.2.2.1",
    (Field("port", "H", "§5.2.2.1 octets 2-3", "source UDP port of the triggering message"),),
)

PDCP_PDU_NUMBER = Layout(
    "PDCP PDU Number extension",
    "TS 29.281 §5.2.2.2",
    (Field("number", "H", "§5.2.2.2 octets 2-3", "PDCP PDU number"),),
)

LONG_PDCP_PDU_NUMBER = Layout(
    "Long PDCP PDU Number extension",
    "TS 29.281 §5.2.2.2A",
    (
        Field("spare_and_number_hi", "B", "§5.2.2.2A octet 2", "spare(6) number bits 17-16"),
        Field("number_lo", "H", "§5.2.2.2A octets 3-4", "number bits 15-0"),
        Field("spare", "3s", "§5.2.2.2A octets 5-7", "spare"),
    ),
)

SERVICE_CLASS_INDICATOR = Layout(
    "Service Class Indicator extension",
    "TS 29.281 §5.2.2.3",
    (
        Field("value", "B", "§5.2.2.3 octet 2", "Service Class Indicator"),
        Field("spare", "B", "§5.2.2.3 octet 3", "spare"),
    ),
)

PDU_SESSION_DL = Layout(
    "PDU Session Container DL",
    "TS 38.415 §5.5.2.1",
    (
        Field("type_flags", "B", "§5.5.2.1 octet 1", "PDU Type=0(4) QMP SNP MSNP spare"),
        Field("ppp_rqi_qfi", "B", "§5.5.2.1 octet 2", "PPP RQI QFI(6)"),
    ),
)
"""Then, in order: PPI octet ``PPI(3) spare(5)`` if PPP; DL Sending Time Stamp (8) if QMP;
DL QFI Sequence Number (3) if SNP; DL MBS QFI Sequence Number (4) if MSNP; padding."""

PDU_SESSION_UL = Layout(
    "PDU Session Container UL",
    "TS 38.415 §5.5.2.2",
    (
        Field("type_flags", "B", "§5.5.2.2 octet 1", "PDU Type=1(4) QMP DLDelayInd ULDelayInd SNP"),
        Field("n3n9_newie_qfi", "B", "§5.5.2.2 octet 2", "N3/N9DelayInd NewIEFlag QFI(6)"),
    ),
)
"""Then, in order: DL Sending Time Stamp Repeated, DL Received Time Stamp, UL Sending Time
Stamp (8 each) if QMP; DL Delay Result (4); UL Delay Result (4); UL QFI Sequence Number (3)
if SNP; N3/N9 Delay Result (4); New IE Flags and what they introduce; padding."""

ALL_LAYOUTS: tuple[Layout, ...] = (
    HEADER,
    OPTIONAL,
    EXTENSION_LENGTH,
    UDP_PORT,
    PDCP_PDU_NUMBER,
    LONG_PDCP_PDU_NUMBER,
    SERVICE_CLASS_INDICATOR,
    PDU_SESSION_DL,
    PDU_SESSION_UL,
)
