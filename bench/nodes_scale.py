"""How many fluidedge nodes (and instances) one machine holds in the multi-host test tier.

    sudo .venv/bin/python bench/nodes_scale.py [--nodes 4] [--instances 10]

One run: an OVN central (1 member), an etcd, ``--nodes`` daemons as nodes
(tests/fixtures/ovn_nodes.py: each its own daemon, state directory and chassis in a
namespace), one ``ovn`` network on all; ``--instances`` sleeping instances per node, all
created through node 0's API with ``spread`` placement (so node 0 forwards the others').
Prints: the time to bring the nodes up, how placement spread the instances, the memory (RSS)
of each kind of process — central, etcd, a node's daemon, its chassis (ovsdb-server,
ovs-vswitchd, ovn-controller), an instance — and what that makes per node; and a
reachability sample (node 0's first instance pings one instance on every node).
Quote the load average with the figures.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

from tests.fixtures.ovn_nodes import OvnNodes  # noqa: E402


def load() -> str:
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def rss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def pids_with(fragment: str) -> list[int]:
    """Processes whose command line names ``fragment`` (a directory of this run)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if fragment in cmdline:
                found.append(int(entry.name))
    return found


def ns_pids(netns: str) -> list[int]:
    out = subprocess.run(
        ["ip", "netns", "pids", netns], capture_output=True, text=True, check=False
    ).stdout
    return [int(p) for p in out.split()]


def ping(pid: int, dst: str) -> bool:
    done = subprocess.run(
        ["nsenter", "-t", str(pid), "-n", "ping", "-c", "3", "-W", "1", "-i", "0.2", "-q", dst],
        capture_output=True, timeout=30, check=False,
    )  # fmt: skip
    return done.returncode == 0


def mb(kb: float) -> str:
    return f"{kb / 1024:.1f} MB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=4)
    parser.add_argument("--instances", type=int, default=10)
    args = parser.parse_args()
    print(f"start: {load()}")
    t0 = time.perf_counter()
    nodes = OvnNodes(
        count=args.nodes,
        members=1,
        cluster=True,
        cluster_settings={"heartbeat": 0.5, "ttl": 2},
    )
    up = time.perf_counter() - t0
    print(f"{args.nodes} nodes (central, etcd, daemons) up in {up:.2f} s")
    try:
        net = f"{nodes.prefix}-s"[-15:]
        t1 = time.perf_counter()
        nodes.network(net, "10.65.0.0/16")  # starts every node's chassis
        print(f"ovn network on every node (chassis started): {time.perf_counter() - t1:.2f} s")
        nodes.template("sleeper", net)
        time.sleep(1.5)  # every node's view has every node
        client = nodes.nodes[0].client()
        times = []
        for i in range(args.instances * args.nodes):
            body = {
                "name": f"s{i}",
                "template": "sleeper",
                "interfaces": {"eth0": {"addresses": [f"10.65.{i // 250}.{i % 250 + 2}/16"]}},
            }
            t = time.perf_counter()
            made = client.post("/v1/instances", body)
            times.append(time.perf_counter() - t)
            if made["state"] != "running":
                raise RuntimeError(f"s{i}: {made}")
            # two heartbeats: the owner re-puts its record, node 0 reads it back; placement
            # over a view older than that may pick the same node twice
            time.sleep(1.1)
        # where they went: each node's own list
        per_node = {}
        for node in nodes.nodes:
            per_node[node.name] = list(node.client().get("/v1/instances"))
        counts = sorted(len(v) for v in per_node.values())
        print(
            f"{args.instances * args.nodes} instances through node 0 (spread): per node "
            f"{counts}; create p50 {statistics.median(times) * 1000:.0f} ms, "
            f"max {max(times) * 1000:.0f} ms"
        )
        central = sum(rss_kb(p) for p in pids_with(str(nodes.lab.root)))
        etcd = sum(rss_kb(p) for p in pids_with(str(nodes.root / "etcd-")))
        daemons, chassis, instances = [], [], []
        for node in nodes.nodes:
            assert node.handle.process is not None
            daemons.append(rss_kb(node.handle.process.pid))
            chassis.append(sum(rss_kb(p) for p in ns_pids(node.netns)))
            instances += [rss_kb(i["pid"]) for i in per_node[node.name] if i["pid"]]
        per_node_kb = statistics.mean(daemons) + statistics.mean(chassis)
        per_instance = statistics.mean(instances) if instances else 0.0
        print(f"rss: central {mb(central)}, etcd {mb(etcd)}")
        print(
            f"rss per node: daemon {mb(statistics.mean(daemons))}, chassis "
            f"{mb(statistics.mean(chassis))} -> {mb(per_node_kb)}; per instance "
            f"{mb(per_instance)}"
        )
        total = central + etcd + sum(daemons) + sum(chassis) + sum(instances)
        print(f"rss total: {mb(total)} for {args.nodes} nodes and {len(instances)} instances")
        probe = per_node[nodes.nodes[0].name][0]
        reached = sum(
            ping(probe["pid"], per_node[n.name][0]["interfaces"][0]["addresses"][0].split("/")[0])
            for n in nodes.nodes
            if per_node[n.name]
        )
        print(f"reachability: node 0's instance reaches {reached} of {args.nodes} nodes' first")
    finally:
        t2 = time.perf_counter()
        nodes.close()
        print(f"teardown {time.perf_counter() - t2:.2f} s")
    print(f"end: {load()}")


if __name__ == "__main__":
    main()
