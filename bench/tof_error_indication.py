"""An Error Indication at operator scale: what forgetting one peer's tunnel costs vs the tables.

    .venv/bin/python bench/tof_error_indication.py [--sizes 1000,100000] [--reps 200]

Pure (no root, no I/O): the reference pipeline, N bearers learned from the control plane
(``install_bearer``, uplink + downlink TEID each) across 100 eNodeBs and 4 SGWs. Then, medians
of ``--reps`` Error Indications, each from an SGW naming a TEID that one bearer holds (the
bearer is re-installed between runs, outside the timing):

* "pipeline": ``from_s1`` of the Error Indication frame (decode, the per-peer index's probes,
  the forget and its event);
* "walk (before)": the lookup the pipeline did before the index, a walk over every tunnel key
  comparing its destination and TEID (the baseline, timed in the same invocation).

Ratios are to the first size in the same run (goal: about 1x, independent of N); "walk/pipeline"
is what the index saves. The machine is shared (2 cores): read ratios, not absolute figures.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from ipaddress import IPv4Address
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))

from fluidedge.codec import gtpu  # noqa: E402
from fluidedge.codec.stack import encapsulate, ethernet_frame  # noqa: E402
from fluidedge.tof.config import TofConfig  # noqa: E402
from fluidedge.tof.pipeline import SGW, Pipeline  # noqa: E402

ENBS = [IPv4Address("10.10.0.0") + i for i in range(1, 101)]
SGWS = [IPv4Address("10.20.0.0") + i for i in range(1, 5)]
MAC_A = bytes.fromhex("020000000001")
MAC_B = bytes.fromhex("020000000002")


def build(n: int) -> tuple[Pipeline, list[tuple[bytes, bytes, bytes, int, int]]]:
    p = Pipeline(TofConfig(backend="none", max_tunnels=max(2 * n, 1)))
    bearers = []
    base = int(IPv4Address("100.64.0.0"))
    for i in range(n):
        enb, sgw = ENBS[i % len(ENBS)].packed, SGWS[i % len(SGWS)].packed
        ue = IPv4Address(base + i).packed
        ul, dl = 0x1000_0000 + i, 0x2000_0000 + i
        p.install_bearer(enb, sgw, ue, ul, dl, now=0.0)
        bearers.append((enb, sgw, ue, ul, dl))
    return p, bearers


def walk(p: Pipeline, peer: bytes, teid: int) -> int:
    suffix = peer + teid.to_bytes(4, "big")
    size = 2 * len(peer) + 4
    hits = 0
    for table in (p.up, p.down):
        for tkey in list(table):
            if tkey[size - len(suffix) : size] == suffix and len(tkey) in (size, size + 1):
                hits += 1
    return hits


def run(n: int, reps: int) -> tuple[float, float]:
    p, bearers = build(n)
    step = max(1, n // reps)
    pipe_ns: list[float] = []
    walk_ns: list[float] = []
    for k in range(reps):
        enb, sgw, ue, ul, dl = bearers[(k * step) % n]
        ei = gtpu.error_indication(ul, IPv4Address(sgw))
        frame = ethernet_frame(MAC_A, MAC_B, encapsulate(sgw, enb, ei))
        t0 = time.perf_counter_ns()
        hits = walk(p, sgw, ul)
        walk_ns.append(time.perf_counter_ns() - t0)
        if hits != 1:
            raise SystemExit(f"walk found {hits} tunnels for one bearer's TEID")
        before = len(p.up)
        t0 = time.perf_counter_ns()
        p.from_s1(frame, SGW, 1.0 + k)
        pipe_ns.append(time.perf_counter_ns() - t0)
        if len(p.up) != before - 1:
            raise SystemExit("the Error Indication did not forget exactly one uplink tunnel")
        p.install_bearer(enb, sgw, ue, ul, dl, now=1.0 + k)
    return statistics.median(pipe_ns) / 1e3, statistics.median(walk_ns) / 1e3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1000,100000")
    ap.add_argument("--reps", type=int, default=200)
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    first: float | None = None
    for n in sizes:
        pipe_us, walk_us = run(n, args.reps)
        first = pipe_us if first is None else first
        print(
            f"{n:>7} bearers: pipeline {pipe_us:9.1f} us (x{pipe_us / first:.2f} of the first size)"
            f"   walk (before) {walk_us:10.1f} us   walk/pipeline {walk_us / pipe_us:8.1f}"
        )


if __name__ == "__main__":
    main()
