"""The fast path's full counter fold at 100,000 bearers: before (under the lock) and after.

    .venv/bin/python bench/tof_fastpath_fold.py [--bearers 100000] [--rounds 3]

Root. One fresh minimal topology (the functional tests' one); the agent learns N bearers
(uplink + downlink key each) and installs them. Then, per round:

* "changed": the kernel entries of every bearer get new counters (written into the maps, as if
  the program had forwarded traffic for every bearer since the last fold), then one fold;
* "unchanged": one more fold right after (nothing new: the steady state of an API poll).

Each is done with the fold as it was (``before``: one batched read of each map and every
installed key folded, all under the agent's lock) and as it is (``after``:
:meth:`FastPathBackend._fold`, batches read outside the lock and applied in short holds). A
prober thread takes the agent's lock every millisecond meanwhile: "max wait" is the longest it
waited, i.e. how long learning and the sync would have stalled. Also timed: ``stats()`` (no
per-bearer fold any more) and one 50-row ``tunnel_page()`` (folds only its rows' bearers).
Medians over ``--rounds``; ratios after / before in the same run.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from tests.functional.tof_fastpath.topo import topology  # noqa: E402

from _lockwait import Prober  # noqa: E402
from fluidedge.tof.fastpath import layout as L  # noqa: E402
from fluidedge.tof.fastpath.backend import FastPathBackend  # noqa: E402
from tof_fastpath_scale import bench_config, learn  # noqa: E402


def fold_before(backend: FastPathBackend) -> None:
    """The full fold as it was: both maps read and folded under the agent's lock."""
    with backend._lock:
        for name, installed, fold in (
            ("tunnels", backend._installed.tunnels, backend._fold_tunnel),
            ("downlink", backend._installed.downlink, backend._fold_downlink),
        ):
            entries = backend._maps[name].lookup_all()
            for key in installed:
                raw = entries.get(key)
                if raw is not None:
                    fold(key, raw)
        backend._fold_services()


def bump(backend: FastPathBackend, round_no: int) -> None:
    """New counters on every tunnel and downlink entry (as if each had forwarded traffic)."""
    now_ns = time.monotonic_ns()
    tunnels, downlink = backend._maps["tunnels"], backend._maps["downlink"]
    for key, raw in tunnels.lookup_all().items():
        ue = L.TUNNEL_VAL.unpack(raw[: L.TUNNEL_VAL.size])[4]
        n = 10 * (round_no + 1)
        tunnels.update(key, L.TUNNEL_VAL.pack(n, 100 * n, now_ns, n // 2, ue))
    for key, raw in downlink.lookup_all().items():
        row = list(L.DOWNLINK_VAL.unpack(raw[: L.DOWNLINK_VAL.size]))
        row[6] = 10 * (round_no + 1)
        downlink.update(key, L.DOWNLINK_VAL.pack(*row))


def timed(backend: FastPathBackend, fold: object) -> tuple[float, float]:
    with Prober(backend._lock) as prober:
        t0 = time.perf_counter()
        fold(backend)  # type: ignore[operator]
        wall = time.perf_counter() - t0
    return wall, prober.max_wait


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bearers", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    n = args.bearers
    rows: dict[str, list[float]] = {}

    def note(name: str, value: float) -> None:
        rows.setdefault(name, []).append(value)

    with topology("f") as t:
        config = bench_config(t.host, max_tunnels=n + 1000)
        backend = FastPathBackend(config)
        backend.start()
        try:
            t0 = time.perf_counter()
            learn(backend, 0, n, time.monotonic())
            print(f"learned {n:,} bearers in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
            after = FastPathBackend._fold
            for r in range(args.rounds):
                for label, fold in (("before", fold_before), ("after", after)):
                    bump(backend, 2 * r + (label == "after"))
                    wall, wait = timed(backend, fold)
                    note(f"{label} changed wall", wall)
                    note(f"{label} changed max wait", wait)
                    wall, wait = timed(backend, fold)
                    note(f"{label} unchanged wall", wall)
                    note(f"{label} unchanged max wait", wait)
                t0 = time.perf_counter()
                backend.stats()
                note("stats()", time.perf_counter() - t0)
                t0 = time.perf_counter()
                total, page = backend.tunnel_page(None, n // 2, 50)
                note("tunnel_page(50 rows)", time.perf_counter() - t0)
                assert total == n
                assert len(page) == 50
                print(f"round {r + 1} done", file=sys.stderr, flush=True)
            report = backend.map_report()
            assert report["tunnels"]["entries"] == 2 * n, report
        finally:
            backend.stop()
    med = {k: statistics.median(v) * 1e3 for k, v in rows.items()}
    print(f"Fast path counter fold at {n:,} bearers ({time.ctime()}); medians of {args.rounds}\n")
    print(f"{'fold':28}{'before (ms)':>14}{'after (ms)':>14}{'after/before':>14}")
    for case in ("changed wall", "changed max wait", "unchanged wall", "unchanged max wait"):
        b, a = med[f"before {case}"], med[f"after {case}"]
        print(f"{case:28}{b:>14,.1f}{a:>14,.1f}{a / b:>13.3f}x")
    for name in ("stats()", "tunnel_page(50 rows)"):
        print(f"{name:28}{'':>14}{med[name]:>14,.1f}")


if __name__ == "__main__":
    main()
