"""Chain labs, on our own Open vSwitch or on a Linux bridge: hosts and transparent functions
as namespaces.

The hosts are the security groups' OVS lab hosts (a namespace with ``eth0`` on the bridge). A
*function* is a namespace with two interfaces on the bridge, ``in`` and ``out``, joined by a
Linux bridge inside it: a real bump in the wire that forwards frames unchanged. What it saw
is read from AF_PACKET sockets opened on ``in`` and ``out`` (frames received there: forward
traffic arrives on ``in``, replies on ``out``), keyed by the UDP/TCP ports of each frame.

:class:`LinuxChainLab` is the same on a Linux bridge (``linuxbridge`` networks: the chains'
tc/eBPF data plane); a function's legs are plugged as the instances part plugs a template's
isolated interface there (no learning or flooding to them, a tc drop-all filter).
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import socket
import struct
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from fluidedge.chains.linuxbridge import LinuxChains
from fluidedge.chains.model import ChainState, FlowClassifier, PortChain, PortPair, PortPairGroup
from fluidedge.chains.ovs import OvsChains
from fluidedge.lab.live import interface_counters
from fluidedge.linux import netns as netns_mod
from fluidedge.linux import tc
from fluidedge.linux.packet import packet_socket
from fluidedge.linux.proc import run
from fluidedge.linux.sockbuf import size_buffers
from fluidedge.ovs.bridges import ISOLATED, isolation_vlan
from fluidedge.ovs.ofctl import Ofctl
from fluidedge.ovs.vsctl import Vsctl
from tests.fixtures.netns import snmp_counters
from tests.functional.secgroups.ovs_lab import PREFIX, Host, OvsLab

PACKET_OUTGOING = 4


def _capture_options(s: socket.socket) -> None:
    size_buffers(s, receive=4 << 20)
    s.setblocking(False)


@dataclass
class Function:
    name: str
    netns: str
    ingress: str
    egress: str
    sockets: dict[str, socket.socket] = field(default_factory=dict)

    def capture(self, *, on: bool) -> None:
        """Open (or close) the packet sockets on ``in`` and ``out``. A bench closes them while
        it times the path: every frame a socket holds is a copy the kernel makes on the
        path, and a full socket slows it down (tens of microseconds per round trip)."""
        for s in self.sockets.values():
            s.close()
        self.sockets.clear()
        if not on:
            return
        for peer in ("in", "out"):

            def make(ifname: str = peer) -> socket.socket:
                return packet_socket(ifname, setup=_capture_options)

            self.sockets[peer] = netns_mod.call_in_netns(self.netns, make)

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


def drop_counters(namespaces: list[str]) -> Counter[str]:
    """Every count of packets the kernel dropped on a lab's path, by where: each backlog's
    (``/proc/net/softnet_stat``, the whole host), each link's received and sent drops and
    errors, each namespace's UDP receive and send buffer errors. A test that loses packets
    says which of these moved: the machine's (a full queue under load) or none (the chain)."""
    counts: Counter[str] = Counter()
    for line in Path("/proc/net/softnet_stat").read_text().splitlines():
        counts["softnet backlog"] += int(line.split()[1], 16)
    for ns in namespaces:
        for name, link in interface_counters(ns).items():
            for what in ("rx_dropped", "rx_errors", "tx_dropped", "tx_errors"):
                counts[f"{ns}/{name} {what}"] += link[what]
        udp = snmp_counters(ns)["Udp"]
        for what in ("InErrors", "RcvbufErrors", "SndbufErrors"):
            counts[f"{ns} Udp{what}"] += udp.get(what, 0)
    return counts


def moved(before: Counter[str], after: Counter[str]) -> dict[str, int]:
    """The counters of :func:`drop_counters` that grew, and by how much."""
    return {k: after[k] - before[k] for k in sorted(after) if after[k] > before[k]}


