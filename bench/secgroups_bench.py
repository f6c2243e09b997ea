"""Security-group figures (issue 13), nftables renderer on a Linux bridge, one invocation:

- rule change -> effect: a rule allowing the client is added to the server's group, then the
  client connects until the first SYN gets through (p50/p99 over ``--changes`` changes), and
  the removal's apply time; with 1,000 rules over 100 ports vs a baseline of 10 rules over 2
  ports measured in the same run (ratio); at 1,000 rules also through the full-recompile
  path (a fresh compile of the whole model, both tables replaced whole), the two paths
  alternating change by change (ratio full / incremental);
- throughput between two hosts (TCP, and UDP with 64-byte payloads) with filtering on vs off
  (iperf3; ratio on/off);
- rules per port: compiled clauses and nft rules for a typical port (default group) and for a
  port whose group has 100 rules;
- restore time: a fresh driver installing 1,000 rules over 100 ports (what a daemon start
  does), vs the 10-rule baseline.

Run as root: ``PYTHONPATH=src .venv/bin/python bench/secgroups_bench.py [--changes 40]``.
Everything runs in namespaces it creates (removed at the end).
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.fixtures.secgroups_net import SgLab, run

from fluidedge.secgroups.compiler import compile_program
from fluidedge.secgroups.driver import FirewallDriver, NftRenderer
from fluidedge.secgroups.model import Port, Rule, SecurityGroup, default_group
from fluidedge.secgroups.nft import Binding, render_network

GROUPS = 10
RULES_PER_GROUP = 100
PORTS = 100


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def big_groups(count: int, rules: int) -> list[SecurityGroup]:
    out = []
    for g in range(count):
        out.append(
            SecurityGroup(
                id=f"g{g}",
                rules=tuple(
                    Rule(
                        id=f"r{r}",
                        direction="ingress" if r % 4 else "egress",
                        protocol=6 if r % 2 else 17,
                        port_range_min=10000 + r,
                        port_range_max=10000 + r + (r % 7),
                        remote_ip_prefix=ipaddress.ip_network(f"10.{g + 1}.{r % 256}.0/24"),
                    )
                    for r in range(rules)
                ),
            )
        )
    return out


SRV_BASE = (Rule(id="icmp", direction="ingress", protocol=1),)
ALLOW = Rule(id="allow", direction="ingress", protocol=6, port_range_min=5001)
CLIENT = SecurityGroup(id="cli", rules=(Rule(id="out", direction="egress"),))


def setup(lab: SgLab, groups: list[SecurityGroup], fillers: int) -> None:
    lab.network("n", zone=50)
    sink = f"{lab.prefix}-sink"
    run("ip", "netns", "add", sink)
    lab.hosts_extra = sink  # type: ignore[attr-defined]
    with lab.driver.defer_apply():
        for group in [*groups, CLIENT, SecurityGroup(id="srv", rules=SRV_BASE)]:
            lab.driver.set_group(group)
        lab.host("s", "n", 2, groups=("srv", *(g.id for g in groups[:1])), tcp=(5001,))
        lab.host("c", "n", 3, groups=("cli",))
        net = lab.networks["n"]
        for i in range(fillers):
            device = f"{lab.prefix}f{i}"[-15:]
            mac = f"02:5f:00:00:{i // 256:02x}:{i % 256:02x}"
            run("ip", "-n", lab.switch, "link", "add", device, "type", "veth",
                "peer", "name", f"e{i}", "netns", sink)  # fmt: skip
            run("ip", "-n", lab.switch, "link", "set", device, "master", net.binding.bridge, "up")
            lab.driver.prepare_port_filter(
                Port(
                    id=f"f{i}",
                    device=device,
                    network="n",
                    zone=net.zone,
                    mac=mac,
                    fixed_ips=(ipaddress.ip_address(f"10.0.1.{i + 10}"),),
                    groups=(groups[i % len(groups)].id,) if groups else (),
                )
            )


def set_full(lab: SgLab, full: bool) -> None:
    """The full-recompile path (``full``) or the incremental one (the default)."""
    lab.driver.incremental = not full
    assert isinstance(lab.driver.renderer, NftRenderer)
    lab.driver.renderer.full = full


def change_latency(lab: SgLab, changes: int, full: bool = False) -> tuple[list[float], list[float]]:
    s, c = lab.hosts["s"], lab.hosts["c"]
    adds, removes = [], []
    set_full(lab, full)
    for _ in range(changes):
        t0 = time.perf_counter()
        lab.driver.update_security_group_rules("srv", (*SRV_BASE, ALLOW))
        while c.call("tcp", dst=s.v4, port=5001, timeout=0.5) != "s":
            pass
        adds.append((time.perf_counter() - t0) * 1000)
        t0 = time.perf_counter()
        lab.driver.update_security_group_rules("srv", SRV_BASE)
        removes.append((time.perf_counter() - t0) * 1000)
        if c.call("tcp", dst=s.v4, port=5001, timeout=0.3) is not False:
            raise SystemExit("removal did not take effect")
    set_full(lab, False)
    return adds, removes


def iperf(lab: SgLab, udp: bool) -> float:
    s, c = lab.hosts["s"], lab.hosts["c"]
    server = subprocess.Popen(
        ["ip", "netns", "exec", s.netns, "iperf3", "-s", "-p", "5201"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while ":5201 " not in run("ip", "netns", "exec", s.netns, "ss", "-ltn").stdout:
            if time.monotonic() > deadline:
                raise SystemExit("iperf3 server did not start")
            time.sleep(0.05)
        args = ["-u", "-l", "64", "-b", "0"] if udp else []
        done = subprocess.run(
            ["ip", "netns", "exec", c.netns, "iperf3", "-c", s.v4, "-p", "5201", "-t", "3",
             "-J", *args],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        result = json.loads(done.stdout)
        if "error" in result:
            raise SystemExit(f"iperf3: {result['error']}")
        end = result["end"]
        if udp:
            return float(end["sum"]["packets"] - end["sum"]["lost_packets"]) / float(
                end["sum"]["seconds"]
            )
        return float(end["sum_received"]["bits_per_second"])
    finally:
        server.kill()
        server.wait(timeout=30)


def restore_time(lab: SgLab) -> float:
    fresh = FirewallDriver(NftRenderer())
    # the tables exist: a restarted daemon replaces them in one transaction
    t0 = time.perf_counter()
    with fresh.defer_apply():
        fresh.bind_network(lab.networks["n"].binding)
        for group in lab.driver.groups().values():
            fresh.set_group(group)
        for port in lab.driver.ports().values():
            fresh.prepare_port_filter(port)
    return (time.perf_counter() - t0) * 1000


def per_port(groups: list[SecurityGroup]) -> str:
    port = Port(
        id="p", device="vp", network="n", zone=1, mac="02:00:00:00:00:01",
        fixed_ips=(ipaddress.ip_address("10.0.0.1"), ipaddress.ip_address("fd00::1")),
        groups=("default",),
    )  # fmt: skip
    lines = []
    for label, gs in (("default group", ("default",)), ("a 100-rule group", ("g0",))):
        p = Port(**{**port.__dict__, "groups": gs})
        prog = compile_program([p], [default_group(), *groups])
        text = render_network(prog, lab_binding(), {"vp": 1})
        rules = sum(
            1
            for line in text.splitlines()
            if line.startswith("    ") and not line.strip().startswith(("type ", "elements"))
        )
        lines.append(
            f"rules per port ({label}): {prog.rule_count()} clauses, {rules} nft rules "
            f"(both tables, incl. the port-security chains)"
        )
    return "\n".join(lines)


def lab_binding() -> Binding:

    return Binding("n", "br", None)


def scenario(
    label: str, groups: list[SecurityGroup], fillers: int, changes: int, ab: bool = False
) -> dict[str, float]:
    lab = SgLab("linuxbridge")
    try:
        setup(lab, groups, fillers)
        program = lab.driver.program
        assert program is not None
        model_rules = sum(len(g.rules) for g in lab.driver.groups().values())
        print(
            f"[{label}] {len(lab.driver.ports())} ports, {model_rules} rules, "
            f"{program.rule_count()} compiled clauses"
        )
        adds, removes, full_adds, full_removes = [], [], [], []
        for _ in range(changes):  # the two paths alternate, change by change
            a, r = change_latency(lab, 1)
            adds += a
            removes += r
            if ab:
                a, r = change_latency(lab, 1, full=True)
                full_adds += a
                full_removes += r
        print(f"[{label}] rule add -> first SYN through (ms): p50 {pct(adds, 50):.2f}  "
              f"p99 {pct(adds, 99):.2f}")  # fmt: skip
        print(f"[{label}] rule removal applied (ms):        p50 {pct(removes, 50):.2f}  "
              f"p99 {pct(removes, 99):.2f}")  # fmt: skip
        if ab:
            print(f"[{label}] full recompile + tables replaced: add p50 "
                  f"{pct(full_adds, 50):.2f}  p99 {pct(full_adds, 99):.2f}  removal p50 "
                  f"{pct(full_removes, 50):.2f}  p99 {pct(full_removes, 99):.2f}")  # fmt: skip
            print(f"[{label}] ratio full/incremental: add p50 "
                  f"{pct(full_adds, 50) / pct(adds, 50):.2f}  p99 "
                  f"{pct(full_adds, 99) / pct(adds, 99):.2f}  removal p50 "
                  f"{pct(full_removes, 50) / pct(removes, 50):.2f}")  # fmt: skip
        restores = [restore_time(lab) for _ in range(5)]
        print(f"[{label}] restore (fresh driver installs all) ms: median "
              f"{statistics.median(restores):.1f}")  # fmt: skip
        return {
            "add_p50": pct(adds, 50),
            "add_p99": pct(adds, 99),
            "rm_p50": pct(removes, 50),
            "restore": statistics.median(restores),
        }
    finally:
        if hasattr(lab, "hosts_extra"):
            run("ip", "netns", "del", lab.hosts_extra, check=False)
        lab.close()


def throughput() -> None:
    lab = SgLab("linuxbridge")
    try:
        lab.network("n", zone=51)
        with lab.driver.defer_apply():
            lab.driver.set_group(default_group())
            lab.host("s", "n", 2, groups=("default",))
            lab.host("c", "n", 3, groups=("default",))
        results = {}
        for mode in ("on", "off"):
            if mode == "off":
                with lab.driver.defer_apply():
                    for h in ("s", "c"):
                        lab.update(lab.hosts[h], groups=(), port_security=False)
            results[mode] = (iperf(lab, udp=False), iperf(lab, udp=True))
        on, off = results["on"], results["off"]
        print(f"TCP  Gbit/s: filter on {on[0] / 1e9:.2f}  off {off[0] / 1e9:.2f}  "
              f"ratio on/off {on[0] / off[0]:.2f}")  # fmt: skip
        print(f"UDP 64 B kpps: filter on {on[1] / 1e3:.1f}  off {off[1] / 1e3:.1f}  "
              f"ratio on/off {on[1] / off[1]:.2f}")  # fmt: skip
    finally:
        lab.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--changes", type=int, default=40)
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--only-throughput", action="store_true")
    args = parser.parse_args()
    if args.only_throughput:
        throughput()
        return
    base = scenario("baseline", big_groups(1, 10), 0, args.changes)
    big = scenario("1000 rules/100 ports", big_groups(GROUPS, RULES_PER_GROUP), PORTS - 2,
                   args.changes, ab=True)  # fmt: skip
    print(f"ratio 1000-rule/baseline: add p50 {big['add_p50'] / base['add_p50']:.2f}  "
          f"add p99 {big['add_p99'] / base['add_p99']:.2f}  "
          f"removal p50 {big['rm_p50'] / base['rm_p50']:.2f}  "
          f"restore {big['restore'] / base['restore']:.2f}")  # fmt: skip
    print(per_port(big_groups(1, RULES_PER_GROUP)))
    if not args.skip_throughput:
        throughput()


if __name__ == "__main__":
    main()
