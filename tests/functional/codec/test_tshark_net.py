"""Differential test against tshark (Wireshark's dissectors, which we did not write).

Frames built by our encoders, with and without inner NAT rewriting, are written to a pcap;
tshark must dissect the fields we meant and mark every checksum (outer IPv4 header, outer
UDP, inner IPv4 header, inner TCP/UDP/ICMP/ICMPv6) as good. No root needed; no traffic sent.
"""

from __future__ import annotations

import ipaddress
import random
import subprocess
from pathlib import Path

from fluidedge.codec import pcap
from fluidedge.codec.gtpu import PduSessionContainer
from fluidedge.codec.stack import classify, encapsulate_gpdu, ethernet_frame, rewrite_inner
from tests.unit.codec.net.packets import ICMP, ICMPV6, TCP, UDP, packet

MAC1, MAC2 = bytes.fromhex("020000000001"), bytes.fromhex("020000000002")
FIELDS = [
    "frame.number",
    "ip.src",
    "ip.dst",
    "ipv6.src",
    "ipv6.dst",
    "udp.srcport",
    "udp.dstport",
    "tcp.srcport",
    "tcp.dstport",
    "gtp.teid",
    "gtp.ext_hdr.pdu_ses_con.qos_flow_id",
    "icmp.ident",
    "icmpv6.echo.identifier",
    "ip.checksum.status",
    "udp.checksum.status",
    "tcp.checksum.status",
    "icmp.checksum.status",
    "icmpv6.checksum.status",
]


def v4(rng: random.Random) -> bytes:
    return bytes([198, 18, rng.randrange(256), rng.randrange(1, 255)])


def v6(rng: random.Random) -> bytes:
    return ipaddress.ip_address("2001:db8::").packed[:8] + rng.randbytes(8)


def build_cases(n: int = 48) -> list[tuple[bytes, dict[str, object]]]:
    rng = random.Random(2152)
    cases = []
    for i in range(n):
        outer6, inner6 = bool(i & 1), bool(i & 2)
        proto = [TCP, UDP, ICMPV6 if inner6 else ICMP][(i >> 2) % 3]
        addr = v6 if inner6 else v4
        isrc, idst = addr(rng), addr(rng)
        sport, dport = rng.randrange(40000, 60000), 5001
        inner = packet(6 if inner6 else 4, proto, isrc, idst, sport, dport, rng.randbytes(33))
        oaddr = v6 if outer6 else v4
        osrc, odst, teid = oaddr(rng), oaddr(rng), rng.randrange(1, 2**32)
        qfi = rng.randrange(64) if i % 5 == 0 else None
        exts = (PduSessionContainer(pdu_type=1, qfi=qfi),) if qfi is not None else ()
        frame = bytearray(
            ethernet_frame(MAC2, MAC1, encapsulate_gpdu(osrc, odst, teid, inner, extensions=exts))
        )
        if i % 2 == 0 or i % 3 == 0:  # NAT half of them: new inner source (and port/id)
            isrc = addr(rng)
            sport = rng.randrange(1024, 40000)
            c = classify(frame)
            if proto in (TCP, UDP):
                rewrite_inner(frame, c, source=isrc, source_port=sport)
            else:
                rewrite_inner(frame, c, source=isrc, icmp_id=sport)
        want = {"osrc": osrc, "odst": odst, "isrc": isrc, "idst": idst, "proto": proto,
                "sport": sport, "dport": dport, "teid": teid, "qfi": qfi}  # fmt: skip
        cases.append((bytes(frame), want))
    return cases


def ip_text(raw: object) -> str:
    return str(ipaddress.ip_address(raw))  # type: ignore[arg-type]


def test_tshark_agrees_and_checksums_are_good(tmp_path: Path) -> None:
    cases = build_cases()
    path = tmp_path / "ours.pcap"
    path.write_bytes(pcap.build(frame for frame, _ in cases))
    argv = ["tshark", "-r", str(path), "-n",
            "-o", "udp.check_checksum:TRUE", "-o", "ip.check_checksum:TRUE",
            "-o", "tcp.check_checksum:TRUE", "-T", "fields", "-E", "occurrence=a",
            "-E", "aggregator=,", "-E", "separator=/t"]  # fmt: skip
    for name in FIELDS:
        argv += ["-e", name]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=True).stdout
    rows = [line.split("\t") for line in out.splitlines()]
    assert len(rows) == len(cases)
    for row, (_, want) in zip(rows, cases, strict=True):
        got = dict(zip(FIELDS, row, strict=True))
        n = got["frame.number"]
        # addresses: outer first, inner second, split across ip.* and ipv6.*
        srcs = [s for s in (got["ip.src"] + "," + got["ipv6.src"]).split(",") if s]
        dsts = [s for s in (got["ip.dst"] + "," + got["ipv6.dst"]).split(",") if s]
        assert set(srcs) == {ip_text(want["osrc"]), ip_text(want["isrc"])}, n
        assert set(dsts) == {ip_text(want["odst"]), ip_text(want["idst"])}, n
        assert int(got["gtp.teid"], 16) == want["teid"], n
        if want["qfi"] is not None:
            assert got["gtp.ext_hdr.pdu_ses_con.qos_flow_id"] == str(want["qfi"]), n
        udp_ports = got["udp.srcport"].split(",")
        assert udp_ports[0] == "2152", n
        if want["proto"] == TCP:
            assert (got["tcp.srcport"], got["tcp.dstport"]) == (str(want["sport"]), "5001"), n
        elif want["proto"] == UDP:
            assert udp_ports[1] == str(want["sport"]), n
            assert got["udp.dstport"].split(",")[1] == "5001", n
        elif want["proto"] == ICMP:
            assert int(got["icmp.ident"].split(",")[0], 0) == want["sport"], n
        else:
            assert int(got["icmpv6.echo.identifier"], 0) == want["sport"], n
        # every checksum tshark verified is good (status 1); none unverified (2) or bad (0)
        statuses = []
        for name in FIELDS[13:]:
            statuses += [s for s in got[name].split(",") if s]
        # outer IPv4 header (if IPv4), outer UDP, inner IPv4 header (if IPv4), inner L4
        expected = 2 + (len(want["osrc"]) == 4) + (len(want["isrc"]) == 4)  # type: ignore[arg-type]
        assert statuses == ["1"] * expected, (n, got)
