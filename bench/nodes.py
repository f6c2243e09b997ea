"""fluidedge nodes joined by OVN and etcd (issue 23): cross-node instance creation, failover.

    sudo .venv/bin/python bench/nodes.py [--runs 20] [--members 1]

One run, the multi-host test tier's nodes (tests/fixtures/ovn_nodes.py): an OVN central
(``--members`` 1 or 3), an etcd of our own, two daemons (nodes A and B, each its own state
directory, chassis in its own namespace, ``[cluster]`` with a 0.5 s heartbeat and a 2 s
lease). One ``ovn`` network on both nodes; a probe instance on A.

1. create: ``--runs`` times, a creation sent to A's API for an instance on A (``node`` = A:
   the baseline, no forwarding) and one for an instance on B (``node`` = B: A forwards it to
   B's API). ``running`` = the POST until its 201 (the instance's process runs, its port is
   plugged); ``reachable`` = the POST until A's probe gets a ping answer from the new
   instance (``ping -c 1 -W 0.2`` in a loop: the port bound on its chassis, the flows on
   both, geneve for B's). Cold creations (no pool). Each instance is deleted before the next.
2. failover: an instance of a ``failover = "recreate"`` template on B, then B's host killed
   (its daemon and chassis, SIGKILL): until A's ``GET /v1/nodes`` says B is dead (the lease,
   2 s, plus a heartbeat), until the instance runs on A (A's next heartbeat claims and
   creates it), until it answers A's probe at its address (the probe's ARP entry still had
   the old MAC: the re-created instance's gratuitous ARP updates it).

Quote the machine's load average with the figures (printed at the start and the end).
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

from fluidedge.core.client import Client  # noqa: E402


def load() -> str:
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def pct(values: list[float], p: int) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]


def ping(pid: int, dst: str) -> bool:
    done = subprocess.run(
        ["nsenter", "-t", str(pid), "-n", "ping", "-c", "1", "-W", "0.2", "-q", dst],
        capture_output=True, timeout=30, check=False,
    )  # fmt: skip
    return done.returncode == 0


def timed_create(client: Client, probe: int, name: str, node: str, ip: str) -> tuple[float, float]:
    body = {
        "name": name,
        "template": "sleeper",
        "node": node,
        "interfaces": {"eth0": {"addresses": [f"{ip}/16"]}},
    }
    start = time.perf_counter()
    made = client.post("/v1/instances", body)
    running = time.perf_counter() - start
    if made["state"] != "running":
        raise RuntimeError(f"{name}: {made}")
    deadline = start + 30
    while not ping(probe, ip):
        if time.perf_counter() > deadline:
            raise RuntimeError(f"{name} ({ip}) not reachable from A's probe in 30 s")
    return running, time.perf_counter() - start


def line(label: str, values: list[float]) -> str:
    ms = [v * 1000 for v in values]
    return f"{label}: p50 {pct(ms, 50):.0f} ms, p99 {pct(ms, 99):.0f} ms (n={len(ms)})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--members", type=int, choices=(1, 3), default=1)
    args = parser.parse_args()
    print(f"start: {load()}")
    t0 = time.perf_counter()
    nodes = OvnNodes(
        count=2,
        members=args.members,
        cluster=True,
        cluster_settings={"heartbeat": 0.5, "ttl": 2},
    )
    print(f"nodes: central ({args.members} member), etcd, 2 daemons up in "
          f"{time.perf_counter() - t0:.2f} s")  # fmt: skip
    try:
        a, b = nodes.nodes
        net = f"{nodes.prefix}-k"[-15:]
        nodes.network(net, "10.64.0.0/16")
        nodes.template("sleeper", net)
        client = a.client()
        probe = client.post(
            "/v1/instances",
            {
                "name": "probe",
                "template": "sleeper",
                "node": a.name,
                "interfaces": {"eth0": {"addresses": ["10.64.0.2/16"]}},
            },
        )
        results: dict[str, tuple[list[float], list[float]]] = {"local": ([], []), "cross": ([], [])}
        for i in range(args.runs):
            for kind, node, owner in (("local", a, a), ("cross", b, b)):
                name = f"{kind[0]}{i}"
                ip = f"10.64.{1 if kind == 'local' else 2}.{i + 1}"
                running, reachable = timed_create(client, probe["pid"], name, node.name, ip)
                results[kind][0].append(running)
                results[kind][1].append(reachable)
                owner.client().delete(f"/v1/instances/{name}")
        for kind, label in (
            ("local", "on A via A (baseline)"),
            ("cross", "on B via A (forwarded)"),
        ):
            to_running, to_reachable = results[kind]
            print(line(f"create {label}: API -> running", to_running))
            print(line(f"create {label}: API -> reachable from A", to_reachable))
        for which in (0, 1):
            ratio = statistics.median(results["cross"][which]) / statistics.median(
                results["local"][which]
            )
            print(f"ratio cross / local, {('running', 'reachable')[which]} (p50): {ratio:.2f}")
        # failover: an instance of a failover = "recreate" template on B; B's host dies
        nodes.template("keeper", net, failover="recreate")
        survivor_ip = "10.64.3.1"
        client.post(
            "/v1/instances",
            {
                "name": "survivor",
                "template": "keeper",
                "node": b.name,
                "interfaces": {"eth0": {"addresses": [f"{survivor_ip}/16"]}},
            },
        )
        time.sleep(2)  # recorded for failover at B's next heartbeat
        if not ping(probe["pid"], survivor_ip):
            raise RuntimeError("survivor not reachable before the kill")
        killed = time.perf_counter()
        nodes.kill_node(b)
        dead = recreated = answering = 0.0
        deadline = killed + 60
        while not answering:
            if time.perf_counter() > deadline:
                raise RuntimeError("no failover within 60 s")
            now = time.perf_counter() - killed
            if not dead and client.get(f"/v1/nodes/{b.name}")["state"] == "dead":
                dead = now
            if dead and not recreated:
                names = [i["name"] for i in client.get("/v1/instances")]
                recreated = now if "survivor" in names else 0.0
            # no ARP flush: the re-created instance's gratuitous ARP updates the probe
            if recreated and ping(probe["pid"], survivor_ip):
                answering = time.perf_counter() - killed
            time.sleep(0.02)
        print(
            f"failover: B's host killed -> A says dead {dead:.2f} s -> survivor running on A "
            f"{recreated:.2f} s -> answering at its address {answering:.2f} s "
            "(lease 2 s, heartbeat 0.5 s)"
        )
    finally:
        nodes.close()
    print(f"end: {load()}")


if __name__ == "__main__":
    main()
