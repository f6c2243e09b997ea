"""What ``synchronous=FULL`` (a 2xx means on disk) costs against ``NORMAL`` (crash-safe only).

Two real daemons run side by side, one per setting, with the instance manager and the TOF
(``none`` backend: a service POST is validation + one store transaction). The runs alternate
between them request by request, so the machine's noise hits both alike:

- warm instance create: ``POST /v1/instances`` (template ``idle``) from a full pool, API round
  trip through a keep-alive ``http.client`` connection, then DELETE (not timed) and a wait until
  the pool is full again with nothing in preparation;
- TOF service POST: ``POST /service`` round trip, then DELETE (not timed);
- store commit: one ``Store.transaction()`` inserting a row, in process (the fsync alone);
- deferred flush (FULL only): what a warm creation's claim does, in process: a
  ``durable=False`` commit, ``--work-us`` of busy work (the creation's config and exec), then
  ``Store.sync()``, timed alone; with the WAL's write-out started at the commit
  (``sync_file_range``, the store's behaviour) against without it (the ``fdatasync`` writes
  the pages itself), alternated.

The state directories are on the file system of ``--dir`` (default: the system temp dir); a
tmpfs would make fsync free, so the file system type is printed. Reports p50/p99 in ms per
setting and the FULL/NORMAL ratio.

    .venv/bin/python bench/store_durability.py [--creates 150] [--services 400] [--commits 400]
        [--work-us 300]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from fluidedge.core import store as store_module
from fluidedge.core.store import Store, Synchronous
from instances_common import BenchDaemon, LeanClient, machine, pct

SETTINGS: tuple[Synchronous, ...] = ("full", "normal")


def fs_type(path: Path) -> str:
    out = subprocess.run(
        ["stat", "-f", "-c", "%T", str(path)], capture_output=True, text=True, check=False
    )
    return out.stdout.strip() or "?"


def warm_creates(daemons: dict[Synchronous, BenchDaemon], runs: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {s: [] for s in SETTINGS}
    clients = {s: LeanClient(d.port) for s, d in daemons.items()}
    try:
        for run in range(runs):
            order = SETTINGS if run % 2 == 0 else SETTINGS[::-1]
            for setting in order:
                daemon, client = daemons[setting], clients[setting]
                daemon.wait_pools()
                client.ping()
                begin = time.perf_counter()
                status, body = client.post("/v1/instances", {"name": "d1", "template": "idle"})
                took = (time.perf_counter() - begin) * 1000
                assert status == 201, body
                assert body["path"] == "warm", body
                times[setting].append(took)
                daemon.http.delete("/v1/instances/d1").raise_for_status()
    finally:
        for client in clients.values():
            client.close()
    return times


def service_posts(daemons: dict[Synchronous, BenchDaemon], runs: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {s: [] for s in SETTINGS}
    clients = {s: LeanClient(d.port) for s, d in daemons.items()}
    body = {"name": "b1", "serviceIP": "198.18.70.1", "applicationIP": "198.19.70.1"}
    try:
        for run in range(runs):
            order = SETTINGS if run % 2 == 0 else SETTINGS[::-1]
            for setting in order:
                client = clients[setting]
                client.ping()
                begin = time.perf_counter()
                status, answer = client.post("/service", body)
                took = (time.perf_counter() - begin) * 1000
                assert status == 200, answer
                times[setting].append(took)
                daemons[setting].http.delete("/service/b1").raise_for_status()
    finally:
        for client in clients.values():
            client.close()
    return times


def store_commits(directory: Path, runs: int) -> dict[str, list[float]]:
    stores = {s: Store(directory / f"commit-{s}.sqlite", synchronous=s) for s in SETTINGS}
    for store in stores.values():
        store.migrate("bench", ["CREATE TABLE rows (n INTEGER)"])
    times: dict[str, list[float]] = {s: [] for s in SETTINGS}
    for run in range(runs):
        order = SETTINGS if run % 2 == 0 else SETTINGS[::-1]
        for setting in order:
            begin = time.perf_counter()
            with stores[setting].transaction() as conn:
                conn.execute("INSERT INTO rows VALUES (?)", (run,))
            times[setting].append((time.perf_counter() - begin) * 1000)
    for store in stores.values():
        store.close()
    return times


def deferred_flushes(directory: Path, runs: int, work_us: float) -> dict[str, list[float]]:
    """The ``sync()`` after a ``durable=False`` commit and ``work_us`` of busy work, with and
    without the write-out started at the commit (see the module docstring)."""
    real = store_module.start_write_back
    stores = {
        "early": Store(directory / "deferred-early.sqlite"),
        "late": Store(directory / "deferred-late.sqlite"),
    }
    for store in stores.values():
        store.migrate("bench", ["CREATE TABLE rows (n INTEGER)"])
    times: dict[str, list[float]] = {name: [] for name in stores}
    try:
        for run in range(runs):
            for name in ("early", "late") if run % 2 == 0 else ("late", "early"):
                store_module.start_write_back = real if name == "early" else lambda fd: True
                with stores[name].transaction(durable=False) as conn:
                    conn.execute("INSERT INTO rows VALUES (?)", (run,))
                until = time.perf_counter() + work_us / 1e6
                while time.perf_counter() < until:
                    pass
                begin = time.perf_counter()
                stores[name].sync()
                times[name].append((time.perf_counter() - begin) * 1000)
    finally:
        store_module.start_write_back = real
        for store in stores.values():
            store.close()
    return times


def row(label: str, times: dict[str, list[float]]) -> str:
    full, normal = times["full"], times["normal"]
    p50 = pct(full, 50) / pct(normal, 50)
    p99 = pct(full, 99) / pct(normal, 99)
    return (
        f"{label:<24} {pct(full, 50):8.3f} {pct(full, 99):8.3f}   "
        f"{pct(normal, 50):8.3f} {pct(normal, 99):8.3f}   {p50:6.2f}x {p99:6.2f}x  n={len(full)}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--creates", type=int, default=150)
    parser.add_argument("--services", type=int, default=400)
    parser.add_argument("--commits", type=int, default=400)
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()))
    parser.add_argument("--work-us", type=float, default=300.0, help="deferred flush's work")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("store_durability: run as root (real runc containers)")
    tempfile.tempdir = str(args.dir)
    daemons = {
        s: BenchDaemon(
            {"pool_scale": 1, "memory_mb": 2048},
            top={"store_synchronous": s},
            tables={"tof": {"backend": "none"}},
        )
        for s in SETTINGS
    }
    try:
        print(f"# store_durability: {machine()}, state on {fs_type(args.dir)} ({args.dir})")
        print(
            f"{'ms':<24} {'FULL p50':>8} {'p99':>8}   {'NORMAL p50':>8} {'p99':>8}   "
            "FULL/NORMAL p50, p99"
        )
        print(row("store commit", store_commits(daemons["full"].workdir, args.commits)))
        print(row("TOF service POST", service_posts(daemons, args.services)))
        print(row("warm instance create", warm_creates(daemons, args.creates)))
        deferred = deferred_flushes(daemons["full"].workdir, args.commits, args.work_us)
        early, late = deferred["early"], deferred["late"]
        print(
            f"deferred flush (FULL), sync() after a durable=False commit and "
            f"{args.work_us:.0f} us of work, ms:\n"
            f"  write-out started at the commit  p50 {pct(early, 50):7.3f}  p99 "
            f"{pct(early, 99):7.3f}\n"
            f"  written by the fdatasync         p50 {pct(late, 50):7.3f}  p99 "
            f"{pct(late, 99):7.3f}\n"
            f"  started / not: p50 {pct(early, 50) / pct(late, 50):.2f}x, "
            f"p99 {pct(early, 99) / pct(late, 99):.2f}x  n={len(early)}"
        )
    finally:
        for daemon in daemons.values():
            daemon.close()


if __name__ == "__main__":
    main()
