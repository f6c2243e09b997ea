"""TOF eBPF fast path vs the userspace reference vs plain kernel forwarding, in one run.

    .venv/bin/python bench/tof_fastpath.py [--quick] [--json]

Modes (each on its own lab, same machine, same frames, same invocation):

* ``kernel``: the lab in "routed" mode: the host namespace IP-forwards S1 (the baseline).
* ``userspace``: the lab in "tof" mode, the reference backend (AF_PACKET + TUN, Python per
  packet) running in this process.
* ``fastpath``: the lab in "tof" mode, :class:`fluidedge.tof.fastpath.backend.FastPathBackend`.

Throughput uses the lab's generator (trafgen replaying uplink G-PDUs of every bearer from the
eNB side): pass-through pps is what arrives at the SGWs; offloaded pps replays the same frames
addressed to a registered service and counts arrivals at the edge app. Sizes 64 (raised to the
smallest G-PDU, 82 B), 256, 1024, 1518 and the lab's iMIX. Latency is UE ping RTT p50/p99 to
the PDN (pass-through) and to the service IP (offloaded both ways), through the lab's eNB/SGW
emulators; "added" is the difference to the kernel run's RTT to the PDN. The machine has 2
cores (trafgen takes one) and is shared: the figures are what this run measured.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from ipaddress import IPv4Address
from pathlib import Path
from typing import Protocol

from fluidedge.lab.config import default_text, loads
from fluidedge.lab.gen import IMIX_SEQUENCE, WARM_UP, Generator, gpdu_frame
from fluidedge.lab.lab import Lab
from fluidedge.lab.live import interface_counters
from fluidedge.lab.packets import write_pcap
from fluidedge.tof.config import TofConfig
from fluidedge.tof.launch import lab_tof_section
from fluidedge.tof.models import Service

SERVICE_IP = "198.18.50.1"
_RTT = re.compile(r"time=([0-9.]+) ms")


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def ping_rtts(lab: Lab, ue: str, target: str, count: int) -> list[float]:
    argv = ["ping", "-c", str(count), "-i", "0.01", "-W", "1", "-s", "56", target]
    return [float(m) for m in _RTT.findall(lab.run(ue, argv, timeout=120).stdout)]


def offload_rate(lab: Lab, gen: Generator, pcap: Path, duration: float) -> float:
    """Replay ``pcap`` (G-PDUs to the service); the arrival rate at the edge app's interface."""
    app_ns = lab.ns(next(iter(lab.apps)))
    argv = lab.argv("ran", gen._tool_argv(pcap, None, "trafgen"))
    proc = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        time.sleep(WARM_UP + 0.5)  # + flow learning
        r0 = interface_counters(app_ns, ["eth0"])["eth0"]["rx_packets"]
        t0 = time.monotonic()
        time.sleep(duration)
        r1 = interface_counters(app_ns, ["eth0"])["eth0"]["rx_packets"]
        t1 = time.monotonic()
    finally:
        for sig in (signal.SIGINT, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)
            try:
                proc.wait(timeout=3)
                break
            except subprocess.TimeoutExpired:
                continue
    return (r1 - r0) / (t1 - t0)


class _Backend(Protocol):
    def start(self) -> None: ...
    def stop(self) -> None: ...
    def apply(self, services: dict[str, Service]) -> None: ...
    def stats(self) -> dict[str, object]: ...


def _userspace(config: TofConfig) -> _Backend:
    from fluidedge.tof.userspace import UserspaceBackend

    return UserspaceBackend(config)


def _fastpath(config: TofConfig) -> _Backend:
    from fluidedge.tof.fastpath.backend import FastPathBackend

    return FastPathBackend(config)


BACKENDS: dict[str, Callable[[TofConfig], _Backend]] = {
    "userspace": _userspace,
    "fastpath": _fastpath,
}


@dataclass
class Run:
    mode: str
    results: dict[str, float] = field(default_factory=dict)


