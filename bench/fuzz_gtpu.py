"""Fuzz the GTP-U decoder alone with random and mutated messages.

    .venv/bin/python bench/fuzz_gtpu.py [--cases 100000] [--seed N] [--quick]

Every case must return from ``decode`` or raise ``CodecError``, and what it returns must meet
the invariants of ``tests/unit/codec/gtpu/invariants.py`` (peek and decode_header agree,
bytes/bytearray/memoryview decode alike, encode(decode(x)) round-trips and is byte-identical
except for IE re-ordering). Seeds: the golden fixtures (tests/fixtures/gtpu) plus messages
of every type built by our encoder. Mutations overwrite, flip, insert, delete, cut, extend
and splice, biased to the flags, length, optional octets and extension chain; half of the
mutants get a consistent length field so they reach the extension chain and IEs. Prints
cases/s, the outcome counts, and each failure with its hex (replay with ``check``).
"""

from __future__ import annotations

import argparse
import random
import sys
import time
import traceback
from collections import Counter
from ipaddress import IPv4Address, IPv6Address
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # for tests.unit.codec.gtpu.invariants

from tests.unit.codec.gtpu.invariants import check  # noqa: E402

from fluidedge.codec.gtpu import (  # noqa: E402
    ExtensionHeader,
    LongPdcpPduNumber,
    PdcpPduNumber,
    PduSessionContainer,
    RanContainer,
    ServiceClassIndicator,
    UdpPortExtension,
    UnknownExtension,
    echo_request,
    encode_gpdu,
    end_marker,
    error_indication,
)

INTERESTING = [0x00, 0x01, 0x02, 0x03, 0x04, 0x0E, 0x10, 0x1A, 0x1F, 0x20, 0x30, 0x32, 0x34,
               0x37, 0x3F, 0x40, 0x41, 0x7F, 0x80, 0x81, 0x82, 0x84, 0x85, 0x8D, 0xC0, 0xE1,
               0xFE, 0xFF]  # fmt: skip


def seeds(rng: random.Random) -> list[bytes]:
    out = []
    for path in sorted((ROOT / "tests/fixtures/gtpu").glob("*.hex")):
        lines = [ln for ln in path.read_text().splitlines() if not ln.startswith("#")]
        out.append(bytes.fromhex("".join("".join(lines).split())))
    exts: list[ExtensionHeader] = [
        PduSessionContainer(1, 9),
        PduSessionContainer(0, 5, rqi=True, ppi=3, qfi_sequence_number=7),
        PduSessionContainer(1, 1, ul_time_stamps=(1, 2, 3), n3n9_delay_result=4),
        UdpPortExtension(2152),
        PdcpPduNumber(5),
        LongPdcpPduNumber(0x3FFFF),
        ServiceClassIndicator(3),
        RanContainer(0x81, b"\x01\x02"),
        UnknownExtension(0x03, b"\x00\x00\x00\x00\x00\x00"),
    ]
    for _ in range(60):
        chosen = tuple(rng.sample(exts, rng.randrange(4)))
        seq = rng.choice([None, rng.randrange(65536)])
        out.append(encode_gpdu(rng.randrange(2**32), rng.randbytes(rng.randrange(40)),
                               sequence=seq, extensions=chosen))  # fmt: skip
    out.append(echo_request(rng.randrange(65536)))
    out.append(error_indication(5, IPv4Address("198.18.0.1"), udp_port=2152))
    out.append(error_indication(5, IPv6Address("2001:db8::1")))
    out.append(end_marker(9))
    return out


def mutate(rng: random.Random, data: bytes, pool: list[bytes]) -> bytes:
    buf = bytearray(data)
    for _ in range(rng.choice([1, 1, 2, 3, 5])):
        op = rng.randrange(8)
        # bias towards the header, optional octets and the first extension headers
        pos = rng.randrange(min(len(buf), 24)) if buf and rng.random() < 0.7 else (
            rng.randrange(len(buf)) if buf else 0)  # fmt: skip
        if op == 0 and buf:
            buf[pos] = rng.choice(INTERESTING)
        elif op == 1 and buf:
            buf[pos] ^= 1 << rng.randrange(8)
        elif op == 2 and buf:
            buf[pos] = rng.randrange(256)
        elif op == 3:
            buf[pos:pos] = rng.randbytes(rng.randrange(1, 8))
        elif op == 4:
            del buf[pos : pos + rng.randrange(1, 8)]
        elif op == 5:
            del buf[rng.randrange(len(buf) + 1) :]
        elif op == 6:
            other = rng.choice(pool)
            cut = rng.randrange(len(other) + 1)
            buf[pos:] = other[cut:]
        else:
            buf += rng.randbytes(rng.randrange(1, 12))
    if len(buf) >= 4 and rng.random() < 0.5:
        buf[2:4] = (len(buf) - 8 if len(buf) >= 8 else rng.randrange(4)).to_bytes(2, "big")
    return bytes(buf)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=29281)
    ap.add_argument("--quick", action="store_true", help="10,000 cases")
    args = ap.parse_args()
    cases = 10_000 if args.quick else args.cases
    rng = random.Random(args.seed)
    pool = seeds(rng)
    outcomes: Counter[str] = Counter()
    failures: list[tuple[bytes, int, str]] = []
    start = time.perf_counter()
    for i in range(cases):
        r = rng.random()
        if r < 0.15:
            data = rng.randbytes(rng.randrange(64))
        elif r < 0.25:
            data = bytes((rng.choice(INTERESTING), rng.choice(INTERESTING))) + rng.randbytes(
                rng.randrange(60)
            )
        else:
            data = mutate(rng, rng.choice(pool), pool)
        offset = 0
        if i % 10 == 0:
            offset = rng.randrange(6)
            data = rng.randbytes(offset) + data
        try:
            outcomes[check(data, offset)] += 1
        except Exception:  # anything but CodecError is what we hunt
            outcomes["FAILURE"] += 1
            if len(failures) < 20:
                failures.append((data, offset, traceback.format_exc(limit=4)))
    elapsed = time.perf_counter() - start
    print(f"GTP-U fuzz: {cases} cases in {elapsed:.1f} s = {cases / elapsed:,.0f} cases/s")
    print("(each case: decode + invariants: peek, decode_header, 3 buffer types, re-encode)")
    print(f"{'outcome':<42} {'cases':>8}")
    for name, count in outcomes.most_common():
        print(f"{name:<42} {count:>8}")
    for data, offset, tb in failures:
        print(f"\nFAILURE offset={offset} data={data.hex()}\n{tb}")
    print(f"\nfailures: {outcomes['FAILURE']}")
    return 1 if outcomes["FAILURE"] else 0


if __name__ == "__main__":
    sys.exit(main())
