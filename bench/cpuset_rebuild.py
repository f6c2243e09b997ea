"""What a cgroup-v1 cpuset costs as the host holds more of them, with and without
``cpuset.sched_load_balance`` (issue 12's density: what grew with the count).

In a parent of its own (``/sys/fs/cgroup/cpuset/fe-rebuild-bench``) the bench makes N sibling
cpusets (as N instances' cgroups are siblings under the daemon's parent), then times, with N
= 0, 1,000, 5,000 and 10,000 siblings, alternated between a cpuset with the kernel's default
flag (1) and one made with the flag 0 before its CPUs (what ``CgroupsV1.before_create`` does):

- a ``cpuset.cpus`` write (a claim placed on other CPUs than its shell's);
- a cpuset's whole life: mkdir, mems and cpus written (the runtime's create), rmdir (delete).

A cpuset with the flag 1 makes the kernel rebuild the scheduling domains when its CPUs change
and when it is removed, and a rebuild walks every cpuset on the host. Ratios are against the
same operation with no sibling, in this one invocation. cgroup v1 (hybrid) hosts only.

    .venv/bin/python bench/cpuset_rebuild.py [--counts 0 1000 5000 10000] [--runs 100]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from instances_common import machine

ROOT = Path("/sys/fs/cgroup/cpuset")
PARENT = ROOT / "fe-rebuild-bench"


def write(path: Path, value: str) -> None:
    with open(path, "w") as handle:
        handle.write(value)


def make(path: Path, cpus: str, mems: str, *, balance: bool) -> None:
    path.mkdir()
    if not balance:
        write(path / "cpuset.sched_load_balance", "0")  # no CPU yet: rebuilds nothing
    write(path / "cpuset.mems", mems)
    write(path / "cpuset.cpus", cpus)


def timed(call: Callable[[], object]) -> float:
    begin = time.perf_counter()
    call()
    return (time.perf_counter() - begin) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", type=int, nargs="+", default=[0, 1000, 5000, 10000])
    parser.add_argument("--runs", type=int, default=100)
    args = parser.parse_args()
    if os.geteuid() != 0 or not (ROOT / "cpuset.sched_load_balance").exists():
        sys.exit("cpuset_rebuild: run as root on a cgroup-v1 (hybrid) host")
    cpus = (ROOT / "cpuset.cpus").read_text().strip()
    mems = (ROOT / "cpuset.mems").read_text().strip()
    other = cpus.split(",")[0].split("-")[0]  # one CPU, for the write that changes them
    print(f"cpuset rebuild bench: {machine()}, {args.runs} runs per cell, cpus {cpus}")
    siblings: list[Path] = []
    PARENT.mkdir()
    try:
        write(PARENT / "cpuset.mems", mems)
        write(PARENT / "cpuset.cpus", cpus)
        probes = {flag: PARENT / f"probe-lb{int(flag)}" for flag in (True, False)}
        for flag, path in probes.items():
            make(path, cpus, mems, balance=flag)
        rows = []
        for count in sorted(args.counts):
            while len(siblings) < count:  # siblings with the flag 0: quick to make
                path = PARENT / f"s{len(siblings)}"
                make(path, cpus, mems, balance=False)
                siblings.append(path)
            cells: dict[str, list[float]] = {}
            for run in range(args.runs):
                for flag in (True, False) if run % 2 == 0 else (False, True):
                    value = other if run % 2 == 0 else cpus
                    cpus_ms = timed(partial(write, probes[flag] / "cpuset.cpus", value))
                    life = PARENT / f"life-lb{int(flag)}"
                    life_ms = timed(partial(make, life, cpus, mems, balance=flag))
                    life_ms += timed(life.rmdir)
                    cells.setdefault(f"cpus{int(flag)}", []).append(cpus_ms)
                    cells.setdefault(f"life{int(flag)}", []).append(life_ms)
            rows.append((count, {k: statistics.median(v) for k, v in cells.items()}))
        base = rows[0][1]
        print("  siblings   cpus write, flag 1 / 0 (ms)      mkdir..rmdir, flag 1 / 0 (ms)")
        for count, cell in rows:
            print(
                f"  {count:8d}   {cell['cpus1']:7.3f} ({cell['cpus1'] / base['cpus1']:5.2f}x)"
                f" / {cell['cpus0']:6.3f} ({cell['cpus0'] / base['cpus0']:4.2f}x)"
                f"   {cell['life1']:7.3f} ({cell['life1'] / base['life1']:5.2f}x)"
                f" / {cell['life0']:6.3f} ({cell['life0'] / base['life0']:4.2f}x)"
            )
        last = rows[-1][1]
        print(
            f"  at {rows[-1][0]} siblings, flag 0 against flag 1: cpus write "
            f"{last['cpus0'] / last['cpus1']:.2f}x, "
            f"a cpuset's life {last['life0'] / last['life1']:.2f}x"
        )
    finally:
        for path in [*siblings, *PARENT.glob("probe-*"), *PARENT.glob("life-*")]:
            if path.exists():
                path.rmdir()
        PARENT.rmdir()


if __name__ == "__main__":
    main()