class ChainLab(OvsLab):
    """:class:`OvsLab` plus transparent functions; one bridge, network ``net``."""

    driver = "ovs"

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.bridge = self.network("net")
        self.functions: dict[str, Function] = {}
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def plane(self) -> OvsChains:
        """A chains data plane on the lab's bridge (a new one: a restarted daemon's)."""
        return OvsChains(self.daemons, self.bridge)

    def function(self, name: str) -> Function:
        index = len(self.functions)
        ns = f"{PREFIX}f{index}"
        fn = Function(name, ns, f"{PREFIX}f{index}i", f"{PREFIX}f{index}o")
        self.functions[name] = fn  # first: a plug that fails half-way is still cleaned up
        self._plug_function(fn)
        return fn

    def _plug_function(self, fn: Function) -> None:
        plug_function(fn, self.switch, self.vsctl, Ofctl(self.daemons, self.bridge), "net")

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

    def made_again(self, fn: Function, number: int) -> None:
        """The function instance is made again under its id (its restart policy): the same
        device names, new veths, new OpenFlow ports (``number`` and the next: Open vSwitch
        may otherwise give a name its old number back, which would hide the change)."""
        fn.capture(on=False)
        self.unplug(fn)
        for dev in (fn.ingress, fn.egress):  # the pair goes with it, now
            run(["ip", "-n", self.switch, "link", "del", dev])
        netns_mod.delete(fn.netns)
        plug_function(
            fn, self.switch, self.vsctl, Ofctl(self.daemons, self.bridge), "net", number=number
        )

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

    def _close_functions(self) -> None:
        """Stop the echo threads, then close, unplug and delete every function."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5)
        for fn in self.functions.values():
            fn.capture(on=False)
            with contextlib.suppress(Exception):
                self.unplug(fn)
            netns_mod.delete(fn.netns)

    def close(self) -> None:
        self._close_functions()
        super().close()


class LinuxChainLab(ChainLab):
    """The same lab on a Linux bridge in the switch namespace (no Open vSwitch)."""

    driver = "linuxbridge"

    def __init__(self, root: Path) -> None:  # no switch daemons to start: no super().__init__
        self.switch = f"{PREFIX}sw"
        netns_mod.create(self.switch)
        self.bridges: dict[str, str] = {}
        self.hosts = {}
        self._servers = []
        self.bridge = self.network("net")
        self.functions = {}
        self._stop = threading.Event()
        self._threads = []

    def network(self, name: str) -> str:
        bridge = f"{PREFIX}b{len(self.bridges)}"
        run(["ip", "-n", self.switch, "link", "add", bridge, "type", "bridge"])
        run(["ip", "-n", self.switch, "link", "set", bridge, "up"])
        self.bridges[name] = bridge
        return bridge

    def _plug(self, network: str, dev: str) -> None:
        run(["ip", "-n", self.switch, "link", "set", dev, "master", self.bridges[network]])

    def plane(self) -> LinuxChains:  # type: ignore[override]
        return LinuxChains(self.switch, self.bridge)

    def _plug_function(self, fn: Function) -> None:
        plug_function_linux(fn, self.switch, self.bridge)

    def unplug(self, fn: Function) -> None:
        for dev in (fn.ingress, fn.egress):
            run(["ip", "-n", self.switch, "link", "del", dev], check=False)

    def close(self) -> None:
        self._close_functions()
        for server in self._servers:
            server.close()
        for host in self.hosts.values():
            netns_mod.delete(host.netns)
        netns_mod.delete(self.switch)


def plug_function_linux(fn: Function, switch: str, bridge: str) -> None:
    """Create ``fn``'s namespace and plug its two legs into Linux bridge ``bridge`` (in
    namespace ``switch``), isolated as the instances part plugs a function's legs."""
    netns_mod.create(fn.netns)
    for dev, peer in ((fn.ingress, "in"), (fn.egress, "out")):
        run(["ip", "-n", switch, "link", "add", dev, "type", "veth", "peer", "name", peer,
             "netns", fn.netns])  # fmt: skip
        run(["ip", "-n", switch, "link", "set", dev, "master", bridge])
        tc.isolate(switch, dev)
        run(["ip", "-n", switch, "link", "set", dev, "up"])
    bridge_function(fn)


