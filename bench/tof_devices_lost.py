"""The TOF's apps TUN deleted from outside (``ip link del``), one invocation, both backends.

Per backend, on the functional tests' topology (namespaces it creates and removes):

- the data plane's CPU over one second with the TUN present (the baseline) and over one second
  after its deletion, nothing healing it yet: a deleted TUN's fd polls POLLERR for ever, and a
  data plane that kept polling it spun a whole core (1.0 s of CPU per second, measured before
  the fix); now it drops it from the poll;
- the outage of offload: ms from the deletion to the first offloaded datagram the app gets
  again, with ``heal()`` every ``--interval`` seconds (the daemon's ``[tof]
  program_check_interval``), the deletion at a random moment of the interval; UE1 sends one
  datagram to the service every 5 ms meanwhile.

Run as root: ``.venv/bin/python bench/tof_devices_lost.py [--rounds 10] [--interval 1.0]``.
"""

from __future__ import annotations

import argparse
import logging
import random
import resource
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.functional.tof_fastpath.scenario import (
    APP_PORT,
    ENB1,
    SVC,
    UE1,
    P,
    config,
    inner_udp,
    learn_bearer,
    up,
)
from tests.functional.tof_fastpath.topo import APP_IP, Topo, topology

from fluidedge.linux.proc import run
from fluidedge.tof.fastpath.backend import FastPathBackend
from fluidedge.tof.models import Service
from fluidedge.tof.userspace import UserspaceBackend


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def cpu_over(seconds: float) -> float:
    before = cpu_seconds()
    time.sleep(seconds)
    return cpu_seconds() - before


def offloaded(got: dict[str, list[bytes]]) -> bool:
    return any(f[12:14] == b"\x08\x00" and f[23] == 17 for f in got["app"])


def outage(t: Topo, backend: UserspaceBackend | FastPathBackend, interval: float) -> float:
    """ms from the TUN's deletion to the app's first offloaded datagram after it."""
    stop = threading.Event()

    def healer() -> None:
        while not stop.wait(interval):
            backend.heal()

    thread = threading.Thread(target=healer, daemon=True)
    thread.start()
    try:
        time.sleep(random.uniform(0, interval))
        t.collect(0.05)  # nothing older counts
        deleted = time.perf_counter()
        run(["ip", "-n", t.host, "link", "del", backend.config.apps_tun])
        frame = up(ENB1, 0x100, inner_udp(UE1, P(SVC), 41000, APP_PORT, b"probe"))
        t.collect(0.05)  # what was in flight at the deletion
        while time.perf_counter() - deleted < 10:
            t.send("enb", frame)
            got = t.collect(0.005)
            if offloaded(got):
                return (time.perf_counter() - deleted) * 1000
        raise AssertionError("offload never came back")
    finally:
        stop.set()
        thread.join()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--interval", type=float, default=1.0)
    args = parser.parse_args()
    logging.getLogger("fluidedge").setLevel(logging.CRITICAL)  # each round logs twice
    rows = []
    for kind in ("userspace", "fastpath"):
        with topology("b" + kind[0]) as t:
            cfg = config(t)
            backend = FastPathBackend(cfg) if kind == "fastpath" else UserspaceBackend(cfg)
            backend.start()
            try:
                backend.apply({"web": Service("web", SVC, APP_IP)})
                learn_bearer(t)
                idle = cpu_over(1.0)
                run(["ip", "-n", t.host, "link", "del", backend.config.apps_tun])
                lost = cpu_over(1.0)
                backend.heal()
                outages = [outage(t, backend, args.interval) for _ in range(args.rounds)]
            finally:
                backend.stop()
        rows.append((kind, idle, lost, outages))
    print(
        f"tof: the apps TUN deleted from outside, heal every {args.interval:g} s, "
        f"{args.rounds} rounds"
    )
    for kind, idle, lost, outages in rows:
        print(
            f"  {kind:<9} CPU s per s: TUN present (baseline) {idle:6.3f}, "
            f"TUN deleted {lost:6.3f} (spinning: 1.0)"
        )
        print(
            f"  {kind:<9} offload outage ms: p50 {statistics.median(outages):7.1f}  "
            f"max {max(outages):7.1f}"
        )


if __name__ == "__main__":
    main()
