"""``fluidedge.linux.links`` on real devices: a veth pair in a namespace of the test's own."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
from pyroute2 import NetNS

from fluidedge.linux import links
from fluidedge.linux.netns import call_in_netns
from fluidedge.linux.packet import packet_socket
from fluidedge.linux.proc import run
from tests.fixtures.netns import scratch_netns

from .frames import KIND, drained, frame

pytestmark = pytest.mark.root


@pytest.fixture
def ns() -> Iterator[str]:
    with scratch_netns("links") as name:
        yield name


def _nonblocking(sock: socket.socket) -> None:
    sock.setblocking(False)


def test_every_frame_sent_once_ready_arrives(ns: str) -> None:
    """Repeatedly: a new pair, both ends brought up by netlink from this process, then
    :func:`wait_ready`, then 100 frames sent on one end at once. All 100 reach the other end
    every time. Without the wait, the end brought up first (whose queues wait for link-watch;
    the last one's are activated as it opens) dropped the whole burst in most pairs here."""
    with NetNS(ns) as ipr:
        for _ in range(100):
            ipr.link("add", ifname="va", kind="veth", peer="vb")
            tx = call_in_netns(ns, lambda: packet_socket("va", 0))
            rx = call_in_netns(ns, lambda: packet_socket("vb", KIND, _nonblocking))
            try:
                for dev in ("va", "vb"):  # the sender first: its queues wait for link-watch
                    ipr.link("set", index=ipr.link_lookup(ifname=dev)[0], state="up")
                links.wait_ready(ns, ["va", "vb"])
                for _ in range(100):
                    tx.send(frame())
                assert len(drained(rx)) == 100
            finally:
                tx.close()
                rx.close()
                ipr.link("del", ifname="va")


def test_a_device_without_carrier_is_named_after_the_timeout(ns: str) -> None:
    run(["ip", "-n", ns, "link", "add", "va", "type", "veth", "peer", "name", "vb"])
    run(["ip", "-n", ns, "link", "set", "va", "up"])  # the peer stays down: no carrier
    with pytest.raises(links.LinkNotReady, match=rf"va in namespace {ns}: not operationally up"):
        links.wait_ready(ns, ["va"], timeout=0.05)
    with pytest.raises(links.LinkNotReady, match=r"nosuch in namespace"):
        links.wait_ready(ns, ["nosuch"], timeout=0.01)
    run(["ip", "-n", ns, "link", "set", "vb", "up"])
    links.wait_ready(ns, ["va", "vb"])
