"""OVN on this machine (issue 23): engine start, cross-chassis RTT, security-group change ->
effect across chassis with 1,000 rules.

    sudo .venv/bin/python bench/ovn.py [--chassis 4] [--rules 1000] [--changes 10]

One run, one OVN engine of our own (a 3-member Raft central and ``--chassis`` chassis in
namespaces, each its own ovsdb-server/ovs-vswitchd on the userspace datapath and
ovn-controller; tests/fixtures/ovn_lab.py):

1. start: the 3-member central (NB+SB Raft clusters, three northds), then each chassis in
   turn until its br-int exists (seconds per chassis, and for all); teardown at the end.
2. RTT: ping (200 x 2 ms) between two instances on the same chassis (baseline) and on two
   chassis (geneve over the underlay); ratio = cross / same.
3. security-group change -> effect: the server's group has ``--rules`` - 1 ingress TCP
   rules (ports 20000...); a change adds the ``--rules``-th, opening UDP 9999, while the
   client, on another chassis, sends a datagram every millisecond from a fresh socket;
   effect = from the call to the first datagram the server receives. ``apply`` = the
   driver's call (one ovn-nbctl transaction, ``--wait=hv``). Baseline: the same change with
   10 rules, same invocation.
   Also the time to install the whole ``--rules`` group (first apply).
"""

from __future__ import annotations

import argparse
import ipaddress
import re
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

from tests.fixtures.ovn_lab import Instance, OvnLab  # noqa: E402

from fluidedge.secgroups.compiler import PortFilter  # noqa: E402
from fluidedge.secgroups.driver import FirewallDriver  # noqa: E402
from fluidedge.secgroups.model import Port, Rule, SecurityGroup  # noqa: E402
from fluidedge.secgroups.nft import Binding  # noqa: E402
from fluidedge.secgroups.ovn_driver import OvnConntrack, OvnRenderer  # noqa: E402

SERVER = """
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", 9999))
print("ready", flush=True)
for line in sys.stdin:
    s.settimeout(0)
    try:
        while True:
            s.recvfrom(64)
    except OSError:
        pass
    print("drained", flush=True)
    s.settimeout(10)
    try:
        s.recvfrom(64)
        print(time.monotonic(), flush=True)
    except OSError:
        print("timeout", flush=True)
"""
CLIENT = """
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
end = time.monotonic() + 20
while time.monotonic() < end:
    s.sendto(b"x", (sys.argv[1], 9999))
    time.sleep(0.001)
"""


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _rtt(src: Instance, dst: str) -> float:
    src.ping(dst, count=3)  # neighbours learned
    out = src.sh("ping", "-c", "200", "-i", "0.002", "-q", dst).stdout
    match = re.search(r"= [\d.]+/([\d.]+)/", out)
    if match is None:
        raise RuntimeError(f"no rtt in {out!r}")
    return float(match.group(1))


def _lsp(port: PortFilter) -> str:
    return port.device


@dataclass
class Effect:
    install: float
    apply: list[float]
    effect: list[float]

    def line(self, label: str) -> str:
        return (
            f"sg change -> effect across chassis, {label}: install {self.install * 1e3:.0f} ms;"
            f" apply (--wait=hv) p50 {statistics.median(self.apply) * 1e3:.0f} ms"
            f" p99 {_pct(self.apply, 0.99) * 1e3:.0f} ms;"
            f" effect p50 {statistics.median(self.effect) * 1e3:.0f} ms"
            f" p99 {_pct(self.effect, 0.99) * 1e3:.0f} ms"
        )


