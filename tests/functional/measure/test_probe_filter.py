"""The latency probe's kernel filter passes probe frames and drops the load's, on a real veth."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator

import pytest

from fluidedge.linux import netns
from fluidedge.linux.netns import call_in_netns
from fluidedge.linux.packet import ETH_P_ALL, packet_socket
from fluidedge.measure.noisyrig import udp_frame
from fluidedge.measure.probe import PROBE_IDENT_BASE, attach_probe_filter, ipv4_ident

pytestmark = pytest.mark.root


@pytest.fixture
def pair() -> Iterator[tuple[str, str]]:
    a, b = f"pfa{os.getpid() % 100000}", f"pfb{os.getpid() % 100000}"
    for ns in (a, b):
        netns.create(ns)
    try:
        subprocess.run(
            ["ip", "-n", a, "link", "add", "x0", "type", "veth", "peer", "name", "y0", "netns", b],
            check=True,
        )
        subprocess.run(["ip", "-n", a, "link", "set", "x0", "up"], check=True)
        subprocess.run(["ip", "-n", b, "link", "set", "y0", "up"], check=True)
        yield a, b
    finally:
        for ns in (a, b):
            netns.delete(ns)


def test_only_probe_frames_reach_the_filtered_socket(pair: tuple[str, str]) -> None:
    a, b = pair

    def setup(sock: socket.socket) -> None:
        attach_probe_filter(sock)
        sock.settimeout(0.2)

    def receiver() -> socket.socket:
        return packet_socket("y0", ETH_P_ALL, setup)

    def sender() -> socket.socket:
        return packet_socket("x0", 0)

    rx, tx = call_in_netns(b, receiver), call_in_netns(a, sender)
    try:
        for ident in (5, PROBE_IDENT_BASE + 1, 39999, PROBE_IDENT_BASE + 2):
            tx.send(
                udp_frame(
                    dst_mac=b"\xff" * 6,
                    src_mac=b"\x02" * 6,
                    src="10.0.0.1",
                    dst="10.0.0.2",
                    dport=9,
                    ident=ident,
                )
            )
        seen = []
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline and len(seen) < 2:
            try:
                seen.append(ipv4_ident(rx.recv(2048)))
            except TimeoutError:
                continue
        with pytest.raises(TimeoutError):  # nothing else came through
            rx.recv(2048)
    finally:
        rx.close()
        tx.close()
    assert seen == [PROBE_IDENT_BASE + 1, PROBE_IDENT_BASE + 2]
