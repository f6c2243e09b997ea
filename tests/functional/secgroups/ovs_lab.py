"""A lab on our own Open vSwitch: namespaces as hosts, one bridge per network, real sockets.

Each host is a network namespace with ``eth0``, a veth whose other end is a port of its
network's bridge (TX checksum offload off on both ends, as the userspace datapath needs).
Sockets are opened inside the namespaces from the test process itself
(:func:`fluidedge.linux.netns.call_in_netns`), so a traffic matrix costs no process per cell.
Names carry the test process's pid; :meth:`OvsLab.close` removes every namespace, veth,
bridge and the switch.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from fluidedge.linux import netns as netns_mod
from fluidedge.linux.proc import run
from fluidedge.ovs.daemons import OvsDaemons
from fluidedge.ovs.ofctl import Ofctl
from fluidedge.ovs.vsctl import Vsctl
from tests.fixtures.ovs_datapath import DATAPATH

PREFIX = f"so{os.getpid() % 100000}"


@dataclass
class Host:
    name: str
    netns: str
    device: str
    network: str
    mac: str
    addresses: list[str] = field(default_factory=list)

    @property
    def ip4(self) -> str:
        return next(a for a in self.addresses if ":" not in a).split("/")[0]

    @property
    def ip6(self) -> str:
        return next(a for a in self.addresses if ":" in a).split("/")[0]


class OvsLab:
    def __init__(self, root: Path, datapath: str = DATAPATH) -> None:
        # The switch runs in a namespace of its own: one userspace datapath per namespace.
        self.switch = f"{PREFIX}sw"
        netns_mod.create(self.switch)
        self.daemons = OvsDaemons(root / "ovs", self.switch, datapath)
        self.daemons.start()
        self.vsctl = Vsctl(self.daemons)
        self.bridges: dict[str, str] = {}
        self.hosts: dict[str, Host] = {}
        self._servers: list[socket.socket] = []

    def network(self, name: str) -> str:
        bridge = f"{PREFIX}b{len(self.bridges)}"
        self.vsctl.add_bridge(bridge, {"fluidedge-network": name})
        Ofctl(self.daemons, bridge).bundle(["add table=0,priority=0,actions=NORMAL"])
        self.bridges[name] = bridge
        return bridge

    def host(self, name: str, network: str, mac: str, *addresses: str) -> Host:
        index = len(self.hosts)
        name_key = f"{network}/{name}"
        ns = f"{PREFIX}n{index}"
        dev = f"{PREFIX}v{index}"
        netns_mod.create(ns)
        sw = self.switch
        run(
            [
                "ip",
                "-n",
                sw,
                "link",
                "add",
                dev,
                "type",
                "veth",
                "peer",
                "name",
                "eth0",
                "netns",
                ns,
            ]
        )
        run(["ip", "-n", ns, "link", "set", "eth0", "address", mac])
        for where, ifname in ((sw, dev), (ns, "eth0")):
            run(["ip", "netns", "exec", where, "ethtool", "-K", ifname, "tx", "off"])
        for address in addresses:
            extra = ["nodad"] if ":" in address else []
            run(["ip", "-n", ns, "addr", "add", address, "dev", "eth0", *extra])
        run(["ip", "-n", ns, "link", "set", "eth0", "up"])
        run(["ip", "-n", sw, "link", "set", dev, "up"])
        self._plug(network, dev)
        host = Host(name, ns, dev, network, mac, list(addresses))
        self.hosts[name_key] = host
        return host

    def _plug(self, network: str, dev: str) -> None:
        """Make host end ``dev`` a port of ``network``'s bridge."""
        self.vsctl.add_port(self.bridges[network], dev, {"fluidedge-network": network})

    # ------------------------------------------------------------------ traffic
    def sh(self, host: Host, *argv: str, timeout: float = 15.0) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["ip", "netns", "exec", host.netns, *argv],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def tcp_server(self, host: Host, port: int, family: int = socket.AF_INET) -> socket.socket:
        def make() -> socket.socket:
            s = socket.socket(family, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            s.bind(("::" if family == socket.AF_INET6 else "0.0.0.0", port))
            s.listen(64)
            return s

        server = netns_mod.call_in_netns(host.netns, make)
        self._servers.append(server)
        return server

    def udp_server(self, host: Host, port: int, family: int = socket.AF_INET) -> socket.socket:
        def make() -> socket.socket:
            s = socket.socket(family, socket.SOCK_DGRAM)
            s.bind(("::" if family == socket.AF_INET6 else "0.0.0.0", port))
            return s

        server = netns_mod.call_in_netns(host.netns, make)
        self._servers.append(server)
        return server

    def socket_in(self, host: Host, family: int, kind: int) -> socket.socket:
        return netns_mod.call_in_netns(host.netns, lambda: socket.socket(family, kind))

    def tcp_connects(self, src: Host, dst_ip: str, port: int, timeout: float) -> bool:
        family = socket.AF_INET6 if ":" in dst_ip else socket.AF_INET
        s = self.socket_in(src, family, socket.SOCK_STREAM)
        s.settimeout(timeout)
        try:
            s.connect((dst_ip, port))
            return True
        except OSError:
            return False
        finally:
            s.close()

    def udp_reaches(
        self, src: Host, server: socket.socket, dst_ip: str, port: int, timeout: float
    ) -> bool:
        family = socket.AF_INET6 if ":" in dst_ip else socket.AF_INET
        s = self.socket_in(src, family, socket.SOCK_DGRAM)
        token = os.urandom(8)
        server.settimeout(0.05)
        with contextlib.suppress(OSError):
            while server.recv(64):  # stale datagrams of earlier cells
                pass
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                s.sendto(token, (dst_ip, port))
                server.settimeout(0.3)
                try:
                    while True:
                        if server.recv(64) == token:
                            return True
                except OSError:
                    continue
            return False
        finally:
            s.close()

    def pings(self, src: Host, dst_ip: str, timeout: float) -> bool:
        tries = max(1, int(timeout))
        for _ in range(tries):
            if self.sh(src, "ping", "-c", "1", "-W", "1", dst_ip).returncode == 0:
                return True
        return False

    def close(self) -> None:
        for server in self._servers:
            server.close()
        for host in self.hosts.values():
            with contextlib.suppress(Exception):
                self.vsctl.del_port(host.device)
            netns_mod.delete(host.netns)
        self.daemons.destroy()
        netns_mod.delete(self.switch)