def measure(mode: str, prefix: str, args: argparse.Namespace) -> Run:
    lab = Lab.up(loads(default_text()), prefix=prefix, mode="routed" if mode == "kernel" else "tof")
    backend: _Backend | None = None
    run = Run(mode)
    try:
        if mode != "kernel":
            section = lab_tof_section(lab, idle_timeout=600)
            backend = BACKENDS[mode](TofConfig(**section))  # type: ignore[arg-type]
            backend.start()
            app = str(next(iter(lab.apps.values())))
            backend.apply({"bench": Service("bench", SERVICE_IP, app)})
        pdn = str(lab.pdn_address)
        for ue in lab.ues:  # warm the path: ARP, tunnel learning
            lab.run(ue, ["ping", "-c", "2", "-i", "0.1", "-W", "1", pdn])
        rtts = ping_rtts(lab, "ue1", pdn, args.pings)
        run.results["rtt_pdn_p50_ms"] = _percentile(rtts, 0.5)
        run.results["rtt_pdn_p99_ms"] = _percentile(rtts, 0.99)
        if mode != "kernel":
            lab.run("ue1", ["ping", "-c", "2", "-i", "0.1", "-W", "1", SERVICE_IP])
            rtts = ping_rtts(lab, "ue1", SERVICE_IP, args.pings)
            run.results["rtt_service_p50_ms"] = _percentile(rtts, 0.5)
            run.results["rtt_service_p99_ms"] = _percentile(rtts, 0.99)
        gen = Generator(lab)
        streams = {s.name: s for s in gen.write_streams()}
        for size in args.sizes:
            offer = gen.offer(streams[f"plain-{size}"].pcap, duration=args.duration)
            run.results[f"pass_{size}_pps"] = offer.pps
            sizes: tuple[int, ...] = IMIX_SEQUENCE
            if size != "imix":
                sizes = (int(size),)
            frames = [
                gpdu_frame(
                    b,
                    size=s,
                    dst_mac=gen.dst_macs[b.sgw],
                    src_mac=gen.src_mac,
                    inner_dst=IPv4Address(SERVICE_IP),
                    psc=False,
                    ident=i,
                )
                for i in range(4)
                for s in sizes
                for b in lab.bearers
            ]
            pcap = lab.run_dir / f"offload-{size}.pcap"
            write_pcap(pcap, frames)
            if mode == "kernel":
                # The kernel baseline for offload is the kernel forwarding the same frames.
                run.results[f"offload_{size}_pps"] = gen.offer(pcap, duration=args.duration).pps
            else:
                run.results[f"offload_{size}_pps"] = offload_rate(lab, gen, pcap, args.duration)
        if backend is not None:
            stats = backend.stats()
            drops = stats.get("drops")
            run.results["drops"] = float(sum(drops.values())) if isinstance(drops, dict) else 0.0
            fast = stats.get("fastpath")
            if isinstance(fast, dict):
                run.results["punted"] = float(
                    fast.get("punted_from_enb", 0) + fast.get("punted_from_sgw", 0)
                )
                run.results["punt_rate_limited"] = float(fast.get("punt_rate_limited", 0))
    finally:
        if backend is not None:
            backend.stop()
        lab.down()
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="short offers, two frame sizes")
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
    parser.add_argument("--modes", default="kernel,userspace,fastpath")
    args = parser.parse_args()
    args.duration = 1.5 if args.quick else 3.0
    args.sizes = ("64", "1024") if args.quick else ("64", "256", "1024", "1518", "imix")
    args.pings = 100 if args.quick else 300
    modes = tuple(args.modes.split(","))
    base = f"fb{os.getpid() % 100000}"
    runs = {m: measure(m, f"{base}{m[0]}", args) for m in modes}
    if args.json:
        print(json.dumps({m: r.results for m, r in runs.items()}, indent=2))
        return
    kernel = runs["kernel"].results if "kernel" in runs else {}
    user = runs["userspace"].results if "userspace" in runs else {}
    print(f"\nTOF fast path vs userspace reference vs kernel forwarding ({time.ctime()})\n")
    head = f"{'metric':<22}" + "".join(f"{m:>12}" for m in modes)
    print(head + f"{'fast/kernel':>13}{'fast/user':>11}")
    fast = runs["fastpath"].results if "fastpath" in runs else {}
    for kind in ("pass", "offload"):
        for size in args.sizes:
            key = f"{kind}_{size}_pps"
            line = f"{key:<22}"
            for m in modes:
                value = runs[m].results.get(key)
                line += f"{value:>12,.0f}" if value is not None else f"{'-':>12}"
            k = kernel.get(f"pass_{size}_pps") or float("nan")
            u = user.get(key) or float("nan")
            f = fast.get(key, float("nan"))
            print(line + f"{f / k:>12.1%}{f / u:>10.1f}x")
    for key in ("rtt_pdn_p50_ms", "rtt_pdn_p99_ms", "rtt_service_p50_ms", "rtt_service_p99_ms"):
        line = f"{key:<22}"
        for m in modes:
            value = runs[m].results.get(key)
            line += f"{value:>12.3f}" if value is not None else f"{'-':>12}"
        base_key = key.replace("service", "pdn")
        added = fast.get(key, float("nan")) - kernel.get(base_key, float("nan"))
        print(line + f"   added {added:+.3f} ms")
    print(
        "\nfastpath: punted "
        f"{fast.get('punted', 0):.0f}, rate-limited {fast.get('punt_rate_limited', 0):.0f}, "
        f"drops {fast.get('drops', 0):.0f}; userspace drops {user.get('drops', 0):.0f}"
    )


if __name__ == "__main__":
    main()
