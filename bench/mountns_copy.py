"""What a new mount namespace costs as the caller's namespace holds more mounts.

    .venv/bin/python bench/mountns_copy.py [--mounts 1000,2500,5000,10000] [--runs 20]
    scripts/vmtest --cmd -- .venv/bin/python bench/mountns_copy.py     # Debian's 6.1

Every ``runc create`` / ``crun create`` the pool's refill runs starts the container in a new
mount namespace, which the kernel makes as a *copy* of the daemon's (``copy_mnt_ns``: every
mount, with its propagation ties), and the runtime then pivots into the rootfs and detaches
the copied tree. Each instance leaves one mount in the daemon's namespace (its overlay root),
so at N instances every creation copies and drops ~N mounts: the refill's CPU per shell grows
with N while the API's latency stays flat (the pool absorbs it). This bench measures that
slope on the running kernel, without containers: in a private mount namespace it mounts
tmpfs instances of growing count and times ``unshare -m --propagation slave true`` (a copy
made, then torn down at exit), against the same with no extra mount, in one invocation.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def time_unshare(runs: int) -> float:
    """Median milliseconds of ``unshare -m --propagation slave true`` from this namespace."""
    samples = []
    for _ in range(runs):
        begin = time.perf_counter()
        subprocess.run(["unshare", "-m", "--propagation", "slave", "true"], check=True)
        samples.append((time.perf_counter() - begin) * 1000)
    return statistics.median(samples)


def child(base: Path, steps: list[int], runs: int) -> None:
    """In a private mount namespace: grow the mount count step by step, time each step."""
    libc = ctypes.CDLL(None, use_errno=True)
    made = 0
    for step in steps:
        while made < step:
            target = base / str(made)
            target.mkdir()
            if libc.mount(b"tmpfs", str(target).encode(), b"tmpfs", 0, b"size=4k") != 0:
                sys.exit(f"mount {target}: {os.strerror(ctypes.get_errno())}")
            made += 1
        total = len(Path("/proc/self/mountinfo").read_text().splitlines())
        print(f"{step} {total} {time_unshare(runs):.3f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mounts", default="1000,2500,5000,10000", help="extra mounts, steps")
    parser.add_argument("--runs", type=int, default=20, help="unshare runs per step")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--base", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None and args.base is not None:
        child(args.base, [int(s) for s in args.child.split(",")], args.runs)
        return
    steps = [0, *sorted({int(s) for s in args.mounts.split(",") if int(s) > 0})]
    print(f"mount namespace copy bench: {os.uname().release}, {args.runs} runs per row")
    base = Path(tempfile.mkdtemp(prefix="fe-mntns-"))
    try:
        # The mounts go with the child's namespace when it exits; their directories stay here.
        run = subprocess.run(
            ["unshare", "-m", "--propagation", "private", sys.executable, __file__,
             "--child", ",".join(map(str, steps)), "--base", str(base), "--runs", str(args.runs)],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
    finally:
        shutil.rmtree(base, ignore_errors=True)
    rows = [tuple(float(x) for x in line.split()) for line in run.stdout.splitlines()]
    baseline = rows[0][2]
    print("  extra mounts  mounts in ns   new mount ns, median ms   vs no extra mount")
    for extra, total, ms in rows:
        print(f"  {int(extra):12d}  {int(total):12d}   {ms:23.3f}   {ms / baseline:16.2f}x")
    if len(rows) > 1:
        extra, _, ms = rows[-1]
        per_k = (ms - baseline) / extra * 1000
        print(f"  slope: {per_k:.3f} ms per 1,000 mounts in the caller's namespace")


if __name__ == "__main__":
    main()
