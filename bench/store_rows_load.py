"""What reading a part's rows through ``fluidedge.core.rows`` costs at start.

The TOF's service catalog is read at every start: before, one ``SELECT`` and a ``Service``
built per row; now, :func:`fluidedge.core.rows.load` (the row's ``rowid`` selected too, each
decode wrapped, the name and both addresses checked as the API checks them). This bench fills
one real store (a file) with N services and times both readings of the same rows, alternated so
the host's noise hits both alike; p50 in ms and the ratio. Then it damages one row in 1,000 and
times the start that sets them aside (one durable transaction per row).

    .venv/bin/python bench/store_rows_load.py [--services 10000] [--rounds 15]
"""

from __future__ import annotations

import argparse
import logging
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fluidedge.core import rows
from fluidedge.core.store import Store
from fluidedge.tof.catalog import _stored_service
from fluidedge.tof.models import Service
from instances_common import machine, pct

COLUMNS = ("name", "service_ip", "application_ip", "ondemand", "classify", "action")


def fill(store: Store, count: int) -> None:
    store.migrate(
        "bench",
        [
            "CREATE TABLE tof_service (name TEXT PRIMARY KEY, service_ip TEXT NOT NULL, "
            "application_ip TEXT NOT NULL, ondemand TEXT, classify TEXT, "
            "action TEXT NOT NULL DEFAULT 'offload')"
        ],
    )
    with store.transaction() as conn:
        conn.executemany(
            "INSERT INTO tof_service (name, service_ip, application_ip) VALUES (?, ?, ?)",
            [
                (f"svc{i}", f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}", "192.0.2.1")
                for i in range(count)
            ],
        )


def before(store: Store) -> list[Service]:
    """The reading as it was: one query, a Service per row, nothing checked."""
    return [
        Service(r["name"], r["service_ip"], r["application_ip"], None, None, r["action"])
        for r in store.query(f"SELECT {', '.join(COLUMNS)} FROM tof_service")  # noqa: S608 (constants)
    ]


def after(store: Store) -> list[Service]:
    return rows.load(store, "tof_service", COLUMNS, _stored_service)


def main() -> None:
    logging.getLogger("fluidedge.core.rows").setLevel(logging.CRITICAL)  # the set-aside lines
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--services", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="fe-rows-") as tmp:
        path = Path(tmp) / "store.sqlite"
        store = Store(path)
        fill(store, args.services)
        times: dict[str, list[float]] = {"before": [], "after": []}
        for index in range(args.rounds):
            order = [("before", before), ("after", after)]
            for name, read in order if index % 2 == 0 else order[::-1]:
                begin = time.perf_counter()
                loaded = read(store)
                times[name].append((time.perf_counter() - begin) * 1000)
                if len(loaded) != args.services:
                    raise SystemExit(f"{name}: {len(loaded)} rows, not {args.services}")
        damaged = args.services // 1000
        with sqlite3.connect(path) as db:
            db.executemany(
                "UPDATE tof_service SET service_ip = 'not-an-ip' WHERE name = ?",
                [(f"svc{i * 1000}",) for i in range(damaged)],
            )
        db.close()
        begin = time.perf_counter()
        loaded = after(store)
        aside_ms = (time.perf_counter() - begin) * 1000
        store.close()
    print(f"store rows load: {machine()}, {args.services} TOF services, {args.rounds} rounds")
    p50 = {name: pct(values, 50) for name, values in times.items()}
    for name, values in times.items():
        print(f"  {name:7s} p50 {p50[name]:8.2f} ms  p90 {pct(values, 90):8.2f} ms")
    print(f"  after / before p50 = {p50['after'] / p50['before']:.2f}x")
    print(
        f"  with {damaged} rows damaged: {len(loaded)} loaded, {damaged} set aside, "
        f"{aside_ms:.1f} ms ({aside_ms / max(1, damaged):.2f} ms a row set aside)"
    )


if __name__ == "__main__":
    main()
