"""The sock_diag request and reply codec (sock_diag(7), linux/inet_diag.h), on hand-built
messages; tests/functional/instances/test_sockdiag.py runs it against the kernel."""

from __future__ import annotations

import socket
import struct

import pytest

from fluidedge.instances.sockdiag import (
    SOCK_DIAG_BY_FAMILY,
    TCP_LISTEN,
    decode_listen_dump,
    encode_listen_dump,
)
from fluidedge.linux.netlink import NLM_F_DUMP, NLM_F_REQUEST, NLMSG_DONE, NLMSG_ERROR

TCP_ESTABLISHED = 1


def _msg(kind: int, seq: int, body: bytes) -> bytes:
    return struct.pack("=IHHII", 16 + len(body), kind, 2, seq, 0) + body


def _sock(state: int, port: int, family: int = socket.AF_INET) -> bytes:
    # inet_diag_msg: family, state, timer, retrans, sockid (sport, dport, src, dst, if,
    # cookie), then expires, rqueue, wqueue, uid, inode (5 x u32)
    sockid = struct.pack("!HH", port, 0) + bytes(32) + struct.pack("=III", 0, 0, 0)
    return struct.pack("=BBBB", family, state, 0, 0) + sockid + bytes(20)


def test_request_layout() -> None:
    data = encode_listen_dump(7, socket.AF_INET6)
    length, kind, flags, seq, pid = struct.unpack_from("=IHHII", data)
    assert (length, kind, flags, seq, pid) == (
        len(data),
        SOCK_DIAG_BY_FAMILY,
        NLM_F_REQUEST | NLM_F_DUMP,
        7,
        0,
    )
    assert length == 16 + 56  # nlmsghdr + inet_diag_req_v2
    family, protocol, ext, pad, states = struct.unpack_from("=BBBBI", data, 16)
    assert (family, protocol, ext, pad) == (socket.AF_INET6, socket.IPPROTO_TCP, 0, 0)
    assert states == 1 << TCP_LISTEN
    assert data[24:] == bytes(48)  # the sockid: no filter


def test_reply_ports_of_listening_sockets_of_our_sequence_only() -> None:
    data = (
        _msg(SOCK_DIAG_BY_FAMILY, 3, _sock(TCP_LISTEN, 80))
        + _msg(SOCK_DIAG_BY_FAMILY, 3, _sock(TCP_ESTABLISHED, 8080))
        + _msg(SOCK_DIAG_BY_FAMILY, 2, _sock(TCP_LISTEN, 22))  # an older request's tail
        + _msg(SOCK_DIAG_BY_FAMILY, 3, _sock(TCP_LISTEN, 443, socket.AF_INET6))
    )
    assert decode_listen_dump(data, 3) == ({80, 443}, False)
    assert decode_listen_dump(data + _msg(NLMSG_DONE, 3, struct.pack("=i", 0)), 3) == (
        {80, 443},
        True,
    )


def test_error_reply_raises_with_the_errno() -> None:
    with pytest.raises(OSError, match="error 2") as info:
        decode_listen_dump(_msg(NLMSG_ERROR, 1, struct.pack("=i", -2) + bytes(16)), 1)
    assert info.value.errno == 2


@pytest.mark.parametrize(
    "data",
    [
        struct.pack("=IHHII", 200, SOCK_DIAG_BY_FAMILY, 2, 1, 0),  # longer than the data
        _msg(SOCK_DIAG_BY_FAMILY, 1, b"\x02\x0a"),  # an inet_diag_msg cut short
    ],
    ids=["truncated", "short-body"],
)
def test_malformed_replies_say_where(data: bytes) -> None:
    with pytest.raises(ValueError, match="offset 0"):
        decode_listen_dump(data, 1)
