"""Uplink packets/s of the TOF pipeline per kind of service, against a plain service in the
same run (the cost of MEC traffic rules' classification on the userspace data path).

    .venv/bin/python bench/tof_classified.py [--packets N] [--repeat R] [--json]

Each case sends the same ``--packets`` distinct uplink G-PDUs (one UE, varied source ports,
UDP to port 53 of the service address) through :meth:`Pipeline.from_s1`, best of ``--repeat``
rounds (the machine is shared: best-of filters out other people's load):

* ``plain``: a plain service (every packet offloaded: decapsulate, NAT, flow); the baseline
* ``classified``: a classified offload matching UDP port 53
* ``sources``: the same with a UE source prefix (one of 8, the UE's the last) and a
  source-port range: the classifier's extra work per packet
* ``forward_encapsulated`` / ``duplicate_encapsulated``: the tunnel's packet handed to the app
  in UDP (no NAT, no flow); the copy also goes on to the core
* ``drop``: a classified drop (the cheapest verdict)

Ratios are packets/s over ``plain``'s; above 1 is faster.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import platform
import time

from fluidedge.codec.net import ipv4, udp
from fluidedge.codec.stack import encapsulate_gpdu, ethernet_frame
from fluidedge.tof.config import TofConfig
from fluidedge.tof.models import (
    DROP,
    DUPLICATE_ENCAPSULATED,
    FORWARD_ENCAPSULATED,
    Match,
    Service,
)
from fluidedge.tof.pipeline import ENB, Pipeline

ENB_IP = ipaddress.IPv4Address("198.18.0.11").packed
SGW_IP = ipaddress.IPv4Address("198.18.0.21").packed
UE = ipaddress.IPv4Address("198.18.100.1").packed
SERVICE = "198.18.50.1"
APP = "198.19.0.10"
MAC_ENB, MAC_SGW = bytes.fromhex("020000000001"), bytes.fromhex("020000000002")
UDP_PROTO = 17
OTHER_PREFIXES = tuple(f"10.{i}.0.0/16" for i in range(7))


def services() -> dict[str, Service | None]:
    dns = ((53, 53),)
    return {
        "plain": Service("svc", SERVICE, APP),
        "classified": Service("svc", SERVICE, APP, match=Match((UDP_PROTO,), dns)),
        "sources": Service(
            "svc",
            SERVICE,
            APP,
            match=Match(
                (UDP_PROTO,), dns, 0, (*OTHER_PREFIXES, "198.18.100.0/24"), ((1024, 65535),)
            ),
        ),
        "forward_encapsulated": Service(
            "svc", SERVICE, APP, match=Match((UDP_PROTO,), dns), action=FORWARD_ENCAPSULATED
        ),
        "duplicate_encapsulated": Service(
            "svc", SERVICE, APP, match=Match((UDP_PROTO,), dns), action=DUPLICATE_ENCAPSULATED
        ),
        "drop": Service("svc", SERVICE, SERVICE, match=Match((UDP_PROTO,), dns), action=DROP),
    }


def frames(n: int) -> list[bytes]:
    dst = ipaddress.IPv4Address(SERVICE).packed
    out = []
    for i in range(n):
        sport = 20000 + i % 40000
        inner = ipv4.encode(UE, dst, UDP_PROTO, udp.encode(UE, dst, sport, 53, b"q" * 40))
        outer = encapsulate_gpdu(ENB_IP, SGW_IP, 0x100, inner, udp_checksum=False)
        out.append(ethernet_frame(MAC_SGW, MAC_ENB, outer))
    return out


def rate(service: Service, batch: list[bytes], repeat: int) -> float:
    best = 0.0
    for _ in range(repeat):
        p = Pipeline(TofConfig(backend="none", max_flows=len(batch) * 2))
        p.set_services({"svc": service})
        now = 1.0
        start = time.perf_counter()
        for frame in batch:
            p.from_s1(frame, ENB, now)
        elapsed = time.perf_counter() - start
        best = max(best, len(batch) / elapsed)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--packets", type=int, default=20000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    batch = frames(args.packets)
    results = {name: rate(s, batch, args.repeat) for name, s in services().items() if s}
    base = results["plain"]
    if args.json:
        print(json.dumps({k: {"pps": v, "ratio": v / base} for k, v in results.items()}))
        return
    print(
        f"# tof_classified: {os.cpu_count()} CPUs, {platform.release()}, {args.packets} "
        f"uplink packets, best of {args.repeat}, one core"
    )
    print(f"{'case':<24} {'packets/s':>12} {'/ plain':>8}")
    for name, pps in results.items():
        print(f"{name:<24} {pps:>12,.0f} {pps / base:>7.2f}x")


if __name__ == "__main__":
    main()
