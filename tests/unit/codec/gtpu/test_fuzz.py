"""Fuzzing: on random and mutated inputs the decoder only returns or raises CodecError,
and whatever it returns satisfies the invariants of ``invariants.check`` (peek agrees,
re-encoding round-trips). The big run (>= 100,000 cases) is ``bench/fuzz_gtpu.py``."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .golden import load, names
from .invariants import check

GOLDEN = [load(n) for n in names()]
FUZZ = settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(st.binary(max_size=120), st.integers(0, 4))
def test_random_bytes(data: bytes, offset: int) -> None:
    check(data, min(offset, len(data)))


@st.composite
def plausible(draw: st.DrawFn) -> bytes:
    """A mandatory header that gets past the first checks, then random octets."""
    flags = draw(
        st.sampled_from([0x30, 0x31, 0x32, 0x33, 0x34, 0x36, 0x37, 0x3C]) | st.integers(0, 255)
    )
    mtype = draw(st.sampled_from([1, 2, 26, 31, 254, 255]) | st.integers(0, 255))
    rest = draw(st.binary(max_size=80))
    length = draw(st.just(len(rest)) | st.integers(0, len(rest) + 4))
    teid = draw(st.binary(min_size=4, max_size=4))
    return bytes((flags, mtype)) + length.to_bytes(2, "big") + teid + rest


@FUZZ
@given(plausible())
def test_plausible_headers(data: bytes) -> None:
    check(data)


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(GOLDEN)))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.integers(0, 3))
        pos = draw(st.integers(0, max(len(data) - 1, 0)))
        if op == 0 and data:
            data[pos] = draw(st.integers(0, 255))
        elif op == 1 and data:
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif op == 2:
            data[pos:pos] = draw(st.binary(min_size=1, max_size=6))
        else:
            del data[pos : pos + draw(st.integers(1, 6))]
    if draw(st.booleans()):
        # keep the length field consistent so the mutation reaches the inner parts
        data[2:4] = max(len(data) - 8, 0).to_bytes(2, "big")
    return bytes(data)


@FUZZ
@given(mutated())
def test_mutated_golden(data: bytes) -> None:
    check(data)
