"""The nftables announcements that wake the rules' check: our tables' deletion only. Messages
are built here as the kernel sends them (nlmsghdr, nfgenmsg, attributes) and cross-checked
against a real one in the functional tests."""

from __future__ import annotations

import struct

import pytest

from fluidedge.secgroups.nft import table_name
from fluidedge.secgroups.nftwatch import DELTABLE, NFTA_TABLE_NAME, deleted_tables, ours

NEWTABLE = (10 << 8) | 0  # NFT_MSG_NEWTABLE


def _attr(kind: int, value: bytes) -> bytes:
    raw = struct.pack("=HH", 4 + len(value), kind) + value
    return raw + bytes(-len(raw) % 4)


def _msg(kind: int, *attrs: bytes, family: int = 1) -> bytes:
    body = struct.pack("=BBH", family, 0, 0) + b"".join(attrs)
    return struct.pack("=IHHII", 16 + len(body), kind, 0, 7, 0) + body


def test_a_deletion_names_its_table() -> None:
    name = table_name("apps")
    flags = _attr(2, struct.pack("!I", 0))  # NFTA_TABLE_FLAGS first: the name is found anyway
    data = _msg(DELTABLE, flags, _attr(NFTA_TABLE_NAME, name.encode() + b"\0"))
    assert deleted_tables(data) == [name]


def test_several_messages_in_one_receive_and_others_skipped() -> None:
    data = (
        _msg(NEWTABLE, _attr(NFTA_TABLE_NAME, b"fesg_new\0"))
        + _msg(DELTABLE, _attr(NFTA_TABLE_NAME, b"filter\0"), family=7)
        + _msg(DELTABLE, _attr(NFTA_TABLE_NAME | 0x8000, b"fesg_n\0"))  # a flag bit set
    )
    assert deleted_tables(data) == ["filter", "fesg_n"]
    assert [n for n in deleted_tables(data) if ours(n)] == ["fesg_n"]


@pytest.mark.parametrize(
    "data",
    [
        struct.pack("=IHHII", 8, DELTABLE, 0, 0, 0),  # shorter than its header
        struct.pack("=IHHII", 64, DELTABLE, 0, 0, 0),  # longer than the receive
        _msg(DELTABLE, struct.pack("=HH", 2, NFTA_TABLE_NAME)),  # an attribute too short
        _msg(DELTABLE, struct.pack("=HH", 40, NFTA_TABLE_NAME)),  # past its message
    ],
)
def test_malformed_messages_say_where(data: bytes) -> None:
    with pytest.raises(ValueError, match="at offset"):
        deleted_tables(data)


def test_an_empty_or_partial_receive_names_nothing() -> None:
    assert deleted_tables(b"") == []
    assert deleted_tables(b"\x10\x00") == []  # less than a header: nothing to read


def test_which_names_are_ours() -> None:
    assert ours(table_name("n-1"))
    assert not ours("filter")
    assert not ours("nat")
