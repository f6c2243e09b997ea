"""A minimal S1 segment for data-plane backends: eNB ns -- host ns (the TOF) -- SGW ns, + app ns.

Names carry a per-process prefix (other engineers run tests on this machine at the same time).
The host namespace holds ``s1enb``/``s1sgw`` (as in the lab) and ``apps`` (198.19.0.1/24)
toward the app namespace (198.19.0.10/24, default route back via .1). Frames are injected and
captured with AF_PACKET sockets opened inside the peer namespaces.
"""

from __future__ import annotations

import contextlib
import os
import select
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from fluidedge.linux import netns
from fluidedge.linux.netns import call_in_netns
from fluidedge.linux.packet import packet_socket
from fluidedge.linux.proc import run
from fluidedge.linux.sockbuf import size_buffers

MAC_ENB = bytes.fromhex("02000000e001")  # the eNB's S1 MAC
MAC_SGW = bytes.fromhex("02000000e002")  # the SGW's S1 MAC
APP_IP = "198.19.0.10"
APPS_GW = "198.19.0.1"


def _sock(ns: str, ifname: str) -> socket.socket:
    def setup(s: socket.socket) -> None:
        s.setsockopt(263, 23, 1)  # PACKET_IGNORE_OUTGOING: capture only what arrives
        size_buffers(s, receive=8 << 20)  # past a stock host's rmem_max
        s.setblocking(False)

    return call_in_netns(ns, lambda: packet_socket(ifname, setup=setup))


@dataclass
class Topo:
    prefix: str
    host: str
    enb: str
    sgw: str
    app: str
    socks: dict[str, socket.socket] = field(default_factory=dict)

    def send(self, side: str, frame: bytes) -> None:
        self.socks[side].send(frame)

    def drain(self, side: str) -> list[bytes]:
        out = []
        s = self.socks[side]
        while True:
            try:
                out.append(s.recv(65535))
            except BlockingIOError:
                return out

    def collect(
        self,
        wait: float = 0.3,
        until: Callable[[dict[str, list[bytes]]], object] | None = None,
    ) -> dict[str, list[bytes]]:
        """Everything that arrived at the eNB, SGW and app sides, after ``wait`` of quiet.

        ``until``: what the caller expects (a frame the agent forwards, say); the quiet period
        does not end the collection before it holds, so a loaded machine that delays the
        agent's re-injection past ``wait`` cannot make an expected frame "missing" (or land
        in the next collection)."""
        got: dict[str, list[bytes]] = {k: [] for k in self.socks}
        # Each arrival restarts the quiet period (a loaded machine delays the agent's
        # re-injections), up to a cap so a stream that never stops still returns.
        cap = time.monotonic() + max(10.0, 10 * wait)
        deadline = time.monotonic() + wait
        while True:
            now = time.monotonic()
            left = min(deadline, cap) - now
            if left <= 0:
                if until is None or until(got) or now >= cap:
                    return got
                left = min(0.05, cap - now)
            ready, _, _ = select.select(list(self.socks.values()), [], [], left)
            for side, s in self.socks.items():
                if s in ready:
                    got[side].extend(self.drain(side))
            if ready:
                deadline = time.monotonic() + wait


def ip(ns: str, *argv: str) -> None:
    run(["ip", "-n", ns, *argv])


@contextlib.contextmanager
def topology(tag: str = "") -> Iterator[Topo]:
    prefix = f"fp{os.getpid() % 100000}{tag}"
    t = Topo(prefix, f"{prefix}h", f"{prefix}e", f"{prefix}s", f"{prefix}a")
    try:
        for ns in (t.host, t.enb, t.sgw, t.app):
            netns.create(ns)
        ip(t.enb, "link", "add", "s1", "type", "veth", "peer", "name", "s1enb", "netns", t.host)
        ip(t.sgw, "link", "add", "s1", "type", "veth", "peer", "name", "s1sgw", "netns", t.host)
        ip(t.app, "link", "add", "eth0", "type", "veth", "peer", "name", "apps", "netns", t.host)
        ip(t.enb, "link", "set", "s1", "address", MAC_ENB.hex(":"), "up")
        ip(t.sgw, "link", "set", "s1", "address", MAC_SGW.hex(":"), "up")
        for ns, dev in ((t.enb, "s1"), (t.sgw, "s1"), (t.host, "s1enb"), (t.host, "s1sgw")):
            run(["ip", "netns", "exec", ns, "sysctl", "-qw", f"net.ipv6.conf.{dev}.disable_ipv6=1"])
            ip(ns, "link", "set", dev, "up")
            run(["ip", "netns", "exec", ns, "ethtool", "-K", dev, "tx", "off"])
        ip(t.host, "addr", "add", f"{APPS_GW}/24", "dev", "apps")
        ip(t.host, "link", "set", "apps", "address", "02:00:00:00:a0:01", "up")
        ip(t.app, "addr", "add", f"{APP_IP}/24", "dev", "eth0")
        ip(t.app, "link", "set", "eth0", "address", "02:00:00:00:a0:02", "up")
        ip(t.app, "route", "add", "default", "via", APPS_GW)
        # The app's own replies are built by the test; keep the app kernel quiet otherwise.
        run(["ip", "netns", "exec", t.app, "sysctl", "-qw", "net.ipv4.icmp_echo_ignore_all=1"])
        t.socks = {
            "enb": _sock(t.enb, "s1"),
            "sgw": _sock(t.sgw, "s1"),
            "app": _sock(t.app, "eth0"),
        }
        yield t
    finally:
        for s in t.socks.values():
            s.close()
        for ns in (t.enb, t.sgw, t.app, t.host):
            with contextlib.suppress(Exception):
                netns.delete(ns)
