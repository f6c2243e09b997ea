"""Netlink's framing (:mod:`fluidedge.linux.netlink`), which every netlink codec of ours walks
with: messages and attributes built here decode back to what was built, whatever their
payloads; what does not fit is an error naming its offset, never an IndexError or a
``struct.error``; and our encoding matches pyroute2's for the same message."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fluidedge.linux.netlink import (
    NLATTR,
    NLMSG_ERROR,
    NLMSG_HDR,
    NetlinkDecodeError,
    attr,
    attributes,
    error_code,
    find_attribute,
    frames,
    nlmsg,
)

_payloads = st.binary(max_size=40)
_kinds = st.integers(min_value=0, max_value=0xFFFF)
_attrs = st.lists(st.tuples(st.integers(min_value=0, max_value=0x3FFF), _payloads), max_size=6)


@given(st.lists(st.tuples(_kinds, st.integers(0, 0xFFFF), st.integers(0, 2**32 - 1), _attrs)))
def test_messages_and_their_attributes_round_trip(
    messages: list[tuple[int, int, int, list[tuple[int, bytes]]]],
) -> None:
    data = b"".join(
        nlmsg(kind, flags, seq, b"".join(attr(k, v) for k, v in attrs))
        for kind, flags, seq, attrs in messages
    )
    decoded = list(frames(data))
    assert [(f.kind, f.flags, f.seq) for f in decoded] == [m[:3] for m in messages]
    for frame, (_k, _f, _s, attrs) in zip(decoded, messages, strict=True):
        walked = [(k, data[s:e]) for k, s, e in attributes(data, frame.body, frame.end)]
        assert walked == attrs
        for kind, _value in attrs:
            assert find_attribute(data, frame.body, frame.end, kind) == next(
                v for k, v in attrs if k == kind
            )


@given(st.binary(max_size=200))
def test_any_bytes_decode_or_say_where(data: bytes) -> None:
    message = "offset"
    try:
        for frame in frames(data):
            assert frame.offset % 4 == 0
            assert frame.body <= frame.end <= len(data)
            list(attributes(data, frame.body, frame.end))
            if frame.kind == NLMSG_ERROR:
                error_code(data, frame)
    except NetlinkDecodeError as exc:
        message = str(exc)
    assert "offset" in message


def test_attributes_are_padded_to_four_bytes() -> None:
    assert attr(3, b"eth0\0") == struct.pack("=HH", 9, 3) + b"eth0\0" + b"\0\0\0"
    assert len(attr(1, b"")) == NLATTR.size
    assert len(attr(1, b"abcd")) == 8


def test_the_flag_bits_of_an_attribute_type_are_cleared() -> None:
    nested = attr(0x8000 | 5, b"x")  # NLA_F_NESTED
    assert [k for k, _s, _e in attributes(nested, 0, len(nested))] == [5]


@pytest.mark.parametrize(
    ("data", "where"),
    [
        (NLMSG_HDR.pack(40, 16, 0, 1, 0), "message at offset 0"),  # longer than the receive
        (NLMSG_HDR.pack(8, 16, 0, 1, 0), "message at offset 0"),  # shorter than its header
        (nlmsg(16, 0, 1, b"") + NLMSG_HDR.pack(99, 16, 0, 1, 0), "message at offset 16"),
        (nlmsg(16, 0, 1, b"") + b"\0\0", "2 trailing byte(s) at offset 16"),
    ],
)
def test_messages_that_do_not_fit_name_their_offset(data: bytes, where: str) -> None:
    with pytest.raises(NetlinkDecodeError, match=where.replace("(", r"\(").replace(")", r"\)")):
        list(frames(data))


def test_attributes_that_do_not_fit_name_their_offset() -> None:
    data = nlmsg(16, 0, 1, attr(1, b"ok") + struct.pack("=HH", 40, 2))
    (frame,) = frames(data)
    with pytest.raises(NetlinkDecodeError, match="attribute at offset 24"):
        list(attributes(data, frame.body, frame.end))
    short = nlmsg(16, 0, 1, struct.pack("=HH", 2, 2))  # a length below the header's own
    (frame,) = frames(short)
    with pytest.raises(NetlinkDecodeError, match="attribute at offset 16"):
        find_attribute(short, frame.body, frame.end, 2)


def test_an_error_message_carries_a_positive_errno_and_needs_its_code() -> None:
    data = nlmsg(NLMSG_ERROR, 0, 4, struct.pack("=i", -17) + NLMSG_HDR.pack(16, 20, 5, 4, 0))
    assert error_code(data, next(frames(data))) == 17
    ack = nlmsg(NLMSG_ERROR, 0, 4, struct.pack("=i", 0))
    assert error_code(ack, next(frames(ack))) == 0
    bare = nlmsg(NLMSG_ERROR, 0, 4, b"")
    with pytest.raises(NetlinkDecodeError, match="NLMSG_ERROR at offset 0: no error code"):
        error_code(bare, next(frames(bare)))


def test_our_encoding_matches_pyroute2s() -> None:
    """The same RTM_GETLINK by name, encoded by pyroute2 and by us, byte for byte."""
    from pyroute2.netlink import NLM_F_REQUEST
    from pyroute2.netlink.rtnl import RTM_GETLINK
    from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg

    msg = ifinfmsg()
    msg["family"] = 0
    msg["index"] = 0
    msg["attrs"] = [("IFLA_IFNAME", "fe1i0")]
    msg["header"]["type"] = RTM_GETLINK
    msg["header"]["flags"] = NLM_F_REQUEST
    msg["header"]["sequence_number"] = 7
    msg.encode()
    theirs = bytes(msg.data)
    ours = nlmsg(RTM_GETLINK, NLM_F_REQUEST, 7, bytes(16) + attr(3, b"fe1i0\0"))
    assert ours == theirs
