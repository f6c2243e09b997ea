"""A durable commit into a pre-sized WAL against one that grows the WAL file.

Under ``synchronous = "full"`` every commit fsyncs the WAL. When the commit appends past the
file's end, the fsync must also journal the new size (ext4: a journal commit, a second device
flush); into space already written, it flushes the data only. The store therefore writes its WAL
out to the ``wal_autocheckpoint`` size once (:meth:`fluidedge.core.store.Store._size_wal`).
This bench opens two stores on the same disk, one as the daemon does and one with the WAL left
to grow, and times the instance manager's claim transaction (delete a shell row, insert an
instance record of ~1 KiB) in both, alternated with the order rotated so the disk's noise hits
both alike; plus, as the floor, a 1 KiB ``pwrite`` + ``fdatasync`` into a pre-written file.

    .venv/bin/python bench/store_wal_size.py [--commits 400] [--dir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fluidedge.core.store import Store
from instances_common import machine, pct

RECORD = json.dumps({"name": "n", "resources": {"cpus": 0.001}, "pad": "x" * 900})


def open_store(path: Path, *, presize: bool) -> Store:
    store = Store(path)
    if not presize:
        store._wal_sized = True  # the control: leave the WAL to grow
    store.migrate(
        "bench",
        [
            "CREATE TABLE shells (id TEXT PRIMARY KEY)",
            "CREATE TABLE instances (name TEXT PRIMARY KEY, record TEXT)",
        ],
    )
    return store


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--commits", type=int, default=400)
    parser.add_argument("--dir", default=None, help="where the stores go (default: a temp dir)")
    args = parser.parse_args()
    where = Path(tempfile.mkdtemp(prefix="fe-walsize-", dir=args.dir))
    print(f"store WAL size bench: {machine()}, {args.commits} commits each, in {where}")
    stores = {
        "pre-sized WAL (the store)": open_store(where / "sized.sqlite", presize=True),
        "growing WAL (control)": open_store(where / "grown.sqlite", presize=False),
    }
    for store in stores.values():
        with store.transaction() as conn:
            conn.executemany(
                "INSERT INTO shells VALUES (?)", [(str(i),) for i in range(args.commits)]
            )
    floor_fd = os.open(where / "floor", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    os.write(floor_fd, bytes(1 << 20))
    os.fsync(floor_fd)
    times: dict[str, list[float]] = {name: [] for name in stores}
    times["pwrite + fdatasync (floor)"] = []
    names = list(times)
    for index in range(args.commits):
        shift = index % len(names)
        for name in names[shift:] + names[:shift]:
            begin = time.perf_counter()
            if name in stores:
                with stores[name].transaction() as conn:
                    conn.execute("DELETE FROM shells WHERE id = ?", (str(index),))
                    conn.execute("INSERT INTO instances VALUES (?, ?)", (f"i{index}", RECORD))
            else:
                os.pwrite(floor_fd, RECORD.encode(), (index % 512) * 2048)
                os.fdatasync(floor_fd)
            times[name].append((time.perf_counter() - begin) * 1000)
    os.close(floor_fd)
    control = pct(times["growing WAL (control)"], 50)
    print("durable commit, ms")
    for name, values in times.items():
        print(
            f"  {name:28s} p10 {pct(values, 10):6.3f}  p50 {pct(values, 50):6.3f}  "
            f"p90 {pct(values, 90):6.3f}   p50 / control {pct(values, 50) / control:5.2f}x"
        )
    for store in stores.values():
        store.close()


if __name__ == "__main__":
    main()
