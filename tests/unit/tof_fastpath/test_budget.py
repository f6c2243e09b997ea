"""The punt budget's token-bucket arithmetic: the program's own header, compiled natively.

``budget.h`` has no BPF helper in it on purpose, so this test drives the exact code the
kernel runs (through a two-line C wrapper and ctypes) instead of a Python copy of it.
"""

from __future__ import annotations

import ctypes
import shutil
import subprocess
from pathlib import Path

import pytest

from fluidedge.tof.fastpath import build

S = 1_000_000_000  # ns
WRAPPER = """
#include <linux/types.h>
#include "budget.h"
int take(__u64 *tokens, __u64 *last, __u64 now, __u64 rate, __u64 burst)
{ return budget_take(tokens, last, now, rate, burst); }
int take_n(__u64 *tokens, __u64 *last, __u64 now, __u64 rate, __u64 burst, __u64 cost)
{ return bucket_take(tokens, last, now, rate, burst, cost); }
"""


class Bucket:
    def __init__(self, lib: ctypes.CDLL, rate: int, burst: int) -> None:
        self.lib, self.rate, self.burst = lib, rate, burst
        self.tokens = ctypes.c_uint64(0)
        self.last = ctypes.c_uint64(0)

    def take(self, now: int) -> bool:
        return bool(
            self.lib.take(
                ctypes.byref(self.tokens), ctypes.byref(self.last), now, self.rate, self.burst
            )
        )

    def burst_at(self, now: int, limit: int = 10_000) -> int:
        """How many punts are allowed back to back at ``now``."""
        n = 0
        while n < limit and self.take(now):
            n += 1
        return n


@pytest.fixture(scope="module")
def lib(tmp_path_factory: pytest.TempPathFactory) -> ctypes.CDLL:
    cc = shutil.which("clang") or shutil.which("cc")
    assert cc, "clang is installed by scripts/setup"
    d: Path = tmp_path_factory.mktemp("budget")
    (d / "budget.h").write_bytes(build.header("budget.h"))
    (d / "wrap.c").write_text(WRAPPER)
    subprocess.run(
        [
            cc,
            "-O2",
            "-Wall",
            "-Werror",
            "-shared",
            "-fPIC",
            "-o",
            str(d / "b.so"),
            str(d / "wrap.c"),
        ],
        check=True,
    )
    so = ctypes.CDLL(str(d / "b.so"))
    u64 = ctypes.c_uint64
    so.take.argtypes = [ctypes.POINTER(u64), ctypes.POINTER(u64), u64, u64, u64]
    so.take.restype = ctypes.c_int
    so.take_n.argtypes = [ctypes.POINTER(u64), ctypes.POINTER(u64), u64, u64, u64, u64]
    so.take_n.restype = ctypes.c_int
    return so


def test_a_fresh_bucket_allows_the_burst_then_refills_at_the_rate(lib: ctypes.CDLL) -> None:
    b = Bucket(lib, rate=100, burst=20)
    t0 = 5_000 * S  # a ktime far from 0, as on a host up for a while
    assert b.burst_at(t0) == 20
    assert not b.take(t0 + S // 1000)  # 1 ms = 0.1 token
    assert b.burst_at(t0 + S // 10) == 10  # 0.1 carried + 99 ms at 100/s
    assert b.burst_at(t0 + 10 * S) == 20  # capped at the burst


@pytest.mark.parametrize("idle_s", [1e3, 1e6, 1e9, 9.2e9])
def test_a_long_idle_refills_to_the_burst_without_wrapping(lib: ctypes.CDLL, idle_s: float) -> None:
    # rate x elapsed ns would exceed 2^64 for these idles at this rate: the old arithmetic
    # wrapped to a near-empty bucket; a bucket idle that long is simply full.
    b = Bucket(lib, rate=4_000_000_000, burst=4_000_000_000)
    t0 = 10 * S
    b.burst_at(t0, limit=5)
    b.tokens.value = 0  # drained
    assert not b.take(t0)
    assert b.take(t0 + int(idle_s * S))
    assert b.tokens.value == 4_000_000_000 * S - S  # full minus the one just taken


def test_clock_going_back_and_unlimited_rate(lib: ctypes.CDLL) -> None:
    b = Bucket(lib, rate=10, burst=2)
    assert b.burst_at(100 * S) == 2
    assert not b.take(50 * S)  # time going back refills nothing...
    assert b.last.value == 100 * S  # ...and does not move the refill's origin back
    assert not b.take(100 * S + S // 20)  # so 50 ms after 100 s: half a token, not 500 s
    assert Bucket(lib, rate=0, burst=0).burst_at(S, limit=500) == 500  # 0 = unlimited
    # A tokens value above the cap (a burst lowered at run time) is clamped, not trusted.
    c = Bucket(lib, rate=10, burst=3)
    c.take(S)
    c.tokens.value = 1000 * S
    assert c.burst_at(S) == 3


class ByteBucket(Bucket):
    """A per-UE rate limit's bucket: tokens are bytes, a packet takes its size."""

    def send(self, now: int, size: int) -> bool:
        return bool(
            self.lib.take_n(
                ctypes.byref(self.tokens),
                ctypes.byref(self.last),
                now,
                self.rate,
                self.burst,
                size,
            )
        )


def test_a_byte_bucket_passes_its_burst_then_its_rate(lib: ctypes.CDLL) -> None:
    b = ByteBucket(lib, rate=200_000, burst=50_000)  # 1.6 Mbit/s, 50 kB deep
    t0 = 3_000 * S
    passed = sum(b.send(t0, 1000) for _ in range(80))
    assert passed == 50  # the burst, back to back
    assert not b.send(t0, 1000)  # a refusal takes nothing...
    assert b.send(t0 + 5 * S // 1000, 1000)  # ...so 5 ms later 1000 bytes are there
    # Over one second of 1000-byte packets every 1 ms, the rate passes (to the packet).
    now, passed = t0 + S, 0
    b.tokens.value, b.last.value = 0, now  # empty at the start of that second
    for i in range(1000):
        passed += b.send(now + i * S // 1000, 1000)
    assert 199 <= passed <= 201
    # A packet larger than the burst never passes (the config keeps bursts >= 3000 bytes).
    assert not ByteBucket(lib, rate=1000, burst=1000).send(t0, 1500)


@pytest.mark.parametrize("idle_s", [1e3, 1e6, 9.2e9])
def test_a_byte_bucket_idle_for_long_is_full_not_wrapped(lib: ctypes.CDLL, idle_s: float) -> None:
    # The largest rate and burst the program holds (u32 bytes/s and bytes).
    top = 0xFFFFFFFF
    b = ByteBucket(lib, rate=top, burst=top)
    t0 = 10 * S
    assert b.send(t0, 65535)
    b.tokens.value = 0
    assert not b.send(t0, 65535)
    assert b.send(t0 + int(idle_s * S), 65535)
    assert b.tokens.value == top * S - 65535 * S
