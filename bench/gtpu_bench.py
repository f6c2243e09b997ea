"""GTP-U codec alone: decode/peek/encode rates, against scapy on the same octets.

    .venv/bin/python bench/gtpu_bench.py [--quick]

For three shapes (LTE S1-U plain G-PDU, 5G N3 uplink G-PDU with a PDU Session Container
QFI 9, Echo Request) it times, on one core in this process: our ``decode`` (full message
objects, zero-copy T-PDU), ``decode_header``, ``peek`` (tuple, no objects), ``encode_gpdu``;
and scapy 2.8 dissecting (``GTP_U_Header(wire)``) and building the same message. Ratios are
ours / scapy measured in the same run. The machine is shared: best of ``--repeat`` runs.
The whole-stack benchmark (Ethernet/IP/UDP/GTP-U/inner 5-tuple) is ``bench/codec_bench.py``.
"""

from __future__ import annotations

import argparse
import timeit
from collections.abc import Callable
from functools import partial

from scapy.compat import raw
from scapy.contrib.gtp import GTP_U_Header, GTPEchoRequest, GTPPDUSessionContainer
from scapy.layers.inet import IP, UDP

from fluidedge.codec.gtpu import (
    PduSessionContainer,
    decode,
    decode_header,
    echo_request,
    encode_gpdu,
    peek,
)

INNER = raw(IP(src="198.18.0.1", dst="198.19.0.1") / UDP(sport=40000, dport=53) / (b"x" * 72))
PSC = (PduSessionContainer(1, 9),)


def rate(fn: Callable[[], object], number: int, repeat: int) -> float:
    """Calls per second, best of ``repeat``."""
    return number / min(timeit.repeat(fn, number=number, repeat=repeat))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    n_ours, n_scapy = (20_000, 300) if args.quick else (200_000, 3_000)

    plain = encode_gpdu(0x1234, INNER)
    n3 = encode_gpdu(0x1234, INNER, extensions=PSC)
    echo = echo_request(7)
    shapes = {
        "S1-U G-PDU plain": (
            plain,
            lambda: encode_gpdu(0x1234, INNER),
            lambda: raw(GTP_U_Header(teid=0x1234, gtp_type=255) / INNER),
        ),
        "N3 UL G-PDU + PSC QFI 9": (
            n3,
            lambda: encode_gpdu(0x1234, INNER, extensions=PSC),
            lambda: raw(
                GTP_U_Header(teid=0x1234, gtp_type=255, E=1, next_ex=0x85)
                / GTPPDUSessionContainer(type=1, QFI=9)
                / INNER
            ),
        ),
        "Echo Request": (
            echo,
            lambda: echo_request(7),
            lambda: raw(GTP_U_Header(gtp_type=1, S=1, seq=7) / GTPEchoRequest()),
        ),
    }
    print(f"{'shape':<26} {'operation':<16} {'ours/s':>12} {'scapy/s':>10} {'ratio':>8}")
    for name, (wire, ours_build, scapy_build) in shapes.items():
        assert decode(wire) is not None
        scapy_parse = rate(partial(GTP_U_Header, wire), n_scapy, args.repeat)
        scapy_enc = rate(scapy_build, n_scapy, args.repeat)
        rows = [
            ("decode", rate(partial(decode, wire), n_ours, args.repeat), scapy_parse),
            ("decode_header", rate(partial(decode_header, wire), n_ours, args.repeat), scapy_parse),
            ("peek", rate(partial(peek, wire), n_ours, args.repeat), scapy_parse),
            ("encode", rate(ours_build, n_ours, args.repeat), scapy_enc),
        ]
        for op, ours, base in rows:
            print(f"{name:<26} {op:<16} {ours:>12,.0f} {base:>10,.0f} {ours / base:>7.0f}x")


if __name__ == "__main__":
    main()
