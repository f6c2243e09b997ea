"""The rtnetlink link-counter codec (:mod:`fluidedge.linux.linkstats`).

Answers are built as rtnetlink(7) lays them out; the functional tier reads a real TUN's
counters and checks them against iproute2 (tests/functional/tof_fastpath/test_limits.py)."""

from __future__ import annotations

import errno
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fluidedge.linux.linkstats import (
    IFLA_STATS64,
    RTM_GETLINK,
    RTM_NEWLINK,
    STATS64_FIELDS,
    LinkStats,
    LinkStatsError,
    decode_link_stats,
    encode_get_link,
)
from fluidedge.linux.netlink import NLMSG_ERROR, NLMSG_HDR

IFLA_IFNAME = 3
IFLA_STATS = 7


def _attr(kind: int, data: bytes) -> bytes:
    length = 4 + len(data)
    return struct.pack("=HH", length, kind) + data + b"\0" * ((4 - length % 4) % 4)


def _answer(seq: int, counters: tuple[int, ...], *, extra: int = 16) -> bytes:
    """An RTM_NEWLINK as the kernel answers: the name, the 32-bit IFLA_STATS, then the 64-bit
    ones (``extra`` more u64 fields after the eight we read)."""
    body = struct.pack("=BxHiII", 0, 1, 7, 0, 0)
    body += _attr(IFLA_IFNAME, b"tofapps\0")
    body += _attr(IFLA_STATS, struct.pack("=8I", *(c & 0xFFFFFFFF for c in counters)))
    body += _attr(IFLA_STATS64, struct.pack(f"=8Q{extra}Q", *counters, *([0] * extra)))
    return NLMSG_HDR.pack(16 + len(body), RTM_NEWLINK, 0, seq, 0) + body


def test_the_request_names_the_link() -> None:
    data = encode_get_link(9, 42)
    length, kind, _flags, seq, _pid = NLMSG_HDR.unpack_from(data)
    assert (length, kind, seq) == (len(data), RTM_GETLINK, 9)
    assert struct.unpack_from("=i", data, 16 + 4)[0] == 42


def test_the_counters_are_read_in_their_order() -> None:
    counters = (1, 2, 3, 4, 5, 6, 7, 2**40 + 8)
    stats = decode_link_stats(_answer(3, counters), 3)
    assert stats == LinkStats(*counters)
    assert stats is not None
    assert stats.tx_dropped == 2**40 + 8  # 64-bit, not the 32-bit IFLA_STATS
    assert len(STATS64_FIELDS) == 8


def test_an_answer_to_another_request_is_not_ours() -> None:
    assert decode_link_stats(_answer(2, (0,) * 8), 3) is None


def test_a_refusal_raises_its_errno() -> None:
    error = NLMSG_HDR.pack(36, NLMSG_ERROR, 0, 5, 0) + struct.pack("=i", -errno.ENODEV) + bytes(16)
    with pytest.raises(LinkStatsError) as caught:
        decode_link_stats(error, 5)
    assert caught.value.errno == errno.ENODEV


def test_an_answer_without_64_bit_counters_or_too_short_is_refused() -> None:
    body = struct.pack("=BxHiII", 0, 1, 7, 0, 0) + _attr(IFLA_IFNAME, b"x\0")
    data = NLMSG_HDR.pack(16 + len(body), RTM_NEWLINK, 0, 1, 0) + body
    with pytest.raises(LinkStatsError, match="no IFLA_STATS64"):
        decode_link_stats(data, 1)
    short = _answer(1, (0,) * 8)
    with pytest.raises(LinkStatsError, match="length"):
        decode_link_stats(short[:-8], 1)


@given(st.binary(max_size=300), st.integers(0, 5))
def test_any_bytes_decode_or_raise_the_codecs_error(data: bytes, seq: int) -> None:
    try:
        stats = decode_link_stats(data, seq)
    except LinkStatsError:
        stats = None
    assert stats is None or isinstance(stats, LinkStats)


@given(st.tuples(*[st.integers(0, 2**64 - 1)] * 8), st.integers(0, 40))
def test_round_trip(counters: tuple[int, ...], extra: int) -> None:
    assert decode_link_stats(_answer(1, counters, extra=extra), 1) == LinkStats(*counters)
