"""``fluidedge.linux.packet`` on real devices: two veth pairs in a namespace of the test's own,
traffic on one while a socket of the other is being set up."""

from __future__ import annotations

import errno
import socket
import time
from collections.abc import Iterator

import pytest

from fluidedge.linux import links
from fluidedge.linux.netns import call_in_netns
from fluidedge.linux.packet import ETH_P_ALL, packet_socket
from fluidedge.linux.proc import run
from tests.fixtures.netns import scratch_netns

from .frames import KIND, drained, frame

pytestmark = pytest.mark.root


@pytest.fixture
def ns() -> Iterator[str]:
    """Namespace with the pairs xa-xb and ya-yb, up and ready."""
    with scratch_netns("packet") as name:
        for p in ("x", "y"):
            run(["ip", "-n", name, "link", "add", f"{p}a", "type", "veth", "peer", "name", f"{p}b"])
            for end in ("a", "b"):
                run(["ip", "-n", name, "link", "set", f"{p}{end}", "up"])
        links.wait_ready(name, ("xa", "xb", "ya", "yb"))
        yield name


def _tags(sock: socket.socket) -> list[int]:
    """The tags of our frames ``sock`` holds, drained (non-blocking)."""
    return [f[14] for f in drained(sock) if f[12:14] == KIND.to_bytes(2, "big")]


def test_a_socket_hears_its_interface_only_from_its_creation(ns: str) -> None:
    """Frames cross ``ya``/``yb`` while ``xb``'s socket is being set up (before its bind),
    then one crosses ``xa``/``xb``: the socket holds that one only. A socket created with its
    protocol, as these were before, held the ``y`` frames too (sent and received)."""
    sender = call_in_netns(ns, lambda: packet_socket("ya", 0))
    try:

        def setup(sock: socket.socket) -> None:
            sock.setblocking(False)
            for tag in range(5):
                sender.send(frame(tag))
            time.sleep(0.05)  # the y frames have crossed both ends by now

        rx = call_in_netns(ns, lambda: packet_socket("xb", ETH_P_ALL, setup))
        tx = call_in_netns(ns, lambda: packet_socket("xa", 0))
        try:
            tx.send(frame(9))
            time.sleep(0.05)
            assert _tags(rx) == [9]
        finally:
            rx.close()
            tx.close()
    finally:
        sender.close()


def test_protocol_zero_hears_nothing_and_sends(ns: str) -> None:
    quiet = call_in_netns(ns, lambda: packet_socket("xb", 0, lambda s: s.setblocking(False)))
    listener = call_in_netns(
        ns, lambda: packet_socket("xb", ETH_P_ALL, lambda s: s.setblocking(False))
    )
    tx = call_in_netns(ns, lambda: packet_socket("xa", 0))
    try:
        tx.send(frame(7))
        time.sleep(0.05)
        assert _tags(listener) == [7]  # the frame did arrive on xb
        assert _tags(quiet) == []
    finally:
        for s in (quiet, listener, tx):
            s.close()


def test_a_failed_setup_or_bind_closes_the_socket(ns: str) -> None:
    made: list[socket.socket] = []

    def refuse(sock: socket.socket) -> None:
        made.append(sock)
        raise OSError(errno.EINVAL, "refused by the test")

    with pytest.raises(OSError, match="refused by the test"):
        call_in_netns(ns, lambda: packet_socket("xb", setup=refuse))
    with pytest.raises(OSError, match="No such device"):
        call_in_netns(ns, lambda: packet_socket("nosuch0", setup=made.append))
    assert len(made) == 2
    assert all(s.fileno() == -1 for s in made)  # closed
