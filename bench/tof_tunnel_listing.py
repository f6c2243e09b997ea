"""How long a tunnel listing stalls the data plane at 100,000 bearers: before and after.

    .venv/bin/python bench/tof_tunnel_listing.py [--bearers 100000] [--rounds 5]

No root: a userspace backend, not started, whose pipeline learns N bearers from G-PDUs. A
prober thread (``_lockwait.py``) takes the data plane's lock every millisecond, as the data
plane does per batch of packets: "max wait" is the longest it waited during the call, i.e.
how long no packet moved. Each listing runs as it was (``before``: the pipeline's listing
under one hold of the lock, what both backends did) and as it is (``after``:
``DataPlaneBase``'s listings: the table copied in one short hold, the page chosen outside the
lock, the rows built ``ROWS_CHUNK`` per hold):

* ``keyset page``: ``GET /tunnels?limit=500&after=<the middle>`` (every marker compared);
* ``search page``: the web GUI's tunnels page with a search (every bearer tested), 50 rows;
* ``whole list``: ``GET /tunnels`` (every row built).

Medians over ``--rounds``; ratios before / after of the same run.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _lockwait import learned, measure
from fluidedge.tof.pipeline import Bearer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bearers", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    n = args.bearers
    t0 = time.perf_counter()
    backend = learned(n)
    p = backend.pipeline
    print(f"{len(p.bearers)} bearers learned in {time.perf_counter() - t0:.1f} s")
    middle = backend.tunnels_after(None, n // 2)[1]
    lock = backend._lock

    def keep(bearer: Bearer) -> bool:
        return bearer.ue[3] % 2 == 0

    def under_lock(call: Callable[[], object]) -> Callable[[], object]:
        def before() -> object:
            with lock:
                return call()

        return before

    rows = {
        "keyset page (500 rows)": (
            under_lock(lambda: p.tunnels_after(middle, 500)),
            lambda: backend.tunnels_after(middle, 500),
        ),
        "search page (50 rows)": (
            under_lock(lambda: p.tunnel_page(keep, 1000, 50)),
            lambda: backend.tunnel_page(keep, 1000, 50),
        ),
        "whole list": (under_lock(p.tunnels), backend.tunnels),
    }
    got: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for _ in range(args.rounds):
        for name, (before, after) in rows.items():
            for kind, call in (("before", before), ("after", after)):
                got.setdefault((name, kind), []).append(measure(lock, call))
    print(f"\n{n} bearers, medians of {args.rounds} rounds (ms)")
    print(f"{'listing':24} {'':7} {'wall':>9} {'max wait':>9}")
    for name in rows:
        med = {}
        for kind in ("before", "after"):
            samples = got[(name, kind)]
            wall = statistics.median(w for w, _ in samples) * 1e3
            wait = statistics.median(m for _, m in samples) * 1e3
            med[kind] = wait
            print(f"{name:24} {kind:7} {wall:9.2f} {wait:9.2f}")
        ratio = med["before"] / med["after"] if med["after"] else float("inf")
        print(f"{'':24} max wait before / after = {ratio:.1f}x")


if __name__ == "__main__":
    main()
