"""The nftables announcements that wake the rules' check: a transaction that touched a table
of ours, committed by a process that is not ours. Messages are built here as the kernel sends
them (nlmsghdr, nfgenmsg, attributes) and read from real ones in the functional tests."""

from __future__ import annotations

import struct

import pytest

from fluidedge.secgroups.nft import RecentPids, table_name
from fluidedge.secgroups.nftwatch import (
    NFT_MSG_DELRULE,
    NFT_MSG_DELTABLE,
    NFT_MSG_NEWGEN,
    NFT_MSG_NEWSETELEM,
    NFTA_GEN_PROC_PID,
    NFTA_TABLE,
    Committed,
    Touched,
    Transactions,
    announcements,
    ours,
)

SUBSYS = 10 << 8  # NFNL_SUBSYS_NFTABLES


def _attr(kind: int, value: bytes) -> bytes:
    raw = struct.pack("=HH", 4 + len(value), kind) + value
    return raw + bytes(-len(raw) % 4)


def _msg(kind: int, *attrs: bytes, family: int = 1) -> bytes:
    body = struct.pack("=BBH", family, 0, 0) + b"".join(attrs)
    return struct.pack("=IHHII", 16 + len(body), SUBSYS | kind, 0, 7, 0) + body


def _touch(kind: int, table: str) -> bytes:
    return _msg(kind, _attr(NFTA_TABLE, table.encode() + b"\0"))


def _commit(pid: int) -> bytes:
    return _msg(
        NFT_MSG_NEWGEN,
        _attr(1, struct.pack("!I", 42)),  # NFTA_GEN_ID first
        _attr(NFTA_GEN_PROC_PID, struct.pack("!I", pid)),
        _attr(3, b"nft\0"),  # NFTA_GEN_PROC_NAME
    )


def test_messages_name_their_table_and_the_commit_its_process() -> None:
    name = table_name("apps")
    flags = _attr(2, struct.pack("!I", 0))  # another attribute first: the name is found anyway
    data = (
        _msg(NFT_MSG_DELTABLE, flags, _attr(NFTA_TABLE, name.encode() + b"\0"))
        + _touch(NFT_MSG_DELRULE, "filter")
        + _msg(NFT_MSG_NEWSETELEM, _attr(NFTA_TABLE | 0x8000, b"fesg_n\0"))  # a flag bit
        + _commit(4242)
    )
    assert announcements(data) == [
        Touched(name),
        Touched("filter"),
        Touched("fesg_n"),
        Committed(4242),
    ]


def test_other_subsystems_and_messages_without_a_table_are_skipped() -> None:
    other = struct.pack("=IHHII", 20, (9 << 8) | 2, 0, 0, 0) + bytes(4)  # subsystem 9
    no_table = _msg(NFT_MSG_DELRULE, _attr(2, b"p1_eg\0"))  # a chain, no table
    no_pid = _msg(NFT_MSG_NEWGEN, _attr(1, struct.pack("!I", 42)))
    assert announcements(other + no_table + no_pid) == [Committed(None)]


@pytest.mark.parametrize(
    "data",
    [
        struct.pack("=IHHII", 8, SUBSYS | NFT_MSG_DELTABLE, 0, 0, 0),  # shorter than its header
        struct.pack("=IHHII", 64, SUBSYS | NFT_MSG_DELTABLE, 0, 0, 0),  # longer than the receive
        _msg(NFT_MSG_DELTABLE, struct.pack("=HH", 2, NFTA_TABLE)),  # an attribute too short
        _msg(NFT_MSG_NEWGEN, struct.pack("=HH", 40, NFTA_GEN_PROC_PID)),  # past its message
    ],
)
def test_malformed_messages_say_where(data: bytes) -> None:
    with pytest.raises(ValueError, match="at offset"):
        announcements(data)


def test_an_empty_receive_names_nothing_and_a_partial_one_is_an_error() -> None:
    assert announcements(b"") == []
    with pytest.raises(ValueError, match="trailing byte"):  # what a truncated receive looks like
        announcements(b"\x10\x00")


def test_which_names_are_ours() -> None:
    assert ours(table_name("n-1"))
    assert not ours("filter")
    assert not ours("nat")


def test_only_someone_elses_commit_touching_our_tables_wakes() -> None:
    own = RecentPids()
    own.add(100)
    t = Transactions(own)
    assert not t.feed([Touched("fesg_n"), Committed(100)])  # ours
    assert not t.feed([Touched("filter"), Committed(200)])  # not our table
    assert t.feed([Touched("filter"), Touched("fesg_n"), Committed(200)])
    assert t.feed([Touched("fesg_n"), Committed(None)])  # who committed is not said
    # a transaction across two receives
    assert not t.feed([Touched("fesg_n")])
    assert t.feed([Touched("nat"), Committed(300)])
    # the touch is forgotten at each commit, and when announcements were dropped
    assert not t.feed([Committed(300)])
    t.feed([Touched("fesg_n")])
    t.reset()
    assert not t.feed([Committed(300)])


def test_recent_pids_forget_the_oldest() -> None:
    pids = RecentPids(size=3)
    for pid in (1, 2, 3, 4):
        pids.add(pid)
    assert 1 not in pids
    assert all(p in pids for p in (2, 3, 4))
    pids.add(2)  # again: still kept once it is the newest
    pids.add(5)
    assert 2 in pids