def _effect(lab: OvnLab, rules: int, changes: int) -> Effect:
    """Install a group of ``rules - 1`` rules, then time ``changes`` additions of one more."""
    p = lab.prefix
    ls = f"{p}-sg{rules}"
    cmac, smac = "02:40:00:00:00:01", "02:40:00:00:00:02"
    cdev, sdev = f"{p}c{rules}"[-15:], f"{p}s{rules}"[-15:]
    lab.nbctl.transact(
        [["ls-add", ls], ["lsp-add", ls, cdev], ["lsp-set-addresses", cdev, cmac],
         ["lsp-add", ls, sdev], ["lsp-set-addresses", sdev, smac]]
    )  # fmt: skip
    client = lab.instance(f"c{rules}", 0, cdev, cmac, "10.50.0.1")
    server = lab.instance(f"s{rules}", 1, sdev, smac, "10.50.0.2")
    for dev in (cdev, sdev):
        lab.nbctl.run("wait-until", "Logical_Switch_Port", dev, "up=true", wait="hv")
    # the instance devices are named by the lab; the driver's device = the logical port name
    client.device, server.device = cdev, sdev
    # as a node of a site (the daemon's path: rows per node, shared remote-group sets)
    driver = FirewallDriver(OvnRenderer(lab.nbctl, _lsp, node="bench-node"), OvnConntrack())
    driver.bind_network(Binding(network="bench", bridge=ls))
    base = tuple(
        Rule(id=f"t{i}", direction="ingress", protocol=6, port_range_min=20000 + i)
        for i in range(rules - 1)
    )
    out_all = Rule(id="out", direction="egress", protocol=17)
    t0 = time.monotonic()
    with driver.defer_apply():
        driver.set_group(SecurityGroup(id="srv", rules=base))
        driver.set_group(SecurityGroup(id="cli", rules=(out_all,)))
        for inst, group in ((client, "cli"), (server, "srv")):
            driver.prepare_port_filter(
                Port(
                    id=inst.name, device=inst.device, network="bench", zone=1, mac=inst.mac,
                    fixed_ips=(ipaddress.ip_address(inst.ip),), groups=(group,),
                )
            )  # fmt: skip
    install = time.monotonic() - t0
    srv = subprocess.Popen(
        ["ip", "netns", "exec", server.netns, sys.executable, "-c", SERVER],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert srv.stdout is not None
    assert srv.stdin is not None
    assert srv.stdout.readline().strip() == "ready"
    applies: list[float] = []
    effects: list[float] = []
    udp = Rule(id="udp", direction="ingress", protocol=17, port_range_min=9999)
    try:
        for _ in range(changes):
            # a fresh client (a new source port, so no connection state from the last round)
            # sends a datagram every millisecond; they are dropped until the change
            cli = subprocess.Popen(
                ["ip", "netns", "exec", client.netns, sys.executable, "-c", CLIENT, server.ip]
            )
            try:
                time.sleep(0.05)
                srv.stdin.write("go\n")
                srv.stdin.flush()
                assert srv.stdout.readline().strip() == "drained"
                t0 = time.monotonic()
                driver.update_security_group_rules("srv", (*base, udp))
                applies.append(time.monotonic() - t0)
                got = srv.stdout.readline().strip()
                if got == "timeout":
                    raise RuntimeError("the change never took effect")
                effects.append(float(got) - t0)
            finally:
                cli.kill()
                cli.wait()
            driver.update_security_group_rules("srv", base)
    finally:
        srv.kill()
        srv.wait()
    lab.remove_instance(client.name)
    lab.remove_instance(server.name)
    driver.unbind_network("bench")
    lab.nbctl.run("ls-del", ls)
    return Effect(install, applies, effects)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--chassis", type=int, default=4)
    parser.add_argument("--rules", type=int, default=1000)
    parser.add_argument("--changes", type=int, default=10)
    args = parser.parse_args()

    t0 = time.monotonic()
    lab = OvnLab(chassis_count=0, members=3)
    central = time.monotonic() - t0
    try:
        starts = []
        for i in range(args.chassis):
            t1 = time.monotonic()
            lab.add_chassis(i)
            starts.append(time.monotonic() - t1)
        print(f"engine: 3-member central (NB+SB Raft, 3 northds) up in {central:.2f} s")
        print(
            f"engine: {args.chassis} chassis up in {sum(starts):.2f} s "
            f"(per chassis p50 {statistics.median(starts):.2f} s, max {max(starts):.2f} s)"
        )

        p = lab.prefix
        macs = {"a": "02:41:00:00:00:01", "b": "02:41:00:00:00:02", "c": "02:41:00:00:00:03"}
        commands = [["ls-add", f"{p}-rtt"]]
        for name, mac in macs.items():
            lsp = f"{p}-{name}"
            commands += [["lsp-add", f"{p}-rtt", lsp], ["lsp-set-addresses", lsp, mac]]
        lab.nbctl.transact(commands)
        a = lab.instance("a", 0, f"{p}-a", macs["a"], "10.51.0.1")
        lab.instance("b", 0, f"{p}-b", macs["b"], "10.51.0.2")
        lab.instance("c", 1, f"{p}-c", macs["c"], "10.51.0.3")
        for name in macs:
            lab.nbctl.run("wait-until", "Logical_Switch_Port", f"{p}-{name}", "up=true", wait="hv")
        same = _rtt(a, "10.51.0.2")
        cross = _rtt(a, "10.51.0.3")
        print(
            f"rtt: same chassis {same * 1000:.0f} us, across chassis (geneve) "
            f"{cross * 1000:.0f} us, ratio {cross / same:.2f}"
        )
        for name in macs:
            lab.remove_instance(name)

        small = _effect(lab, 10, args.changes)
        large = _effect(lab, args.rules, args.changes)
        print(small.line("10 rules"))
        print(large.line(f"{args.rules} rules"))
        ratio = statistics.median(large.effect) / statistics.median(small.effect)
        print(f"sg change -> effect: ratio {args.rules} / 10 rules (p50) {ratio:.2f}")
    finally:
        t2 = time.monotonic()
        lab.close()
        print(f"engine: teardown {time.monotonic() - t2:.2f} s")


if __name__ == "__main__":
    main()
