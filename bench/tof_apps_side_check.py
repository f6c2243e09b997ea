"""What the TOF's check of its apps side costs each ``program_check_interval``, one invocation.

The check (:meth:`fluidedge.tof.dataplane_common.DataPlaneBase._heal_apps_side`) looks again at
what :mod:`fluidedge.tof.apps_side` set up at start: IP forwarding in the TOF's namespace, the
apps interface up with its gateway address. It reads the forwarding sysctls from ``/proc/sys``
by a thread inside the namespace and the interface with one ``ip -j addr``. The baseline, in the
same run, is the start's way: ``sysctl -n`` twice (two processes) and the same ``ip``. Both
find nothing wrong here (a namespace made for the run: a veth ``apps`` with 198.19.0.1/24, up,
forwarding on), ``--rounds`` times each, alternated; p50 and p90 in ms, and their ratio.

Run as root: ``.venv/bin/python bench/tof_apps_side_check.py [--rounds 30]``.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fluidedge.tof import apps_side
from fluidedge.tof.config import TofConfig

NETNS = "fe-bench-appsside"


def _ip(*argv: str) -> None:
    subprocess.run(["ip", "-n", NETNS, *argv], check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    subprocess.run(["ip", "netns", "add", NETNS], check=True)
    try:
        _ip("link", "add", "apps", "type", "veth", "peer", "name", "appsp")
        _ip("addr", "add", "198.19.0.1/24", "dev", "apps")
        _ip("link", "set", "apps", "up")
        subprocess.run(
            ["ip", "netns", "exec", NETNS, "sysctl", "-qw", "net.ipv4.ip_forward=1"], check=True
        )
        config = TofConfig(
            backend="none", netns=NETNS, apps_interface="apps", apps_gateway="198.19.0.1/24"
        )
        runner = apps_side.runner_in(NETNS)
        proc_sys = apps_side.sysctls_in(NETNS)
        check: list[float] = []
        start_way: list[float] = []
        for _ in range(args.rounds):
            begin = time.perf_counter()
            found = apps_side.plan(config, apps_side.observe(config, runner, proc_sys))
            check.append((time.perf_counter() - begin) * 1000)
            begin = time.perf_counter()
            baseline = apps_side.plan(config, apps_side.observe(config, runner))
            start_way.append((time.perf_counter() - begin) * 1000)
            if found.missing or baseline.missing or found.fatal or baseline.fatal:
                raise RuntimeError(f"the apps side is not ready: {found} / {baseline}")

        def q(values: list[float], p: int) -> float:
            return statistics.quantiles(values, n=10)[p // 10 - 1]

        ours, theirs = statistics.median(check), statistics.median(start_way)
        print(f"tof apps side check, nothing wrong, {args.rounds} rounds, ms")
        tail = q(check, 90)
        print(f"  check (sysctls from /proc/sys + ip -j addr)  p50 {ours:6.2f}  p90 {tail:6.2f}")
        print(
            f"  start's way (sysctl -n x2 + ip -j addr)     p50 {theirs:6.2f}  "
            f"p90 {q(start_way, 90):6.2f}"
        )
        print(f"  check / start's way at p50 = {ours / theirs:.2f}x")
    finally:
        subprocess.run(["ip", "netns", "del", NETNS], check=False)


if __name__ == "__main__":
    main()
