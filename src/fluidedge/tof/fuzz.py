"""Malformed S1 frames for fuzzing a live TOF (bench/tof_fuzz.py and the e2e fuzz test).

Each frame starts from a valid G-PDU (optionally with a PDU Session Container) or GTP-U
signalling message and breaks one thing a parser must survive: truncation at every layer,
lying length fields, bad versions and flags, broken extension chains (zero length, running
past the end), bad IE lengths, random bytes. Deterministic for a given seed.
"""

from __future__ import annotations

import ipaddress
import random
import struct
from collections.abc import Iterator

from fluidedge.codec import gtpu
from fluidedge.codec.gtpu import PDU_TYPE_UL, PduSessionContainer
from fluidedge.codec.net import ipv4, udp
from fluidedge.codec.stack import encapsulate, encapsulate_gpdu, ethernet_frame

BROADCAST = b"\xff" * 6
#: A MAC nobody owns: bridges flood it to every port, hosts drop it (PACKET_OTHERHOST), so the
#: frames exercise the TOF without reaching the peers' GTP-U stacks.
UNKNOWN_UNICAST = bytes.fromhex("02f0ed000001")


def _inner(src: bytes, dst: bytes, size: int) -> bytes:
    return ipv4.encode(src, dst, 17, udp.encode(src, dst, 4000, 80, bytes(size)))


def malformed_frames(
    count: int,
    *,
    enb: bytes,
    sgw: bytes,
    ue: bytes,
    target: bytes,
    src_mac: bytes,
    dst_mac: bytes = UNKNOWN_UNICAST,
    seed: int = 1,
) -> Iterator[bytes]:
    """``count`` broken frames from ``enb`` toward ``sgw`` (see the module docstring)."""
    rng = random.Random(seed)  # noqa: S311 - reproducible fuzzing, not cryptography
    psc = (PduSessionContainer(pdu_type=PDU_TYPE_UL, qfi=9),)
    templates = [
        ethernet_frame(
            dst_mac, src_mac, encapsulate_gpdu(enb, sgw, 0xDEAD, _inner(ue, target, 40))
        ),
        ethernet_frame(
            dst_mac,
            src_mac,
            encapsulate_gpdu(enb, sgw, 0xBEEF, _inner(ue, target, 20), extensions=psc),
        ),
        ethernet_frame(dst_mac, src_mac, encapsulate(enb, sgw, gtpu.echo_request(7))),
        ethernet_frame(
            dst_mac,
            src_mac,
            encapsulate(enb, sgw, gtpu.error_indication(0x1234, _addr(enb))),
        ),
    ]
    for _ in range(count):
        base = bytearray(rng.choice(templates))
        how = rng.randrange(8)
        if how == 0:  # truncate anywhere
            del base[rng.randrange(1, len(base)) :]
        elif how == 1:  # GTP-U length lies
            struct.pack_into("!H", base, 44, rng.randrange(0x10000))
        elif how == 2:  # version / PT / flags
            base[42] = rng.randrange(256)
        elif how == 3:  # extension length 0 or huge
            if len(base) > 54:
                base[42] |= 0x04
                base[53] = 0x85
                base[54] = rng.choice([0, 1, 63, 255])
        elif how == 4:  # UDP / IP lengths lie
            struct.pack_into("!H", base, rng.choice([16, 38]), rng.randrange(0x10000))
        elif how == 5:  # inner header garbage
            for _ in range(rng.randrange(1, 8)):
                pos = rng.randrange(50, len(base))
                base[pos] = rng.randrange(256)
        elif how == 6:  # random bytes after a valid Ethernet/IP/UDP prefix
            base[42:] = rng.randbytes(rng.randrange(0, 64))
            struct.pack_into("!H", base, 38, len(base) - 34)
            struct.pack_into("!H", base, 16, len(base) - 14)
        else:  # any single byte anywhere
            pos = rng.randrange(len(base))
            base[pos] = rng.randrange(256)
        if len(base) < 14:
            base += bytes(14 - len(base))
        yield bytes(base)


def _addr(raw: bytes) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    return ipaddress.ip_address(raw)
