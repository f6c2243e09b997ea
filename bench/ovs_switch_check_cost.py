"""What the ovs networks' switch check costs per pass, now that it looks for emptied bridges.

Every ``switch_check_interval_s`` (1 s by default) the instances part calls
:func:`fluidedge.ovs.bridges.revive`. It used to read two pidfiles per switch (a dead switch is
restarted). It now also lists the switch's bridges (``ovs-vsctl list-br``) and counts each
one's flows (``ovs-ofctl dump-aggregate``): a bridge whose every flow was deleted from outside
forwards nothing. This times a whole pass of ``revive()`` with nothing wrong, against a real
switch (our ``ovsdb-server`` + ``ovs-vswitchd``, userspace datapath, in a namespace of its own)
holding ``--bridges`` bridges, alternated with what the check did before (the two pidfile reads,
:meth:`~fluidedge.ovs.daemons.OvsDaemons.pids`), ``--rounds`` times each, in one invocation.

Run as root: ``.venv/bin/python bench/ovs_switch_check_cost.py [--bridges 1 4 16]
[--rounds 15]``. The namespace and the switch are removed at the end.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fluidedge.linux import netns
from fluidedge.ovs import bridges

NETNS = "fe-bench-swchk"


def _cpu_ms() -> float:
    """CPU used so far by this process and its waited-for children (the ``ovs-*`` tools)."""
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        total += usage.ru_utime + usage.ru_stime
    return total * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bridges", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    netns.create(NETNS)
    bridges.configure(Path(tempfile.mkdtemp(prefix="fe-bench-")) / "state")
    made = 0
    try:
        print("ovs switch check, one pass with nothing wrong, ms (p50 / p90, alternated)")
        for count in sorted(args.bridges):
            while made < count:
                bridges.ensure_bridge(f"brchk{made}", NETNS, f"net{made}")
                made += 1
            daemons = bridges.switch(NETNS)
            checked: list[float] = []
            cpu: list[float] = []
            pidfiles: list[float] = []
            for _ in range(args.rounds):
                used = _cpu_ms()
                begin = time.perf_counter()
                done = bridges.revive()
                checked.append((time.perf_counter() - begin) * 1000)
                cpu.append(_cpu_ms() - used)
                begin = time.perf_counter()
                pids = daemons.pids()
                pidfiles.append((time.perf_counter() - begin) * 1000)
                if done or None in pids:
                    raise RuntimeError(f"the switch is not whole: revive() = {done}, {pids}")

            def q(values: list[float], p: int) -> float:
                return statistics.quantiles(values, n=10)[p // 10 - 1]

            ours, before = statistics.median(checked), statistics.median(pidfiles)
            print(
                f"  {count:3d} bridges  pidfiles only (before) p50 {before:7.3f}"
                f" p90 {q(pidfiles, 90):7.3f}   + emptied bridges p50 {ours:7.2f}"
                f" p90 {q(checked, 90):7.2f}   {ours / before:6.0f}x;"
                f" CPU (this process and its children) p50 {statistics.median(cpu):6.2f} ms:"
                f" {statistics.median(cpu) / 10:4.1f}% of a core at 1 s"
            )
    finally:
        for index in range(made):
            bridges.delete_bridge(f"brchk{index}", NETNS)  # the switch stops with the last
        netns.delete(NETNS)


if __name__ == "__main__":
    main()
