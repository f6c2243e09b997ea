"""What the TOF benchmarks (``tof_userspace.py``, ``tof_fastpath.py``) measure the same way.

UE ping RTTs and their percentiles, the offload stream (uplink G-PDUs of every bearer addressed
to the bench service) and its arrival rate at the edge app. Kept in one place so the two
benchmarks' figures stay comparable.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Address
from pathlib import Path

from fluidedge.lab.gen import WARM_UP, Generator, gpdu_frame, stop_group
from fluidedge.lab.lab import Lab
from fluidedge.lab.live import interface_counters
from fluidedge.lab.packets import write_pcap

SERVICE_IP = "198.18.50.1"
_RTT = re.compile(r"time=([0-9.]+) ms")


@dataclass
class Run:
    mode: str
    results: dict[str, float] = field(default_factory=dict)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def ping_rtts(lab: Lab, ue: str, target: str, count: int) -> list[float]:
    argv = ["ping", "-c", str(count), "-i", "0.01", "-W", "1", "-s", "56", target]
    return [float(m) for m in _RTT.findall(lab.run(ue, argv, timeout=120).stdout)]


def kill_leftovers(ns: str) -> None:
    """No generator may outlive its offer (it would load the next measurement)."""
    argv = ["ip", "netns", "pids", ns]
    pids = subprocess.run(argv, capture_output=True, text=True, check=False).stdout
    for pid in pids.split():
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid), signal.SIGKILL)


def write_offload_pcap(lab: Lab, gen: Generator, label: str, sizes: Sequence[int]) -> Path:
    """Uplink G-PDUs of every bearer to :data:`SERVICE_IP`, each size, 4 idents of each."""
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
    pcap = lab.run_dir / f"offload-{label}.pcap"
    write_pcap(pcap, frames)
    return pcap


def offload_rate(
    lab: Lab, gen: Generator, pcap: Path, duration: float, *, reap_ran: bool = False
) -> tuple[float, float]:
    """Replay ``pcap`` (G-PDUs to the service) with trafgen at full speed; the arrival rate at
    the edge app's interface and the offered rate, both pps. ``reap_ran`` also kills whatever
    else still runs in the lab's ``ran`` namespace afterwards."""
    app_ns = lab.ns(next(iter(lab.apps)))
    argv = lab.argv("ran", gen._tool_argv(pcap, None, "trafgen"))
    proc = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # trafgen forks workers: stop the whole group
    )
    try:
        time.sleep(WARM_UP + 0.5)  # + the Pinger/flow learning transient
        r0 = interface_counters(app_ns, ["eth0"])["eth0"]["rx_packets"]
        s0, t0 = gen.sent(), time.monotonic()
        time.sleep(duration)
        r1 = interface_counters(app_ns, ["eth0"])["eth0"]["rx_packets"]
        s1, t1 = gen.sent(), time.monotonic()
    finally:
        stop_group(proc)
        if reap_ran:
            kill_leftovers(lab.ran_ns)
    return (r1 - r0) / (t1 - t0), (s1 - s0) / (t1 - t0)
