"""The cost of tenant admission per instance request, as the node fills up.

Admission (fluidedge.tenants.admission) checks each ``POST /v1/instances`` against the tenant's
quota and the host's pid budget, which depend on what every instance holds. A walk over all
instances costs in proportion to their number (the first version did that: ~0.2 s per request
at 10,000 instances on a loaded host); the per-owner ledger the routes keep makes it O(1). This
measures both in the same invocation, interleaved, for N instances held by 10 tenants, and
prints the per-request cost and the walk/ledger ratio.

    .venv/bin/python bench/tenants_admission.py [--sizes 0 1000 10000] [--requests 2000]

Pure Python: no daemon, no runc (the admission policy and its bookkeeping only).
"""

from __future__ import annotations

import argparse
import statistics
import time

from fluidedge.instances.models import Resources
from fluidedge.tenants.admission import Admission, Demand, Ledger, Totals, demand_of
from fluidedge.tenants.config import AdmissionConfig
from fluidedge.tenants.models import Quota

CONFIG = AdmissionConfig(pids_overcommit=100.0)
QUOTA = Quota(instances=100_000, cpus=1024, memory_mb=1 << 30, pids=1 << 22)


def _walk(resources: list[tuple[str, str | None, Resources]]) -> dict[str | None, Totals]:
    totals: dict[str | None, Totals] = {}
    for _name, owner, res in resources:
        totals.setdefault(owner, Totals()).add(demand_of(res))
    return totals


def _per_request_us(admission: Admission, requests: int) -> float:
    demand = Demand(1.0, 8, 8)
    begin = time.perf_counter()
    for i in range(requests):
        with admission.admit(f"t3-r{i}", demand, ("t3", QUOTA, [])):
            pass
    return (time.perf_counter() - begin) / requests * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[0, 1000, 10000])
    parser.add_argument("--requests", type=int, default=2000, help="admissions per measure")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (median)")
    args = parser.parse_args()
    print(f"{'instances':>9} {'ledger us/req':>14} {'walk us/req':>12} {'walk/ledger':>12}")
    for size in args.sizes:
        held: list[tuple[str, str | None, Resources]] = [
            (f"t{i % 10}-i{i}", f"t{i % 10}", Resources(cpu_limit=1.0)) for i in range(size)
        ]
        ledger = Ledger()
        ledger.reset([(n, o, demand_of(r)) for n, o, r in held])

        def snapshot(ledger: Ledger = ledger) -> dict[str | None, Totals]:
            return {o: Totals(**vars(t)) for o, t in ledger.totals.items()}

        def walked(
            held: list[tuple[str, str | None, Resources]] = held,
        ) -> dict[str | None, Totals]:
            return _walk(held)

        fast, slow = Admission(CONFIG, snapshot), Admission(CONFIG, walked)
        walk_requests = max(5, args.requests // max(1, size // 100))
        ledger_us, walk_us = [], []
        for _ in range(args.rounds):
            ledger_us.append(_per_request_us(fast, args.requests))
            walk_us.append(_per_request_us(slow, walk_requests))
        a, b = statistics.median(ledger_us), statistics.median(walk_us)
        print(f"{size:>9} {a:>14.1f} {b:>12.1f} {b / a:>12.1f}")


if __name__ == "__main__":
    main()
