"""Offload throughput of the userspace TOF with usage accounting on vs off, in the lab.

    .venv/bin/python bench/accounting_lab.py [--quick] [--json]

One lab in "tof" mode, one invocation: a daemon without accounting and a daemon with it
(periodic reports every 60 s to JSON Lines) take turns on the same lab (the order alternates
each round); trafgen replays uplink G-PDUs of every bearer to a registered service at full
speed (bench/_tof_common.py's ``offload_rate``, as bench/tof_userspace.py measures offload) and
the rate arriving at the edge app is offloaded pps. Reported: best-of per variant and the
ratio on/off (goal ≥ 0.95), and the median of the per-round ratios. The machine is shared and
has 2 cores (trafgen one, the TOF's data-plane thread the other): read the ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

from _tof_common import SERVICE_IP, offload_rate, write_offload_pcap
from fluidedge.lab.config import default_text, loads
from fluidedge.lab.gen import Generator
from fluidedge.lab.lab import Lab
from fluidedge.tof.launch import TofDaemon, lab_tof_section, s1_pairs, wait_s1_ready

ACCOUNTING = {"enabled": True, "period": 60, "jsonl": {}}


def one(lab: Lab, gen: Generator, pcap: object, accounting: bool, duration: float) -> float:
    extra: dict[str, object] = {"accounting": ACCOUNTING} if accounting else {}
    daemon = TofDaemon(lab_tof_section(lab, idle_timeout=600, **extra))
    try:
        daemon.start()
        wait_s1_ready(daemon.client, s1_pairs(lab))
        app = str(next(iter(lab.apps.values())))
        daemon.client.post(
            "/service", {"name": "bench", "serviceIP": SERVICE_IP, "applicationIP": app}
        )
        pps, _offered = offload_rate(lab, gen, pcap, duration, reap_ran=True)  # type: ignore[arg-type]
        usage = daemon.client.get("/usage")
        if accounting and not usage["totals"]["services"]:
            raise SystemExit("accounting on, but nothing was accounted")
        return pps
    finally:
        daemon.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 rounds of 1.5 s offers")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--size", type=int, default=256, help="inner packet size")
    args = parser.parse_args()
    rounds, duration = (2, 1.5) if args.quick else (4, 3.0)
    lab = Lab.up(loads(default_text()), prefix=f"ab{os.getpid() % 100000}", mode="tof")
    rates: dict[str, list[float]] = {"off": [], "on": []}
    try:
        gen = Generator(lab)
        pcap = write_offload_pcap(lab, gen, "acct", (args.size,))
        for r in range(rounds):
            for variant in ("off", "on") if r % 2 == 0 else ("on", "off"):
                rates[variant].append(one(lab, gen, pcap, variant == "on", duration))
    finally:
        lab.down()
    pairs = [on / off for on, off in zip(rates["on"], rates["off"], strict=True) if off]
    result = {
        "size": args.size,
        "rounds": rounds,
        "duration_s": duration,
        "off_pps": [round(x) for x in rates["off"]],
        "on_pps": [round(x) for x in rates["on"]],
        "ratio_best_on_off": round(max(rates["on"]) / max(rates["off"]), 3),
        "ratio_rounds_median": round(statistics.median(pairs), 3),
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(
        f"userspace TOF offload, {args.size} B, {rounds} rounds of {duration:g} s "
        f"({time.ctime()}):\n"
        f"  off {result['off_pps']} pps\n  on  {result['on_pps']} pps\n"
        f"  best on / best off {result['ratio_best_on_off']}, "
        f"median of per-round on/off {result['ratio_rounds_median']}"
    )


if __name__ == "__main__":
    main()
