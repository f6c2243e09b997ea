"""RTM_DELNEIGH encoding (rtnetlink(7)): header, ndmsg, NDA_DST padded to 4 octets."""

from __future__ import annotations

import socket
import struct

from fluidedge.instances.neigh import NDA_DST, RTM_DELNEIGH, encode_del_neigh


def test_ipv4() -> None:
    msg = encode_del_neigh(7, 12, "198.19.0.65")
    length, kind, flags, seq, pid = struct.unpack_from("=IHHII", msg)
    assert (length, kind, flags, seq, pid) == (len(msg), RTM_DELNEIGH, 0x5, 7, 0)
    family, _, _, ifindex, state, nflags, ntype = struct.unpack_from("=BBHiHBB", msg, 16)
    assert (family, ifindex, state, nflags, ntype) == (socket.AF_INET, 12, 0, 0, 0)
    assert msg[28:] == struct.pack("=HH", 8, NDA_DST) + bytes([198, 19, 0, 65])


def test_ipv6_padding() -> None:
    msg = encode_del_neigh(1, 3, "2001:db8::5")
    assert struct.unpack_from("=B", msg, 16)[0] == socket.AF_INET6
    assert struct.unpack_from("=HH", msg, 28) == (20, NDA_DST)
    assert len(msg) == 28 + 20
    assert len(msg) % 4 == 0
