"""One service change at operator scale: what ``apply()`` costs the agent vs the table sizes.

    .venv/bin/python bench/tof_fastpath_service_change.py [--sizes 10,100000] [--flows-per 20]

Needs root (it loads the fast path's program and maps; nothing is attached, no topology: the
cost measured is the agent's, under its lock, while the program would keep forwarding). For
each size N, in one invocation: N bearers (uplink + downlink key each) learned through the
reference pipeline, half of them with ``--flows-per`` flows to the service "bench" (100,000
bearers: 1,000,000 flows), and 10 flows to a second service "other", all synced into the real
kernel maps (sized from the config). Then, medians of ``--reps`` runs:

* "re-point other": ``apply()`` with "other" pointed at another application (its entry is
  rewritten, its 10 flows go stale and leave the maps; they are re-made between runs);
* "add service": ``apply()`` with a third service added (its entry, its counters' reset);
* "flag bench": ``set_service_flags()`` on "bench", the service holding N * flows-per / 2 flows
  (its entry only: flags do not change a flow);
* "before (scan + full)": the same re-point as ``apply()`` ran before the service index: the
  pipeline scans every flow for stale ones, then one full re-projection of the maps (one run).

Ratios are to the first size in the same run (goal: about 1x, independent of N). The machine is
shared (2 cores): read the ratios, not absolute figures across runs.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from ipaddress import IPv4Address
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from fluidedge.tof.config import TofConfig  # noqa: E402
from fluidedge.tof.fastpath import layout as L  # noqa: E402
from fluidedge.tof.fastpath.backend import FastPathBackend  # noqa: E402
from fluidedge.tof.fastpath.build import object_path  # noqa: E402
from fluidedge.tof.models import Service  # noqa: E402
from fluidedge.tof.pipeline import ENB  # noqa: E402
from tof_fastpath_scale import APP, SVC, add_flows, g_pdu, learn, ue_of  # noqa: E402

OTHER = "198.18.50.2"
OTHER_FLOWS = 10


def timed(fn: Callable[..., object], *args: object) -> float:
    t0 = time.perf_counter()
    fn(*args)
    return time.perf_counter() - t0


def other_flows(backend: FastPathBackend, now: float) -> None:
    """(Re-)make the 10 flows of service "other" (bearers 0..9) and sync them."""
    svc = IPv4Address(OTHER).packed
    with backend._lock:
        for i in range(OTHER_FLOWS):
            frame = g_pdu(0x100000 + i, ue_of(i), svc, 30000 + i, 9, up=True)
            backend.pipeline.from_s1(frame, ENB, now)
        backend._sync()


def measure(n: int, per: int, reps: int) -> dict[str, float]:
    config = TofConfig(
        backend="none",
        idle_timeout=3600,
        flow_timeout=3600,
        ue_pools=["10.0.0.0/8"],
        max_tunnels=max(n + 2000, 10),
        max_flows=max(n * per, 10) + 1000,
    )
    backend = FastPathBackend(config)
    backend._load(object_path())
    out: dict[str, float] = {}
    try:
        bench = Service("bench", SVC, APP)
        apps = ["198.19.0.11", "198.19.0.12"]
        services = {"bench": bench, "other": Service("other", OTHER, apps[0])}
        backend.apply(services)
        now = time.time()
        learn(backend, 0, max(n, OTHER_FLOWS), now)
        out["flows"] = add_flows(backend, n, per, now) + OTHER_FLOWS
        other_flows(backend, now)
        assert backend.map_report()["flows"]["entries"] == out["flows"]
        repoint, add, flag = [], [], []
        for k in range(reps):
            services = {"bench": bench, "other": Service("other", OTHER, apps[(k + 1) % 2])}
            repoint.append(timed(backend.apply, services))
            assert backend.map_report()["flows"]["entries"] == out["flows"] - OTHER_FLOWS
            other_flows(backend, now)
            third = {**services, "third": Service("third", "198.18.50.3", "198.19.0.13")}
            add.append(timed(backend.apply, third))
            backend.apply(services)
            flag.append(timed(backend.set_service_flags, "bench", L.SERVICE_PUNT))
            backend.set_service_flags("bench", 0)
        out["repoint_ms"] = statistics.median(repoint) * 1e3
        out["add_ms"] = statistics.median(add) * 1e3
        out["flag_ms"] = statistics.median(flag) * 1e3
        # The same re-point as before the service index: a scan of every flow by the
        # pipeline, then a full re-projection of the maps.
        services = {"bench": bench, "other": Service("other", OTHER, apps[(reps + 1) % 2])}
        index, backend.pipeline.service_index = backend.pipeline.service_index, None

        def before() -> None:
            with backend._lock:
                backend.pipeline.set_services(services)
                backend._services = dict(services)
                backend._sync(full=True)

        out["before_ms"] = timed(before) * 1e3
        backend.pipeline.service_index = index
        assert backend.map_report()["flows"]["entries"] == out["flows"] - OTHER_FLOWS
    finally:
        backend._maps.clear()
        if backend._obj is not None:
            backend._obj.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="10,100000")
    parser.add_argument("--flows-per", type=int, default=20, help="flows per offloaded bearer")
    parser.add_argument("--reps", type=int, default=15)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    results = {}
    for n in sizes:
        results[n] = measure(n, args.flows_per, args.reps)
        print(f"measured N={n}", file=sys.stderr, flush=True)
    base = results[sizes[0]]
    print(f"TOF fast path: one service change ({time.ctime()}); ratios to N={sizes[0]}\n")
    rows = [
        ("flows", "flows", "{:,.0f}"),
        ("repoint_ms", "re-point other (ms)", "{:,.3f}"),
        ("add_ms", "add service (ms)", "{:,.3f}"),
        ("flag_ms", "flag bench (ms)", "{:,.3f}"),
        ("before_ms", "before: scan+full (ms)", "{:,.1f}"),
    ]
    print(f"{'metric':26}" + "".join(f"{'N=' + format(n, ','):>16}" for n in sizes))
    for key, label, fmt in rows:
        print(f"{label:26}" + "".join(f"{fmt.format(results[n][key]):>16}" for n in sizes))
    for key in ("repoint_ms", "add_ms", "flag_ms", "before_ms"):
        ratios = "".join(f"{results[n][key] / base[key]:>15.2f}x" for n in sizes)
        print(f"{key + ' / N=' + str(sizes[0]):26}{ratios}")
    last = results[sizes[-1]]
    print(f"\nre-point at N={sizes[-1]:,}: {last['before_ms'] / last['repoint_ms']:,.0f}x faster")


if __name__ == "__main__":
    main()
