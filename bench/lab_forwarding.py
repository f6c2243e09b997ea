"""Baseline: plain Linux forwarding of the lab's GTP-U streams across the S1 segment.

For every stream the lab generator writes (plain G-PDUs and G-PDUs with a PDU Session
Container; 64/256/1024/1518-byte frames and iMIX), offer it at full rate with trafgen from the
eNB side and count what reaches the SGWs, with the fluidedge host namespace

- ``bridge``: a Linux bridge joining its two S1 interfaces (what a transparent TOF replaces),
- ``routed``: kernel IP forwarding with proxy ARP between them,

plus the generator ceiling: the same offer with the host's S1 interfaces unbridged, counted
on arrival at the host's eNB-side interface (what the generator and the eNB-side bridge alone
can push on this machine). Ratios are against the bridged figure measured in this run.

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

from fluidedge.lab.gen import Generator, Stream
from fluidedge.lab.lab import Lab


def measure(lab: Lab, streams: list[Stream], duration: float, reps: int) -> dict[str, float]:
    gen = Generator(lab)
    out: dict[str, float] = {}
    for s in streams:
        rates = []
        for _ in range(reps):
            count_at = "host" if lab.mode == "tof" else "sgw"
            result = gen.offer(s.pcap, duration=duration, tool="trafgen", count_at=count_at)
            rates.append(result.pps)
        out[s.name] = statistics.median(rates)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 s per run, 1 run, plain only")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    duration, reps = (1.0, 1) if args.quick else (2.0, 3)
    prefix = f"b{os.getpid() % 100000}"
    results: dict[str, dict[str, float]] = {}
    streams: list[Stream] = []
    for mode in ("tof", "bridge", "routed"):
        lab = Lab.up(prefix=prefix, mode=mode)  # type: ignore[arg-type]
        try:
            all_streams = Generator(lab).write_streams()
            streams = [s for s in all_streams if not (args.quick and s.name.startswith("psc"))]
            time.sleep(0.3)  # first echo exchange teaches the bridges the SGW MACs
            results[mode] = measure(lab, streams, duration, reps)
        finally:
            lab.down()
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
    console.print(f"load average at end: {os.getloadavg()}")
    if args.json:
        args.json.write_text(
            json.dumps({"duration": duration, "reps": reps, "pps": results}, indent=1)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
