"""The TOF across hosts (issue 23): offload RTT to an app on the TOF's node and on another
node, and the UE's service gap when the app's node dies.

    sudo .venv/bin/python bench/nodes_tof.py [--pings 200]

One run, the multi-host test tier's nodes (tests/fixtures/ovn_nodes.py): a 1-member OVN
central, an etcd of our own, two daemons (A runs the TOF, userspace backend; ``[cluster]`` with
a 0.5 s heartbeat and a 2 s lease). The TOF's apps side is a host port of the ``ovn`` apps
network on A's chassis; one app (a sleeper: its kernel answers ICMP) on A, one on B, both of a
``failover = "recreate"`` template, each behind a service.

1. rtt: ``--pings`` ICMP echo requests from a UE (G-PDUs injected on A's eNB side, the
   reply G-PDU captured there), one at a time, to each service: the app on A (baseline: TOF,
   TUN, A's br-int) and the app on B (the same plus geneve both ways and B's vswitchd).
2. failover: B's host killed (daemon and chassis, SIGKILL) while the UE pings B's service
   every 100 ms: until A says B is dead, until the app runs on A, until the UE's first
   answer (the service unchanged; the app's gratuitous ARP moves A's neighbour entry).

Quote the machine's load average with the figures (printed at the start and the end).
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

from tests.fixtures.ovn_nodes import (  # noqa: E402
    TOF_GATEWAY,
    OvnNodes,
    downlink,
    echo,
    replies,
    uplink,
)

UE = ipaddress.ip_address("198.18.100.1").packed
PDN = ipaddress.ip_address("198.18.200.10").packed
SERVICES = {"local": ("198.18.50.1", "198.19.7.30"), "remote": ("198.18.50.2", "198.19.7.31")}


def load() -> str:
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def pct(values: list[float], p: int) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]


class Ue:
    def __init__(self, nodes: OvnNodes) -> None:
        assert nodes.s1 is not None
        self.s1 = nodes.s1
        self.seq = 0

    def ping(self, service: str, timeout: float) -> float | None:
        """One echo to ``service``; its RTT in s, or None if none came within ``timeout``."""
        self.seq = (self.seq + 1) & 0xFFFF
        self.s1.arrived("enb", 0)  # drop what is late
        start = time.perf_counter()
        self.s1.send("enb", uplink(echo(UE, ipaddress.ip_address(service).packed, self.seq)))
        deadline = start + timeout
        while (left := deadline - time.perf_counter()) > 0:
            for _, src, seq in replies(self.s1.arrived("enb", left)):
                if seq == self.seq and src == service:
                    return time.perf_counter() - start
        return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pings", type=int, default=200)
    args = parser.parse_args()
    print(load())
    t0 = time.monotonic()
    nodes = OvnNodes(
        count=2,
        members=1,
        cluster=True,
        cluster_settings={"heartbeat": 0.5, "ttl": 2},
        tof=0,
    )
    try:
        a, b = nodes.nodes
        print(
            f"nodes: central, etcd, 2 daemons (A with the TOF) up in {time.monotonic() - t0:.2f} s"
        )
        nodes.network(nodes.tof_network, "198.19.7.0/24")
        nodes.template("edge", nodes.tof_network, failover="recreate")
        gateway = TOF_GATEWAY.split("/")[0]
        for (name, (service, address)), node in zip(SERVICES.items(), (a, b), strict=True):
            body = {
                "name": f"app-{name}",
                "template": "edge",
                "node": node.name,
                "interfaces": {"eth0": {"addresses": [f"{address}/24"], "gateway": gateway}},
            }
            a.client().post("/v1/instances", body)
            a.client().post(
                "/service", {"name": name, "serviceIP": service, "applicationIP": address}
            )
        assert nodes.s1 is not None
        nodes.s1.send("enb", uplink(echo(UE, PDN, 1)))
        nodes.s1.send("sgw", downlink(echo(PDN, UE, 1)))
        ue = Ue(nodes)
        for service, _ in SERVICES.values():  # warm: neighbours learned, flows made
            deadline = time.monotonic() + 30
            while ue.ping(service, 1.0) is None:
                if time.monotonic() > deadline:
                    raise SystemExit(f"{service} never answered")
        rtts: dict[str, list[float]] = {}
        for name, (service, _) in SERVICES.items():
            got = [ue.ping(service, 1.0) for _ in range(args.pings)]
            rtts[name] = [r * 1000 for r in got if r is not None]
            lost = sum(1 for r in got if r is None)
            print(
                f"rtt UE -> service -> app on {'A (TOF node)' if name == 'local' else 'B'}: "
                f"p50 {statistics.median(rtts[name]):.3f} ms, p99 {pct(rtts[name], 99):.3f} ms "
                f"(n={len(rtts[name])}, lost {lost})"
            )
        ratio = statistics.median(rtts["remote"]) / statistics.median(rtts["local"])
        print(f"ratio remote / local (p50): {ratio:.2f}")

        service = SERVICES["remote"][0]
        nodes.kill_node(b)
        killed = time.monotonic()
        dead = running = answered = None
        misses = 0
        while time.monotonic() - killed < 60 and answered is None:
            if dead is None:
                states = {n["name"]: n["state"] for n in a.client().get("/v1/nodes")}
                if states.get(b.name) == "dead":
                    dead = time.monotonic() - killed
            if running is None and any(
                i["name"] == "app-remote" for i in a.client().get("/v1/instances")
            ):
                running = time.monotonic() - killed
            if ue.ping(service, 0.1) is not None:
                answered = time.monotonic() - killed
            else:
                misses += 1
        print(
            f"failover: B's host killed -> A says dead {dead or float('nan'):.2f} s -> app "
            f"running on A {running or float('nan'):.2f} s -> UE answered "
            f"{answered or float('nan'):.2f} s ({misses} pings unanswered; lease 2 s, "
            "heartbeat 0.5 s)"
        )
        b.handle.start()
    finally:
        t1 = time.monotonic()
        nodes.close()
        print(f"teardown {time.monotonic() - t1:.2f} s")
        print(load())


if __name__ == "__main__":
    main()
