"""Differential test against Wireshark's GTP dissector (tshark 4.0, not our code).

We encode a few hundred messages (seeded random shapes of every message and extension type,
plus the golden fixtures), wrap each in Ethernet/IPv4/UDP 2152 with scapy, write one pcap, run
``tshark -T fields`` once over it, and check that tshark reads back what we meant: flags,
type, length, TEID, sequence/N-PDU numbers, the extension chain (types and lengths), QFI and
the other PDU Session Container fields tshark knows, UDP port, PDCP numbers, Recovery, TEID
Data I, peer address, the Extension Header Type List, where the inner packet starts, and that
it flags nothing as malformed. Needs tshark (installed by scripts/setup), not root.

Known tshark 4.0 limits: no decoding of the TS 38.415 optional fields (QMP, SNP...), nor of
the Service Class Indicator; it dissects NR RAN Container (0x84) content as NR-U, so random
0x84 content could look malformed to it and is left out of the random shapes; it does not
dissect unknown message types as GTP at all.
"""

from __future__ import annotations

import random
import shutil
import subprocess
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv6Address
from pathlib import Path

from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether
from scapy.packet import Raw
from scapy.utils import wrpcap

from fluidedge.codec.gtpu import (
    EchoRequest,
    EchoResponse,
    EndMarker,
    ErrorIndication,
    ExtensionHeader,
    GenericMessage,
    GPdu,
    GtpuHeader,
    GtpuMessage,
    LongPdcpPduNumber,
    PdcpPduNumber,
    PduSessionContainer,
    RanContainer,
    ServiceClassIndicator,
    SupportedExtensionHeadersNotification,
    UdpPortExtension,
    UnknownExtension,
    decode,
    encode,
    encode_header,
)
from fluidedge.codec.gtpu.extensions import encode_content

from .golden import load, names
from .test_golden import REJECTED

FIELDS = [
    "frame.number",
    "gtp.flags",
    "gtp.message",
    "gtp.length",
    "gtp.teid",
    "gtp.seq_number",
    "gtp.npdu_number",
    "gtp.ext_hdr.next",
    "gtp.ext_hdr.length",
    "gtp.ext_hdr.pdu_ses_con.pdu_type",
    "gtp.ext_hdr.pdu_ses_con.qos_flow_id",
    "gtp.ext_hdr.pdu_ses_cont.ppp",
    "gtp.ext_hdr.pdu_ses_cont.rqi",
    "gtp.ext_hdr.pdu_ses_cont.ppi",
    "gtp.ext_hdr.udp_port",
    "gtp.ext_hdr.pdcp_sn",
    "gtp.ext_hdr.long_pdcp_sn",
    "gtp.recovery",
    "gtp.teid_data",
    "gtp.gsn_ipv4",
    "gtp.gsn_ipv6",
    "gtp.ext_hdr_type",
    "ip.src",
    "_ws.malformed",
]


@dataclass
class Case:
    msg: GtpuMessage
    inner_src: str | None = None
    wire: bytes = field(init=False)

    def __post_init__(self) -> None:
        self.wire = encode(self.msg)


def _inner(rng: random.Random) -> tuple[bytes, str]:
    src = str(IPv4Address(rng.randrange(0xC6120000, 0xC6140000)))  # 198.18.0.0/15
    pkt = IP(src=src, dst="198.19.255.1", id=rng.randrange(65536)) / UDP(
        sport=rng.randrange(1024, 65536), dport=53
    )
    return bytes(pkt), src


def _random_extension(rng: random.Random) -> ExtensionHeader:
    kind = rng.randrange(8)
    if kind == 0:
        return PduSessionContainer(
            0,
            rng.randrange(64),
            rqi=rng.random() < 0.5,
            ppi=rng.randrange(8) if rng.random() < 0.5 else None,
        )
    if kind == 1:
        return PduSessionContainer(
            1,
            rng.randrange(64),
            qfi_sequence_number=rng.randrange(1 << 24) if rng.random() < 0.3 else None,
        )
    if kind == 2:
        return UdpPortExtension(rng.randrange(65536))
    if kind == 3:
        return PdcpPduNumber(rng.randrange(65536))
    if kind == 4:
        return LongPdcpPduNumber(rng.randrange(1 << 18))
    if kind == 5:
        return ServiceClassIndicator(rng.randrange(256))
    if kind == 6:
        return RanContainer(rng.choice([0x81, 0x83]), rng.randbytes(4 * rng.randrange(1, 4) - 2))
    return UnknownExtension(rng.choice([0x01, 0x03, 0x41, 0x7F, 0xA0, 0xBE]), rng.randbytes(2))


