"""Fuzz the frame decoder and the fast classifier with random and mutated frames.

    .venv/bin/python bench/fuzz_stack.py [--cases 100000] [--seed N]

Every case must (1) return from ``decode_frame`` and ``classify`` without raising anything,
(2) give the same classification from both, and (3) say MALFORMED exactly when it carries an
error. Seeds are the golden fixtures plus frames built by our encoders in every shape the TOF
meets; mutations flip, cut, insert, delete and splice bytes, biased towards the headers.
Prints cases/s and the failures (with the frame's hex, to replay with ``fluidedge decode``).
"""

from __future__ import annotations

import argparse
import random
import sys
import time
import traceback
from pathlib import Path

from fluidedge.codec.gtpu import PduSessionContainer, UdpPortExtension, echo_request
from fluidedge.codec.net import ethernet, ipv4, ipv6
from fluidedge.codec.net.ethernet import VlanTag
from fluidedge.codec.stack import Kind, classify, decode_frame, encapsulate, encapsulate_gpdu

ROOT = Path(__file__).resolve().parents[1]
MAC1, MAC2 = bytes.fromhex("020000000001"), bytes.fromhex("020000000002")
INTERESTING = [0x00, 0x01, 0x04, 0x05, 0x06, 0x08, 0x11, 0x2C, 0x30, 0x32, 0x34, 0x3A, 0x40,
               0x45, 0x46, 0x4F, 0x60, 0x81, 0x85, 0x86, 0xDD, 0xFF]  # fmt: skip


LAYER_STARTS = [0, 12, 14, 18, 34, 38, 42, 46, 50, 54, 58, 62, 70, 78, 90]


def seeds(rng: random.Random) -> list[bytes]:
    out = [
        bytes.fromhex(p.read_text()) for p in sorted((ROOT / "tests/fixtures/net").glob("*.hex"))
    ]
    for _ in range(200):
        iv = rng.choice([4, 6])
        a = 4 if iv == 4 else 16
        proto = rng.choice([6, 17, 1 if iv == 4 else 58, 47])
        l4 = bytes(rng.randrange(256) for _ in range(rng.choice([4, 8, 20, 28])))
        src, dst = rng.randbytes(a), rng.randbytes(a)
        inner = ipv4.encode(src, dst, proto, l4) if iv == 4 else ipv6.encode(src, dst, proto, l4)
        oa = rng.choice([4, 4, 16])
        exts: tuple[PduSessionContainer | UdpPortExtension, ...] = ()
        r = rng.random()
        if r < 0.4:
            exts = (PduSessionContainer(pdu_type=rng.randrange(2), qfi=rng.randrange(64)),)
        elif r < 0.5:
            exts = (UdpPortExtension(rng.randrange(65536)),)
        if rng.random() < 0.1:
            ip = encapsulate(
                rng.randbytes(oa), rng.randbytes(oa), echo_request(rng.randrange(65536))
            )
        else:
            ip = encapsulate_gpdu(rng.randbytes(oa), rng.randbytes(oa), rng.randrange(2**32), inner,
                                  extensions=exts, sequence=rng.choice([None, 7]))  # fmt: skip
        vlans = tuple(
            VlanTag(0x8100, 0, False, rng.randrange(4096)) for _ in range(rng.choice([0, 0, 1, 2]))
        )
        out.append(ethernet.encode(MAC2, MAC1, 0x0800 if oa == 4 else 0x86DD, ip, vlans=vlans))
    return out


def mutate(rng: random.Random, frame: bytes, corpus: list[bytes]) -> bytes:
    buf = bytearray(frame)
    for _ in range(rng.choice([1, 1, 1, 2, 3, 5])):
        op = rng.random()
        if not buf:
            buf += rng.randbytes(rng.randrange(1, 100))
            continue
        # biased to header fields: a layer start (Ethernet, VLAN, IP, UDP, GTP-U, ext, inner,
        # inner L4 in the common shapes) plus a few octets, sometimes anywhere
        if rng.random() < 0.8:
            at = min(rng.choice(LAYER_STARTS) + rng.randrange(12), len(buf) - 1)
        else:
            at = rng.randrange(len(buf))
        if op < 0.45:
            buf[at] = rng.choice(INTERESTING) if rng.random() < 0.5 else rng.randrange(256)
        elif op < 0.55:
            buf[at] ^= 1 << rng.randrange(8)
        elif op < 0.7:
            del buf[rng.randrange(len(buf) + 1) :]
        elif op < 0.8:
            buf[at:at] = rng.randbytes(rng.choice([1, 2, 4, 8]))
        elif op < 0.9:
            del buf[at : at + rng.choice([1, 2, 4, 8])]
        else:
            other = rng.choice(corpus)
            cut = rng.randrange(len(other) + 1)
            buf = buf[:at] + bytearray(other[cut:])
    return bytes(buf)


def check(frame: bytes) -> str | None:
    """None if the case is fine, else what went wrong."""
    try:
        full = decode_frame(frame).classified()
        fast = classify(frame)
    except Exception:
        return "raised:\n" + traceback.format_exc()
    if fast != full:
        return f"classify != decode_frame:\n  fast={fast}\n  full={full}"
    if (full.kind == Kind.MALFORMED) != (full.error is not None):
        return f"kind {full.kind} with error {full.error}"
    return None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args(argv)
    rng = random.Random(args.seed)
    corpus = seeds(rng)
    kinds = dict.fromkeys(Kind, 0)
    failures: list[tuple[bytes, str]] = []
    t0 = time.perf_counter()
    done = 0
    for _ in range(args.cases):
        done += 1
        r = rng.random()
        if r < 0.05:
            frame = rng.randbytes(rng.randrange(0, 200))
        elif r < 0.1:
            frame = rng.choice(corpus)
        else:
            frame = mutate(rng, rng.choice(corpus), corpus)
        problem = check(frame)
        if problem:
            failures.append((frame, problem))
            if len(failures) >= 20:
                break
        else:
            kinds[Kind(classify(frame).kind)] += 1
        if rng.random() < 0.01 and len(corpus) < 5000:
            corpus.append(frame)
    dt = time.perf_counter() - t0
    print(f"{done:,} cases in {dt:.1f} s = {done / dt:,.0f} cases/s (seed {args.seed}), "
          f"{len(failures)} failures")  # fmt: skip
    print("  " + ", ".join(f"{k.name}={v:,}" for k, v in kinds.items()))
    for frame, problem in failures[:5]:
        print(f"FAIL frame={frame.hex()}\n{problem}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
