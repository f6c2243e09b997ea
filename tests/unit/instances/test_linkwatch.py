"""The decoder of the kernel's link announcements (:mod:`fluidedge.instances.linkwatch`).

Messages are built as rtnetlink(7) lays them out (``nlmsghdr``, ``ifinfomsg``, ``rtattr``s),
checked against a real announcement in the functional tier (tests/functional/instances/
test_veth_revive.py)."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fluidedge.instances import veths
from fluidedge.instances.linkwatch import (
    RTM_DELLINK,
    LinkWatchDecodeError,
    deleted_links,
    dumped_links,
    encode_dump,
)
from fluidedge.instances.nl import IFLA_IFNAME, RTM_GETLINK, RTM_NEWLINK
from fluidedge.linux.netlink import NLM_F_DUMP, NLMSG_DONE, NLMSG_ERROR, NLMSG_HDR

IFLA_MTU = 4


def _attr(kind: int, data: bytes) -> bytes:
    length = 4 + len(data)
    return struct.pack("=HH", length, kind) + data + b"\0" * ((4 - length % 4) % 4)


def _link(kind: int, name: str | None, *, index: int = 7) -> bytes:
    body = struct.pack("=BxHiII", 0, 1, index, 0, 0) + _attr(IFLA_MTU, struct.pack("=I", 1500))
    if name is not None:
        body += _attr(IFLA_IFNAME, name.encode() + b"\0")
    return struct.pack("=IHHII", 16 + len(body), kind, 0, 0, 0) + body


def test_the_deleted_links_names_in_order() -> None:
    data = (
        _link(RTM_DELLINK, "fe1a2b3ci0")
        + _link(RTM_NEWLINK, "other")
        + _link(RTM_DELLINK, "fe1a2b3ci1")
    )
    assert deleted_links(data) == ["fe1a2b3ci0", "fe1a2b3ci1"]


def test_a_new_link_or_a_deletion_without_a_name_says_nothing() -> None:
    assert deleted_links(_link(RTM_NEWLINK, "fe1")) == []
    assert deleted_links(_link(RTM_DELLINK, None)) == []
    assert deleted_links(b"") == []


def test_a_message_longer_than_the_data_names_its_offset() -> None:
    first = _link(RTM_DELLINK, "a")
    with pytest.raises(LinkWatchDecodeError, match=f"offset {len(first)}: length"):
        deleted_links(first + _link(RTM_DELLINK, "b")[:-4])


def test_an_attribute_overrunning_its_message_names_its_offset() -> None:
    data = bytearray(_link(RTM_DELLINK, "abc"))
    struct.pack_into("=H", data, 16 + 16, 200)  # the first attribute's length
    with pytest.raises(LinkWatchDecodeError, match="attribute at offset 32: length 200"):
        deleted_links(bytes(data))


def test_a_deletion_shorter_than_its_ifinfomsg_is_refused() -> None:
    data = struct.pack("=IHHII", 20, RTM_DELLINK, 0, 0, 0) + b"\0" * 4
    with pytest.raises(LinkWatchDecodeError, match="shorter than its ifinfomsg"):
        deleted_links(data)


def test_trailing_bytes_are_refused() -> None:
    with pytest.raises(LinkWatchDecodeError, match="trailing"):
        deleted_links(_link(RTM_DELLINK, "a") + b"\0\0")


@given(st.lists(st.tuples(st.booleans(), st.from_regex(r"[a-z0-9]{1,15}", fullmatch=True))))
def test_round_trip(links: list[tuple[bool, str]]) -> None:
    data = b"".join(_link(RTM_DELLINK if gone else RTM_NEWLINK, n) for gone, n in links)
    assert deleted_links(data) == [n for gone, n in links if gone]


@given(st.binary(max_size=200))
def test_any_bytes_decode_or_raise_the_decoders_error(data: bytes) -> None:
    error = ""
    try:
        names = deleted_links(data)
    except LinkWatchDecodeError as exc:  # never IndexError, struct.error...
        names, error = [], str(exc)
    assert not error or "offset" in error
    assert all(isinstance(name, str) for name in names)


def _done() -> bytes:
    return struct.pack("=IHHIIi", 20, NLMSG_DONE, 0, 1, 0, 0)


def test_a_dump_gives_its_links_names_and_says_when_it_ends() -> None:
    part = _link(RTM_NEWLINK, "lo") + _link(RTM_NEWLINK, "fe1i0")
    assert dumped_links(part) == (["lo", "fe1i0"], False)
    assert dumped_links(_link(RTM_NEWLINK, "fe2i0") + _done()) == (["fe2i0"], True)


def test_a_dump_refused_by_the_kernel_names_the_errno() -> None:
    error = struct.pack("=IHHIIi", 36, NLMSG_ERROR, 0, 1, 0, -1) + b"\0" * 16
    with pytest.raises(LinkWatchDecodeError, match=r"NLMSG_ERROR at offset 0: .*\(1\)"):
        dumped_links(error)


def test_the_dump_request_asks_for_every_link_without_statistics() -> None:
    data = encode_dump(7)
    length, kind, flags, seq, _pid = NLMSG_HDR.unpack_from(data)
    assert (length, kind, seq) == (len(data), RTM_GETLINK, 7)
    assert flags & NLM_F_DUMP == NLM_F_DUMP
    # IFLA_EXT_MASK (29) = RTEXT_FILTER_SKIP_STATS (8), after the 16-byte ifinfomsg
    assert data[32:40] == struct.pack("=HHI", 8, 29, 8)


class _Watch:
    """A LinkWatch's face (the real one: tests/functional/instances/test_veth_revive.py)."""

    def __init__(self, netns: str | None) -> None:
        del netns
        self.queued: set[str] | None = set()

    def drain(self) -> set[str] | None:
        out, self.queued = self.queued, set()
        return out

    def close(self) -> None:
        pass


def test_a_deletion_not_yet_ours_is_looked_at_when_it_becomes_ours(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A shell's veth deleted between its plug and its arrival in the pool: the deletion,
    read before the name was ours, is kept for a few looks."""
    watches: list[_Watch] = []

    def make(netns: str | None) -> _Watch:
        watches.append(_Watch(netns))
        return watches[-1]

    present = {"a", "b"}
    monkeypatch.setattr(veths, "LinkWatch", make)
    monkeypatch.setattr(veths, "list_links", lambda netns: set(present))
    monkeypatch.setattr(veths.network, "link_exists", lambda netns, name: name in present)
    looker = veths.VethLooker()
    assert looker.missing([(None, "a")]) == set()  # the first look lists
    present.discard("b")
    watches[0].queued = {"b"}
    assert looker.missing([(None, "a")]) == set()  # b is not ours yet
    assert looker.missing([(None, "a"), (None, "b")]) == {(None, "b")}
    # a name never ours is dropped after CARRIED looks
    watches[0].queued = {"x"}
    for _ in range(veths.CARRIED + 1):  # the look that reads it, then CARRIED more
        assert looker.missing([(None, "a")]) == set()
    assert looker.missing([(None, "a"), (None, "x")]) == set()
    # an overflow lists again
    present.discard("a")
    watches[0].queued = None
    assert looker.missing([(None, "a")]) == {(None, "a")}