def _header(rng: random.Random, mtype: int) -> GtpuHeader:
    return GtpuHeader(
        message_type=mtype,
        teid=rng.randrange(1 << 32),
        sequence=rng.randrange(65536) if rng.random() < 0.5 else None,
        npdu=rng.randrange(256) if rng.random() < 0.3 else None,
        extensions=tuple(_random_extension(rng) for _ in range(rng.randrange(4))),
    )


def _cases() -> list[Case]:
    rng = random.Random(29281)
    cases: list[Case] = []
    for _ in range(150):
        payload, src = _inner(rng)
        cases.append(Case(GPdu(_header(rng, 255), payload), inner_src=src))
    for _ in range(20):
        seq = rng.randrange(65536)
        cases.append(Case(EchoRequest(GtpuHeader(message_type=1, sequence=seq))))
        cases.append(
            Case(EchoResponse(GtpuHeader(message_type=2, sequence=seq), rng.randrange(256)))
        )
        peer: IPv4Address | IPv6Address = (
            IPv4Address(rng.randrange(1 << 32))
            if rng.random() < 0.5
            else IPv6Address(rng.randrange(1 << 128))
        )
        ext = (UdpPortExtension(rng.randrange(65536)),) if rng.random() < 0.5 else ()
        h = GtpuHeader(message_type=26, sequence=rng.randrange(65536), extensions=ext)
        cases.append(Case(ErrorIndication(h, rng.randrange(1 << 32), peer)))
        types = tuple(rng.randrange(256) for _ in range(rng.randrange(1, 8)))
        h = GtpuHeader(message_type=31, sequence=rng.randrange(65536))
        cases.append(Case(SupportedExtensionHeadersNotification(h, types)))
        cases.append(Case(EndMarker(_header(rng, 254))))
    for name in names():
        if name in REJECTED:  # no meaning to compare (test_golden checks how each is refused)
            continue
        msg = decode(load(name))  # a fixture that stops decoding fails here, not silently
        if isinstance(msg, GenericMessage):
            continue  # tshark does not dissect unknown message types as GTP
        if name == "ext_chain_all":
            continue  # tshark parses its 2-octet 0x84 content as NR-U, fails and stops there
        inner = "198.18.0.1" if isinstance(msg, GPdu) and msg.payload[:1] == b"\x45" else None
        cases.append(Case(msg, inner_src=inner))
    return cases


def _tshark(pcap: Path) -> list[dict[str, list[str]]]:
    tshark = shutil.which("tshark")
    assert tshark, "tshark is not installed (scripts/setup installs it)"
    argv = [tshark, "-n", "-r", str(pcap), "-T", "fields", "-E", "occurrence=a"]
    argv += ["-E", "aggregator=|", "-E", "separator=\t"]
    for f in FIELDS:
        argv += ["-e", f]
    out = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=120).stdout
    rows = []
    for line in out.splitlines():
        cols = line.split("\t")
        rows.append({f: (c.split("|") if c else []) for f, c in zip(FIELDS, cols, strict=True)})
    return rows


def _one(row: dict[str, list[str]], name: str) -> str | None:
    values = row[name]
    assert len(values) <= 1, (name, values)
    return values[0] if values else None


def _expected_chain(h: GtpuHeader) -> tuple[list[int], list[int]]:
    types = [encode_content(e)[0] for e in h.extensions]
    lengths = []
    wire = encode_header(h, h.message_type, 0)
    pos = 12
    for _ in h.extensions:
        lengths.append(wire[pos])
        pos += 4 * wire[pos]
    return [*types, 0], lengths


