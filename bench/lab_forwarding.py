"""Baseline: plain Linux forwarding of the lab's GTP-U streams across the S1 segment.

For every stream the lab generator writes (plain G-PDUs and G-PDUs with a PDU Session
Container; 64/256/1024/1518-byte frames and iMIX), offer it at full rate with trafgen from the
eNB side and count what reaches the SGWs, with the fluidedge host namespace

- ``bridge``: a Linux bridge joining its two S1 interfaces (what a transparent TOF replaces),
- ``routed``: kernel IP forwarding with proxy ARP between them,

plus the generator ceiling: the same offer with the host's S1 interfaces unbridged, counted
on arrival at the host's eNB-side interface (what the generator alone can push into the host
on this machine). The three labs are up together and measured back to back for every stream
and repeat; ratios are between figures of this run.

    .venv/bin/python bench/lab_forwarding.py [--quick] [--json FILE]

Needs root. The machine is shared and has 2 cores: numbers are noisy; medians of repeats.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from fluidedge.lab.gen import Generator
from fluidedge.lab.lab import Lab

MODES = ("tof", "bridge", "routed")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 s per run, 1 run, plain only")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    duration, reps = (1.0, 1) if args.quick else (2.0, 3)
    base = f"b{os.getpid() % 100000}"
    labs: dict[str, Lab] = {}
    rates: dict[str, dict[str, list[float]]] = {m: {} for m in MODES}
    took_up: dict[str, float] = {}
    took_down: dict[str, float] = {}
    try:
        # All three labs up at once, and the modes measured back to back for every stream and
        # repeat, so that load drifting on the shared machine hits them alike.
        for mode in MODES:
            started = time.monotonic()
            labs[mode] = Lab.up(prefix=f"{base}{mode[0]}", mode=mode)  # type: ignore[arg-type]
            took_up[mode] = time.monotonic() - started
        gens = {m: Generator(lab) for m, lab in labs.items()}
        streams_by_mode = {m: {s.name: s for s in g.write_streams()} for m, g in gens.items()}
        names = [n for n in streams_by_mode["tof"] if not (args.quick and n.startswith("psc"))]
        time.sleep(0.3)  # the first echo exchange teaches the bridges the SGW MACs
        for _ in range(reps):
            for name in names:
                for mode in MODES:
                    result = gens[mode].offer(
                        streams_by_mode[mode][name].pcap,
                        duration=duration,
                        tool="trafgen",
                        count_at="host" if mode == "tof" else "sgw",
                    )
                    rates[mode].setdefault(name, []).append(result.pps)
    finally:
        for mode, lab in labs.items():
            started = time.monotonic()
            lab.down()
            took_down[mode] = time.monotonic() - started
    results = {m: {n: statistics.median(v) for n, v in by.items()} for m, by in rates.items()}
    streams = [streams_by_mode["tof"][n] for n in names]
    console = Console(width=140)
    table = Table(
        title=f"Kernel forwarding of lab GTP-U streams, frames/s at the SGWs "
        f"(median of {reps} x {duration:.0f} s, trafgen, 1 generator core)",
        title_justify="left",
    )
    for col in ("stream", "frame bytes", "generator ceiling", "bridged", "routed",
                "routed/bridged", "bridged/ceiling", "bridged Mbit/s"):  # fmt: skip
        table.add_column(col, justify="right" if col != "stream" else "left")
    for s in streams:
        ceil, br, rt = (results[m][s.name] for m in ("tof", "bridge", "routed"))
        # iMIX is 7:4:1 of its smallest/594/1518-byte frames
        frame_bytes = (
            (7 * s.sizes[0] + 4 * 594 + 1518) / 12 if s.name.endswith("imix") else s.sizes[0]
        )
        table.add_row(
            s.name,
            s.sizes_text,
            f"{ceil:,.0f}",
            f"{br:,.0f}",
            f"{rt:,.0f}",
            f"{rt / br:.2f}" if br else "-",
            f"{br / ceil:.2f}" if ceil else "-",
            f"{br * frame_bytes * 8 / 1e6:,.0f}",
        )
    console.print(table)
    # The lab's own life cycle (the functional test only checks that up and down complete):
    # seconds per mode, and against the TOF-mode lab brought up in this same run.
    console.print(
        "lab up / down, s: "
        + ", ".join(
            f"{m} {took_up[m]:.2f} / {took_down[m]:.2f}"
            f" (x{took_up[m] / took_up['tof']:.2f} / x{took_down[m] / took_down['tof']:.2f})"
            for m in MODES
        )
    )
    console.print(f"load average at end: {os.getloadavg()}")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "duration": duration,
                    "reps": reps,
                    "pps": results,
                    "up_s": took_up,
                    "down_s": took_down,
                },
                indent=1,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
