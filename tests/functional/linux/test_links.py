"""``fluidedge.linux.links`` on real devices: a veth pair in a namespace of the test's own."""

from __future__ import annotations

import errno
import socket
from collections.abc import Iterator

import pytest
from pyroute2 import NetNS

from fluidedge.linux import links
from fluidedge.linux.netns import call_in_netns
from fluidedge.linux.proc import run
from tests.fixtures.netns import scratch_netns

pytestmark = pytest.mark.root


@pytest.fixture
def ns() -> Iterator[str]:
    with scratch_netns("links") as name:
        yield name


def _received(sock: socket.socket) -> int:
    """Frames ``sock`` holds (non-blocking), drained. A socket bound while its device was
    down reports that once (ENETDOWN), before its frames."""
    count = 0
    while True:
        try:
            sock.recv(2048)
        except BlockingIOError:
            return count
        except OSError as exc:
            if exc.errno != errno.ENETDOWN:
                raise
            continue
        count += 1


def test_every_frame_sent_once_ready_arrives(ns: str) -> None:
    """Repeatedly: a new pair, both ends brought up by netlink from this process, then
    :func:`wait_ready`, then 100 frames sent on one end at once. All 100 reach the other end
    every time. Without the wait, the end brought up first (whose queues wait for link-watch;
    the last one's are activated as it opens) dropped the whole burst in most pairs here."""
    kind = 0x88B5  # IEEE 802 local experimental: no frame of the kernel's own has it
    frame = b"\xff" * 6 + b"\x02" * 6 + kind.to_bytes(2, "big") + bytes(50)
    with NetNS(ns) as ipr:
        for _ in range(100):
            ipr.link("add", ifname="va", kind="veth", peer="vb")
            tx = call_in_netns(ns, lambda: socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0))
            rx = call_in_netns(
                ns, lambda: socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(kind))
            )
            try:
                tx.bind(("va", 0))
                rx.bind(("vb", kind))
                rx.setblocking(False)
                for dev in ("va", "vb"):  # the sender first: its queues wait for link-watch
                    ipr.link("set", index=ipr.link_lookup(ifname=dev)[0], state="up")
                links.wait_ready(ns, ["va", "vb"])
                for _ in range(100):
                    tx.send(frame)
                assert _received(rx) == 100
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