def plug_function(  # noqa: PLR0917 (a test helper)
    fn: Function, switch: str, vsctl: Vsctl, ofctl: Ofctl, network: str, number: int | None = None
) -> None:
    """Create ``fn``'s namespace and plug its two legs into ``ofctl``'s bridge (veths in the
    switch's namespace ``switch``), a Linux bridge between them, packet sockets on both
    (``number``: the OpenFlow ports asked for the legs, ``number`` and the next)."""
    ns = fn.netns
    netns_mod.create(ns)
    for leg, (dev, peer) in enumerate(((fn.ingress, "in"), (fn.egress, "out"))):
        run(["ip", "-n", switch, "link", "add", dev, "type", "veth", "peer", "name", peer,
             "netns", ns])  # fmt: skip
        for where, ifname in ((switch, dev), (ns, peer)):
            run(["ip", "netns", "exec", where, "ethtool", "-K", ifname, "tx", "off"])
        # Isolated from the learning switch before it can forward anything, and marked so
        # (as the instances part plugs a template's isolated interface): a function bridging
        # two legs of one L2 network is a loop until its chain steers it (the chain's own
        # isolation flow has this identity and replaces it).
        ofport = vsctl.add_port(
            ofctl.bridge,
            dev,
            {"fluidedge-network": network, ISOLATED: "true"},
            number=None if number is None else number + leg,
        )
        ofctl.bundle([f"add table=0,priority=250,in_port={ofport},actions=drop"])
        vsctl.run("set", "Port", dev, f"tag={isolation_vlan(ofport)}")
        run(["ip", "-n", switch, "link", "set", dev, "up"])
    bridge_function(fn)


def bridge_function(fn: Function) -> None:
    """Inside ``fn``'s namespace: a Linux bridge joining ``in`` and ``out`` (a wire), packet
    sockets on both."""
    ns = fn.netns
    run(["ip", "netns", "exec", ns, "sysctl", "-q", "-w", "net.ipv6.conf.all.disable_ipv6=1"])
    run(["ip", "-n", ns, "link", "add", "br0", "type", "bridge"])
    for peer in ("in", "out"):
        run(["ip", "-n", ns, "link", "set", peer, "master", "br0", "up"])
        # A wire: no MAC learning, every frame goes to the other leg.
        run(["ip", "-n", ns, "link", "set", peer, "type", "bridge_slave", "learning", "off"])
    run(["ip", "-n", ns, "link", "set", "br0", "up"])
    fn.capture(on=True)


def group_state(
    lab: ChainLab,
    fns: list[Function],
    *,
    policy: str = "closed",
    protocol: int = 17,
    port: int = 7000,
    ports: int = 1,
) -> ChainState:
    """A chain ``ch`` (number 1, ``policy``) from host A to host B through one group of
    ``fns``; its classifier takes ``protocol`` to 10.0.0.2 (UDP: destination ports ``port``
    to ``port + ports - 1``)."""
    a, b = lab.hosts["net/a"], lab.hosts["net/b"]
    pairs = {f.name: PortPair(f.name, f.ingress, f.egress) for f in fns}
    udp = protocol == 17
    return ChainState(
        port_pairs=pairs,
        groups={"g": PortPairGroup("g", tuple(pairs))},
        classifiers={
            "c": FlowClassifier(
                "c",
                a.device,
                b.device,
                protocol=protocol,
                destination_ip_prefix=ipaddress.ip_network("10.0.0.2/32"),
                destination_port_range_min=port if udp else None,
                destination_port_range_max=port + ports - 1 if udp else None,
            )
        },
        chains={"ch": PortChain("ch", 1, ("g",), ("c",), failure_policy=policy)},  # type: ignore[arg-type]
    )


def owners(fns: list[Function], port: int) -> tuple[dict[int, str], dict[int, str]]:
    """Source port -> the function that saw the flow to ``port`` (forward on ``in``, replies
    on ``out``); a flow seen by two functions fails the test."""
    fwd: dict[int, str] = {}
    rev: dict[int, str] = {}
    for fn in fns:
        seen = fn.seen()
        for (sport, dport), _ in seen["in"].items():
            if dport == port:
                assert fwd.setdefault(sport, fn.name) == fn.name, f"flow {sport} on two members"
        for (sport, dport), _ in seen["out"].items():
            if sport == port:
                assert rev.setdefault(dport, fn.name) == fn.name, f"reply {dport} on two members"
    return fwd, rev


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
