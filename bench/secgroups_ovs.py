"""Security groups on Open vSwitch (the OpenFlow renderer): figures of issue 13.

    sudo .venv/bin/python bench/secgroups_ovs.py [--ports 100] [--rules 1000] [--changes 30]

One run, one private ovsdb-server/ovs-vswitchd (userspace datapath) on this machine:

1. rule change -> effect: with ``--rules`` rules over ``--ports`` ports (one group per port,
   rules spread evenly), a rule opening a UDP port on the server's group is added while a
   client sends a datagram every millisecond; the time from the call to the first datagram
   through is the effect latency (p50/p99 over ``--changes`` changes). Baseline: the same
   change with 2 ports and 1 rule each, in the same invocation (ratio = large / baseline).
   At the large size each change is also made through the full-recompile path (a fresh
   compile of the whole model, the whole table rendered and installed in one bundle), the two
   paths alternating change by change (ratio = full / incremental).
2. restore: a fresh driver installing the whole policy (one replace bundle), as at start.
3. flows per port for a typical group (default group + a web group: http, https, ssh from a
   prefix, open egress v4/v6) and the total installed.
4. throughput between two hosts, filtering off (the bridge's NORMAL flow only) vs on: iperf3
   TCP and 64-byte UDP (packets/s at the receiver), 3 s each (ratio = on / off).
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from fluidedge.linux import netns as netns_mod
from fluidedge.ovs.daemons import OvsDaemons
from fluidedge.ovs.ofctl import Ofctl
from fluidedge.ovs.vsctl import Vsctl
from fluidedge.secgroups import ovs_render
from fluidedge.secgroups.compiler import compile_program
from fluidedge.secgroups.driver import FirewallDriver
from fluidedge.secgroups.model import Port, Rule, SecurityGroup, default_group
from fluidedge.secgroups.nft import Binding
from fluidedge.secgroups.ovs_driver import OvsConntrack, OvsRenderer

PREFIX = f"bo{os.getpid() % 10000}"
ZONE = 20


def sh(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, check=check, timeout=120)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


class Bench:
    def __init__(self, root: Path) -> None:
        # The switch gets a namespace of its own (one userspace datapath per namespace).
        self.switch = f"{PREFIX}sw"
        netns_mod.create(self.switch)
        self.daemons = OvsDaemons(root, self.switch, "netdev")
        self.daemons.start()
        self.vsctl = Vsctl(self.daemons)
        self.bridge = f"{PREFIX}br"
        self.vsctl.add_bridge(self.bridge)
        self.ofctl = Ofctl(self.daemons, self.bridge)
        self.ofctl.replace(["table=0,priority=0,actions=NORMAL"])
        self.namespaces: list[str] = []
        self.devices: list[str] = []

    def host(self, index: int, with_ns: bool) -> tuple[str, str, str]:
        dev = f"{PREFIX}v{index}"
        mac = f"02:be:00:00:{index // 256:02x}:{index % 256:02x}"
        addr = str(ipaddress.ip_address("10.20.0.0") + index + 1)
        if with_ns:
            ns = f"{PREFIX}n{index}"
            netns_mod.create(ns)
            self.namespaces.append(ns)
            sh("ip", "-n", self.switch, "link", "add", dev, "type", "veth",
               "peer", "name", "eth0", "netns", ns)  # fmt: skip
            sh("ip", "-n", ns, "link", "set", "eth0", "address", mac)
            sh("ip", "netns", "exec", ns, "ethtool", "-K", "eth0", "tx", "off")
            sh("ip", "-n", ns, "addr", "add", f"{addr}/16", "dev", "eth0")
            sh("ip", "-n", ns, "link", "set", "eth0", "up")
        else:
            sh("ip", "-n", self.switch, "link", "add", dev, "type", "veth",
               "peer", "name", f"{PREFIX}p{index}")  # fmt: skip
        sh("ip", "netns", "exec", self.switch, "ethtool", "-K", dev, "tx", "off")
        sh("ip", "-n", self.switch, "link", "set", dev, "up")
        self.vsctl.add_port(self.bridge, dev, {})
        self.devices.append(dev)
        return dev, mac, addr

    def close(self) -> None:
        for ns in self.namespaces:
            netns_mod.delete(ns)
        self.daemons.destroy()
        netns_mod.delete(self.switch)


def driver_for(bench: Bench) -> FirewallDriver:
    renderer = OvsRenderer(lambda _n: bench.daemons)
    driver = FirewallDriver(renderer, OvsConntrack(lambda _n: bench.daemons))
    driver.bind_network(Binding(network="bench", bridge=bench.bridge))
    return driver


def policy(hosts: list[tuple[str, str, str]], rules: int) -> tuple[list[Port], list[SecurityGroup]]:
    per_port = max(1, rules // len(hosts))
    groups, ports = [], []
    for i, (dev, mac, addr) in enumerate(hosts):
        rs = [Rule(id="out", direction="egress")]
        for r in range(per_port - 1):
            if r % 5 == 4:  # every fifth rule names a remote group (a conjunction)
                other = f"g{(i + r) % len(hosts)}"
                rs.append(
                    Rule(
                        id=f"r{r}",
                        direction="ingress",
                        protocol=6,
                        port_range_min=1000 + r,
                        remote_group=other,
                    )
                )
            else:
                rs.append(
                    Rule(
                        id=f"r{r}",
                        direction="ingress",
                        protocol=6,
                        port_range_min=1000 + 3 * r,
                        port_range_max=1002 + 3 * r,
                    )
                )
        groups.append(SecurityGroup(id=f"g{i}", rules=tuple(rs)))
        ports.append(
            Port(
                id=f"p{i}",
                device=dev,
                network="bench",
                zone=ZONE,
                mac=mac,
                fixed_ips=(ipaddress.ip_address(addr),),
                groups=(f"g{i}",),
            )
        )
    return ports, groups


def _one_change(
    driver: FirewallDriver,
    *,
    client_ns: str,
    server_ns: str,
    server_ip: str,
    group: SecurityGroup,
    port: int,
) -> float:
    srv = netns_mod.call_in_netns(
        server_ns, lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    )
    srv.bind((server_ip, port))
    srv.settimeout(0.001)
    cli = netns_mod.call_in_netns(
        client_ns, lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    )
    got = threading.Event()
    arrived = [0.0]

    def receive() -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                srv.recv(64)
            except OSError:
                continue
            arrived[0] = time.monotonic()
            got.set()
            return

    def send() -> None:
        while not got.is_set():
            cli.sendto(b"x", (server_ip, port))
            time.sleep(0.001)

    rx = threading.Thread(target=receive)
    tx = threading.Thread(target=send)
    rx.start()
    tx.start()
    try:
        time.sleep(0.05)
        if got.is_set():
            raise SystemExit("bench: the probe passed before the rule existed")
        rule = Rule(id=f"probe{port}", direction="ingress", protocol=17, port_range_min=port)
        start = time.monotonic()
        driver.update_security_group_rules(group.id, (*group.rules, rule))
        got.wait(20)
    finally:
        got.set()
        rx.join()
        tx.join()
        srv.close()
        cli.close()
    if not arrived[0]:
        raise SystemExit("bench: the change never took effect")
    driver.update_security_group_rules(group.id, group.rules)
    return (arrived[0] - start) * 1000


def set_full(driver: FirewallDriver, full: bool) -> None:
    """The full-recompile path (``full``) or the incremental one (the default)."""
    driver.incremental = not full
    assert isinstance(driver.renderer, OvsRenderer)
    driver.renderer.full = full


def effect_latency_ab(
    driver: FirewallDriver,
    *,
    client_ns: str,
    server_ns: str,
    server_ip: str,
    group: SecurityGroup,
    changes: int,
) -> tuple[list[float], list[float]]:
    """(incremental, full) effect latencies, the paths alternating change by change."""
    inc: list[float] = []
    full: list[float] = []
    for k in range(changes):
        for mode, out in ((False, inc), (True, full)):
            set_full(driver, mode)
            out.append(
                _one_change(
                    driver,
                    client_ns=client_ns,
                    server_ns=server_ns,
                    server_ip=server_ip,
                    group=group,
                    port=40000 + k,
                )
            )
    set_full(driver, False)
    return inc, full


def effect_latency(
    driver: FirewallDriver,
    *,
    client_ns: str,
    server_ns: str,
    server_ip: str,
    group: SecurityGroup,
    changes: int,
) -> list[float]:
    """ms from update_security_group_rules() to the first datagram through, per change."""
    return [
        _one_change(
            driver,
            client_ns=client_ns,
            server_ns=server_ns,
            server_ip=server_ip,
            group=group,
            port=40000 + k,
        )
        for k in range(changes)
    ]


def iperf(client_ns: str, server_ns: str, server_ip: str, udp: bool) -> float:
    server = subprocess.Popen(
        ["ip", "netns", "exec", server_ns, "iperf3", "-s", "-1", "-p", "5201"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(0.3)
    argv = [
        "ip",
        "netns",
        "exec",
        client_ns,
        "iperf3",
        "-c",
        server_ip,
        "-p",
        "5201",
        "-t",
        "3",
        "-J",
    ]
    if udp:
        argv += ["-u", "-l", "64", "-b", "0"]
    try:
        result = json.loads(sh(*argv).stdout)
    finally:
        server.wait(timeout=30)
    end = result["end"]
    if udp:
        s = end["sum"]
        return float(s["packets"] - s["lost_packets"]) / float(s["seconds"])
    return float(end["sum_received"]["bits_per_second"]) / 1e9


def typical_flows_per_port() -> tuple[int, int]:
    web = SecurityGroup(
        id="web",
        rules=(
            Rule(id="http", direction="ingress", protocol=6, port_range_min=80),
            Rule(id="https", direction="ingress", protocol=6, port_range_min=443),
            Rule(
                id="ssh",
                direction="ingress",
                protocol=6,
                port_range_min=22,
                remote_ip_prefix=ipaddress.ip_network("192.0.2.0/24"),
            ),
        ),
    )
    ports = [
        Port(
            id=f"p{i}",
            device=f"v{i}",
            network="n",
            zone=1,
            mac=f"02:00:00:00:00:{i:02x}",
            fixed_ips=(ipaddress.ip_address(f"10.0.0.{i}"), ipaddress.ip_address(f"fd00::{i:x}")),
            groups=("default", "web"),
        )
        for i in range(1, 11)
    ]
    program = compile_program(ports, [default_group(), web])
    flows = ovs_render.render(program, {f"v{i}": i for i in range(1, 11)})
    return ovs_render.flows_per_port(flows, 1), len(flows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ports", type=int, default=100)
    parser.add_argument("--rules", type=int, default=1000)
    parser.add_argument("--changes", type=int, default=30)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="fe-bench-sgovs-"))
    bench = Bench(root / "ovs")
    try:
        client = bench.host(0, True)
        server = bench.host(1, True)
        client_ns, server_ns = bench.namespaces
        # Throughput first, filtering off (NORMAL only), then on (a typical group).
        off_tcp = iperf(client_ns, server_ns, server[2], udp=False)
        off_udp = iperf(client_ns, server_ns, server[2], udp=True)
        driver = driver_for(bench)
        ports, groups = policy([client, server], 2)
        open_all = SecurityGroup(
            id="all", rules=(Rule(id="i", direction="ingress"), Rule(id="e", direction="egress"))
        )
        with driver.defer_apply():
            driver.set_group(open_all)
            for p in ports:
                driver.prepare_port_filter(Port(**{**p.__dict__, "groups": ("all",)}))
        on_tcp = iperf(client_ns, server_ns, server[2], udp=False)
        on_udp = iperf(client_ns, server_ns, server[2], udp=True)
        # Baseline effect latency: 2 ports, 1 rule each.
        with driver.defer_apply():
            for g in groups:
                driver.set_group(g)
            for p in ports:
                driver.update_port_filter(p)
        base = effect_latency(
            driver,
            client_ns=client_ns,
            server_ns=server_ns,
            server_ip=server[2],
            group=groups[1],
            changes=args.changes,
        )
        # Large: --ports ports (2 real hosts + veths), --rules rules.
        hosts = [client, server] + [bench.host(i, False) for i in range(2, args.ports)]
        ports, groups = policy(hosts, args.rules)
        rules = sum(len(g.rules) for g in groups)
        t0 = time.monotonic()
        with driver.defer_apply():
            for g in groups:
                driver.set_group(g)
            for p in ports:
                driver.update_port_filter(p)
        first_install = time.monotonic() - t0
        large, large_full = effect_latency_ab(
            driver,
            client_ns=client_ns,
            server_ns=server_ns,
            server_ip=server[2],
            group=groups[1],
            changes=args.changes,
        )
        installed = len(bench.ofctl.dump())
        # Restore at start: a fresh driver, one replace bundle.
        fresh = driver_for(bench)
        t0 = time.monotonic()
        with fresh.defer_apply():
            for g in groups:
                fresh.set_group(g)
            for p in ports:
                fresh.prepare_port_filter(p)
        restore = time.monotonic() - t0
        per_port, typical_total = typical_flows_per_port()
        print(f"secgroups on ovs (userspace netdev datapath), {os.cpu_count()} cpus")
        print(
            f"effect latency, baseline 2 ports / 2 rules:   p50 {pct(base, 50):7.1f} ms  "
            f"p99 {pct(base, 99):7.1f} ms  (n={len(base)})"
        )
        print(
            f"effect latency, {args.ports} ports / {rules} rules: p50 {pct(large, 50):7.1f} ms  "
            f"p99 {pct(large, 99):7.1f} ms  (n={len(large)})  "
            f"ratio p50 {pct(large, 50) / pct(base, 50):.1f}x"
        )
        print(
            f"  same, full recompile + whole-table bundle:   p50 {pct(large_full, 50):7.1f} ms  "
            f"p99 {pct(large_full, 99):7.1f} ms  (n={len(large_full)})"
        )
        print(
            f"  ratio full/incremental: p50 {pct(large_full, 50) / pct(large, 50):.1f}x  "
            f"p99 {pct(large_full, 99) / pct(large, 99):.1f}x"
        )
        print(
            f"install {rules} rules ({installed} flows) {first_install:.2f} s; "
            f"restore at start (fresh driver, one bundle) {restore:.2f} s"
        )
        print(
            f"flows per port, typical group (default + web): {per_port} "
            f"({typical_total} flows for 10 such ports)"
        )
        print(
            f"TCP throughput  off {off_tcp:6.2f} Gbit/s  on {on_tcp:6.2f} Gbit/s  "
            f"ratio on/off {on_tcp / off_tcp:.2f}"
        )
        print(
            f"UDP 64 B pkt/s  off {off_udp:9.0f}  on {on_udp:9.0f}  "
            f"ratio on/off {on_udp / off_udp:.2f}"
        )
        print(f"(mean effect latency large {statistics.fmean(large):.1f} ms)")
    finally:
        bench.close()


if __name__ == "__main__":
    main()