def test_tshark_reads_what_we_meant(tmp_path: Path) -> None:
    cases = _cases()
    wires = [c.wire for c in cases]
    frames = [
        Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
        / IP(src="198.18.0.1", dst="198.18.0.2")
        / UDP(sport=2152, dport=2152)
        / Raw(w)
        for w in wires
    ]
    pcap = tmp_path / "gtpu.pcap"
    wrpcap(str(pcap), frames)
    rows = _tshark(pcap)
    assert len(rows) == len(cases)
    checked_qfi = checked_ext = 0
    for case, wire, row in zip(cases, wires, rows, strict=True):
        msg = decode(wire)
        h = msg.header
        where = f"frame {_one(row, 'frame.number')}: {wire.hex()}"
        assert int(_one(row, "gtp.flags") or "-1", 16) == wire[0], where
        assert int(_one(row, "gtp.message") or "-1", 16) == h.message_type, where
        assert int(_one(row, "gtp.length") or "-1") == len(wire) - 8, where
        assert int(_one(row, "gtp.teid") or "-1", 16) == h.teid, where
        if h.sequence is not None:
            assert int(_one(row, "gtp.seq_number") or "-1", 16) == h.sequence, where
        if h.npdu is not None:
            assert int(_one(row, "gtp.npdu_number") or "-1", 16) == h.npdu, where
        if h.extensions:
            types, lengths = _expected_chain(h)
            assert [int(v, 16) for v in row["gtp.ext_hdr.next"]] == types, where
            assert [int(v) for v in row["gtp.ext_hdr.length"]] == lengths, where
            checked_ext += len(h.extensions)
        pscs = [e for e in h.extensions if isinstance(e, PduSessionContainer)]
        pdu_types = [  # an undefined PDU type is carried opaque by us, shown by tshark
            e.pdu_type if isinstance(e, PduSessionContainer) else e.content[0] >> 4
            for e in h.extensions
            if isinstance(e, PduSessionContainer)
            or (isinstance(e, UnknownExtension) and e.ext_type == 0x85)
        ]
        assert [int(v) for v in row["gtp.ext_hdr.pdu_ses_con.pdu_type"]] == pdu_types, where
        assert [int(v) for v in row["gtp.ext_hdr.pdu_ses_con.qos_flow_id"]] == [
            p.qfi for p in pscs
        ], where
        checked_qfi += len(pscs)
        dl = [p for p in pscs if p.pdu_type == 0]
        assert [int(v) for v in row["gtp.ext_hdr.pdu_ses_cont.rqi"]] == [int(p.rqi) for p in dl]
        assert [int(v) for v in row["gtp.ext_hdr.pdu_ses_cont.ppp"]] == [
            int(p.ppi is not None) for p in dl
        ], where
        assert [int(v) for v in row["gtp.ext_hdr.pdu_ses_cont.ppi"]] == [
            p.ppi for p in dl if p.ppi is not None
        ], where
        assert [int(v) for v in row["gtp.ext_hdr.udp_port"]] == [
            e.port for e in h.extensions if isinstance(e, UdpPortExtension)
        ], where
        assert [int(v) for v in row["gtp.ext_hdr.pdcp_sn"]] == [
            e.number for e in h.extensions if isinstance(e, PdcpPduNumber)
        ], where
        assert [int(v) for v in row["gtp.ext_hdr.long_pdcp_sn"]] == [
            e.number for e in h.extensions if isinstance(e, LongPdcpPduNumber)
        ], where
        if isinstance(msg, EchoResponse):
            assert int(_one(row, "gtp.recovery") or "-1") == msg.recovery, where
        if isinstance(msg, ErrorIndication):
            assert int(_one(row, "gtp.teid_data") or "-1", 16) == msg.teid_data_i, where
            family = "gtp.gsn_ipv4" if msg.peer_address.version == 4 else "gtp.gsn_ipv6"
            assert _one(row, family) == str(msg.peer_address), where
        if isinstance(msg, SupportedExtensionHeadersNotification):
            assert tuple(int(v) for v in row["gtp.ext_hdr_type"]) == msg.extension_types
        if case.inner_src is not None:
            # tshark found the T-PDU where we said it starts
            assert row["ip.src"] == ["198.18.0.1", case.inner_src], where
        assert row["_ws.malformed"] == [], where
    assert checked_qfi > 30
    assert checked_ext > 100
