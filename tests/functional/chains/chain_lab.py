"""A chain lab on our own Open vSwitch: hosts and transparent functions as namespaces.

The hosts are the security groups' OVS lab hosts (a namespace with ``eth0`` on the bridge). A
*function* is a namespace with two interfaces on the bridge, ``in`` and ``out``, joined by a
Linux bridge inside it: a real bump in the wire that forwards frames unchanged. What it saw
is read from AF_PACKET sockets opened on ``in`` and ``out`` (frames received there: forward
traffic arrives on ``in``, replies on ``out``), keyed by the UDP/TCP ports of each frame.
"""

from __future__ import annotations

import contextlib
import os
import socket
import struct
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from fluidedge.linux import netns as netns_mod
from fluidedge.linux.proc import run
from fluidedge.ovs.bridges import ISOLATED, isolation_vlan
from fluidedge.ovs.ofctl import Ofctl
from fluidedge.ovs.vsctl import Vsctl
from tests.functional.secgroups.ovs_lab import PREFIX, Host, OvsLab

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4
SO_RCVBUFFORCE = 33  # linux <asm-generic/socket.h> (root: past net.core.rmem_max)


@dataclass
class Function:
    name: str
    netns: str
    ingress: str
    egress: str
    sockets: dict[str, socket.socket] = field(default_factory=dict)

    def seen(self) -> dict[str, Counter[tuple[int, int]]]:
        """(source port, destination port) of the IPv4 TCP/UDP frames each side received
        since the last call: ``in`` (forward traffic), ``out`` (replies)."""
        out: dict[str, Counter[tuple[int, int]]] = {}
        for side, s in self.sockets.items():
            counts: Counter[tuple[int, int]] = Counter()
            while True:
                try:
                    frame, addr = s.recvfrom(2048)
                except BlockingIOError:
                    break
                if addr[2] == PACKET_OUTGOING or len(frame) < 38:
                    continue
                if frame[12:14] != b"\x08\x00" or frame[23] not in (6, 17):
                    continue
                ihl = (frame[14] & 0x0F) * 4
                sport, dport = struct.unpack("!HH", frame[14 + ihl : 18 + ihl])
                counts[(sport, dport)] += 1
            out[side] = counts
        return out


class ChainLab(OvsLab):
    """:class:`OvsLab` plus transparent functions; one bridge, network ``net``."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.bridge = self.network("net")
        self.functions: dict[str, Function] = {}
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def function(self, name: str) -> Function:
        index = len(self.functions)
        ns = f"{PREFIX}f{index}"
        fn = Function(name, ns, f"{PREFIX}f{index}i", f"{PREFIX}f{index}o")
        plug_function(fn, self.switch, self.vsctl, Ofctl(self.daemons, self.bridge), "net")
        self.functions[name] = fn
        return fn

    def prioritise(self, nice: int = -15) -> None:
        """Raise the priority of every thread of this lab's own ovs-vswitchd. WHY: the
        userspace datapath reads each port through a socket of rmem_default (a few hundred
        datagrams, ~30 ms at 10,000/s); on a loaded shared machine a descheduled vswitchd
        loses what overflows it before any flow table sees it, loss that is the machine's
        and not the chain's (measured at load 13: a plain 10,000/s stream lost hundreds of
        datagrams per run without this, mostly none with it)."""
        pid = self.daemons.pids()[1]
        if pid is None:
            raise RuntimeError("the lab's ovs-vswitchd is not running")
        for task in os.listdir(f"/proc/{pid}/task"):
            os.setpriority(os.PRIO_PROCESS, int(task), nice)

    def unplug(self, fn: Function) -> None:
        """The function instance is deleted: its ports leave the switch."""
        for dev in (fn.ingress, fn.egress):
            self.vsctl.del_port(dev)

    def udp_echo(self, host: Host, port: int) -> None:
        """A UDP echo server in ``host`` (a thread of the test process)."""
        server = self.udp_server(host, port)
        server.settimeout(0.1)

        def serve() -> None:
            while not self._stop.is_set():
                try:
                    data, peer = server.recvfrom(2048)
                except OSError:
                    continue
                with contextlib.suppress(OSError):
                    server.sendto(data, peer)

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        self._threads.append(thread)

    def udp_client(self, host: Host) -> socket.socket:
        s = self.socket_in(host, socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("0.0.0.0", 0))
        return s

    def close(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5)
        for fn in self.functions.values():
            for s in fn.sockets.values():
                s.close()
            with contextlib.suppress(Exception):
                self.unplug(fn)
            netns_mod.delete(fn.netns)
        super().close()


def plug_function(fn: Function, switch: str, vsctl: Vsctl, ofctl: Ofctl, network: str) -> None:
    """Create ``fn``'s namespace and plug its two legs into ``ofctl``'s bridge (veths in the
    switch's namespace ``switch``), a Linux bridge between them, packet sockets on both."""
    ns = fn.netns
    netns_mod.create(ns)
    for dev, peer in ((fn.ingress, "in"), (fn.egress, "out")):
        run(["ip", "-n", switch, "link", "add", dev, "type", "veth", "peer", "name", peer,
             "netns", ns])  # fmt: skip
        for where, ifname in ((switch, dev), (ns, peer)):
            run(["ip", "netns", "exec", where, "ethtool", "-K", ifname, "tx", "off"])
        # Isolated from the learning switch before it can forward anything, and marked so
        # (as the instances part plugs a template's isolated interface): a function bridging
        # two legs of one L2 network is a loop until its chain steers it (the chain's own
        # isolation flow has this identity and replaces it).
        ofport = vsctl.add_port(ofctl.bridge, dev, {"fluidedge-network": network, ISOLATED: "true"})
        ofctl.bundle([f"add table=0,priority=250,in_port={ofport},actions=drop"])
        vsctl.run("set", "Port", dev, f"tag={isolation_vlan(ofport)}")
        run(["ip", "-n", switch, "link", "set", dev, "up"])
    run(["ip", "netns", "exec", ns, "sysctl", "-q", "-w", "net.ipv6.conf.all.disable_ipv6=1"])
    run(["ip", "-n", ns, "link", "add", "br0", "type", "bridge"])
    for peer in ("in", "out"):
        run(["ip", "-n", ns, "link", "set", peer, "master", "br0", "up"])
        # A wire: no MAC learning, every frame goes to the other leg.
        run(["ip", "-n", ns, "link", "set", peer, "type", "bridge_slave", "learning", "off"])
    run(["ip", "-n", ns, "link", "set", "br0", "up"])
    for peer in ("in", "out"):

        def make(ifname: str = peer) -> socket.socket:
            s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
            s.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 4 << 20)
            s.bind((ifname, 0))
            s.setblocking(False)
            return s

        fn.sockets[peer] = netns_mod.call_in_netns(ns, make)


def echo(client: socket.socket, dst: tuple[str, int], timeout: float = 5.0) -> bool:
    """One datagram out and its echo back (resent every 0.3 s until ``timeout``)."""
    token = os.urandom(8)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        client.sendto(token, dst)
        client.settimeout(0.3)
        try:
            while True:
                if client.recv(64) == token:
                    return True
        except OSError:
            continue
    return False
