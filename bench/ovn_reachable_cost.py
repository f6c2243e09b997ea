"""What the northbound database's reachability check costs each ``ovn-nbctl`` call.

Every :class:`~fluidedge.ovn.nbctl.Nbctl` call now connects once to each member of the
northbound database before running ``ovn-nbctl`` (:meth:`~fluidedge.ovn.nbctl.Nbctl.live_remote`),
so that a database no member of which answers (the central down, or not up yet after a site's
reboot) is said at once instead of after the tool's own 30 s. Before, a single-member remote
was passed to the tool unchecked. This times one read (``ovn-nbctl ls-list``) against a real
central (``ovsdb-server`` for the NB and SB, ``ovn-northd``, one member, Unix sockets), the
way the code does it now (:meth:`Nbctl.run`) and the way it did before (the same argv run
without the check), alternated, ``--rounds`` times each, in one invocation; and the check
alone.

Run as root or not (the central is the caller's): ``.venv/bin/python bench/ovn_reachable_cost.py
[--rounds 200]``. The central is stopped and removed at the end.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fluidedge.ovn import tool
from fluidedge.ovn.central import Central
from fluidedge.ovn.nbctl import Nbctl


def _ms(samples: list[float]) -> str:
    ordered = sorted(samples)
    p90 = ordered[int(0.9 * (len(ordered) - 1))]
    return f"p50 {statistics.median(ordered):8.3f}  p90 {p90:8.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=200)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="fe-bench-ovn-"))
    central = Central(root / "central")
    try:
        central.start()
        nb = Nbctl(central.nb_remote)
        argv = ["ovn-nbctl", f"--db={central.nb_remote}", "--timeout=30", "ls-list"]
        now: list[float] = []
        before: list[float] = []
        check: list[float] = []
        for _ in range(args.rounds):
            start = time.perf_counter()
            nb.run("ls-list")
            now.append((time.perf_counter() - start) * 1000)
            start = time.perf_counter()
            tool.run(argv, nb.env, timeout=40)
            before.append((time.perf_counter() - start) * 1000)
            start = time.perf_counter()
            nb.live_remote()
            check.append((time.perf_counter() - start) * 1000)
        print(
            f"ovn-nbctl ls-list against a real NB (one member, Unix socket), {args.rounds} "
            "each, alternated, ms"
        )
        print(f"  with the reachability check (now)   {_ms(now)}")
        print(f"  without it (before)                  {_ms(before)}")
        print(f"  the check alone (one connect)        {_ms(check)}")
        ratio = statistics.median(now) / statistics.median(before)
        print(f"  now / before at p50 = {ratio:.3f}x")
    finally:
        central.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
