"""How long the usage read-outs stall the data plane at 100,000 open records: before and after.

    .venv/bin/python bench/tof_usage_readout.py [--records 100000] [--rounds 5]

No root: an accountant with N open records (one per bearer, learned by a userspace pipeline
from G-PDUs) behind the data plane's lock, and the prober of ``_lockwait.py`` (a
thread taking the lock every millisecond: "max wait" is how long no packet moved). Each
read-out runs as it was (``before``: the whole read-out inside one hold of the lock, as the
accountant's methods ran) and as it is (``after``: :mod:`fluidedge.tof.accounting.readout`,
one short hold for the snapshot, the counters ``CHUNK`` records per hold, the rest outside):

* ``GET /usage``: every open record's row and the totals;
* ``GET /usage?ue=``: one UE's rows and the totals;
* ``/metrics``: the totals;
* ``restart marker``: the exporter's identities, rewritten every ``checkpoint_interval``.

Medians over ``--rounds``; ratios before / after of the same run.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _lockwait import learned, measure
from fluidedge.tof.accounting import readout
from fluidedge.tof.accounting.config import AccountingConfig
from fluidedge.tof.accounting.usage import Accountant
from tof_bearer_churn import ue


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    n = args.records
    backend = learned(n)
    accountant = Accountant(AccountingConfig())
    for i, bearer in enumerate(backend.pipeline.bearers.values()):
        usage = accountant.open(bearer, f"svc{i % 8}", bytes([198, 18, 50, 1 + i % 8]), 1.0)
        usage.ul_packets, usage.ul_bytes = i, 100 * i
    lock = threading.Lock()

    def hold(call: Callable[[Accountant], Any]) -> Any:
        with lock:
            return call(accountant)

    def inline(call: Callable[[Accountant], Any]) -> Any:
        return call(accountant)

    def one_hold(run: Callable[[readout.Hold], object]) -> Callable[[], object]:
        def before() -> object:
            with lock:
                return run(inline)

        return before

    target = ue(n // 2)
    rows: dict[str, Callable[[readout.Hold], object]] = {
        "GET /usage": lambda h: readout.usage_view(h, None, None),
        "GET /usage?ue=": lambda h: readout.usage_view(h, target, None),
        "/metrics totals": readout.totals,
        "restart marker": readout.identities,
    }
    got: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for _ in range(args.rounds):
        for name, run in rows.items():
            got.setdefault((name, "before"), []).append(measure(lock, one_hold(run)))
            got.setdefault((name, "after"), []).append(measure(lock, partial(run, hold)))
    print(f"{n} open records, medians of {args.rounds} rounds (ms)")
    print(f"{'read-out':18} {'':7} {'wall':>9} {'max wait':>9}")
    for name in rows:
        med = {}
        for kind in ("before", "after"):
            samples = got[(name, kind)]
            wall = statistics.median(w for w, _ in samples) * 1e3
            med[kind] = statistics.median(m for _, m in samples) * 1e3
            print(f"{name:18} {kind:7} {wall:9.2f} {med[kind]:9.2f}")
        ratio = med["before"] / med["after"] if med["after"] else float("inf")
        print(f"{'':18} max wait before / after = {ratio:.1f}x")


if __name__ == "__main__":
    main()
