"""A warm create with and without the claim's fsync (issue 17, the first packet under load).

    .venv/bin/python bench/superfluid_claim.py [--pairs 25] [--freezer]

One instance manager (real runc, the built-in ``idle`` template, its warm pool), ``--pairs``
pairs of warm creations, alternating ``create_instance(durable=True)`` (the API's: the claim
of the shell waits for the WAL's fsync before the workload starts) and ``durable=False`` (the
superfluid controller's: the same commit without the fsync; kill -9 safe). Each instance is
deleted and the pool refilled before the next. Prints the manager's own timing (``total`` and
the ``config`` phase, where the claim is waited for) per variant: both see the same load.

``--freezer``: also the v1 freezer's thaw write with and without another frozen cgroup (the
static key the anchor keeps on; docs/superfluid.md, "Resume latency").
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
import time
from pathlib import Path

from _tof_common import percentile
from fluidedge.core.store import Store
from fluidedge.instances.manager import InstancesConfig, Manager
from fluidedge.instances.models import InstanceRequest

FREEZER = Path("/sys/fs/cgroup/freezer")


def claims(pairs: int) -> dict[bool, list[tuple[float, float]]]:
    work = Path(tempfile.mkdtemp(prefix="sfclaim-"))
    manager = Manager(
        InstancesConfig.model_validate({"pool_scale": 0.5}),
        Store(work / "db.sqlite"),
        work / "state",
    )
    manager.start()
    out: dict[bool, list[tuple[float, float]]] = {True: [], False: []}
    try:
        if not manager.wait_pools(120):
            raise SystemExit("the pool did not fill")
        for i in range(2 * pairs):
            durable = i % 2 == 0
            manager.wait_pools(60)
            name = f"sfclaim{os.getpid() % 10000}-{i}"
            view = manager.create_instance(
                InstanceRequest(name=name, template="idle"), durable=durable
            )
            if view.path != "warm":
                raise SystemExit(f"{name}: {view.path} path (the pool was not refilled)")
            timing = view.timing.model_dump()
            out[durable].append((timing["total"], timing["config"]))
            manager.delete_instance(name)
    finally:
        manager.purge()
    return out


def _read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""  # a cgroup that went away meanwhile


def _state(directory: Path, value: str) -> str:
    fd = os.open(directory / "freezer.state", os.O_RDWR)
    try:
        os.write(fd, value.encode())
        return os.pread(fd, 64, 0).decode().strip()
    finally:
        os.close(fd)


def freezer(n: int = 200) -> dict[str, list[float]]:
    """Thaw-write times (us) of a frozen ``sleep``, alone and beside another frozen cgroup."""
    base = FREEZER / f"sfclaim{os.getpid()}"
    target, anchor = base / "target", base / "other"
    for d in (target, anchor):
        d.mkdir(parents=True)
    sleeper = subprocess.Popen(["sleep", "3600"])
    out: dict[str, list[float]] = {"alone": [], "beside another frozen cgroup": []}
    # The instance managers' anchors keep the key on: thawed for the measurement, then back.
    anchors = [a for a in FREEZER.rglob("fluidedge-freezer-anchor") if a.is_dir()]
    for a in anchors:
        _state(a, "THAWED")
    frozen = [d for d in FREEZER.rglob("freezer.state") if _read(d) not in ("THAWED", "")]
    if frozen:
        print(f"note: {len(frozen)} other frozen cgroup(s) on the host: no flip to measure")
    try:
        (target / "cgroup.procs").write_text(str(sleeper.pid))
        for i in range(2 * n):
            other = i % 2 == 1
            if other:
                _state(anchor, "FROZEN")
            while _state(target, "FROZEN") != "FROZEN":
                time.sleep(0.0002)
            time.sleep(0.005)
            fd = os.open(target / "freezer.state", os.O_WRONLY)
            begin = time.perf_counter()
            os.write(fd, b"THAWED")
            took = (time.perf_counter() - begin) * 1e6
            os.close(fd)
            _state(anchor, "THAWED")
            out["beside another frozen cgroup" if other else "alone"].append(took)
            time.sleep(0.005)
    finally:
        for a in anchors:
            _state(a, "FROZEN")
        _state(target, "THAWED")
        sleeper.kill()
        sleeper.wait()
        time.sleep(0.1)
        for d in (target, anchor, base):
            d.rmdir()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", type=int, default=25)
    parser.add_argument("--freezer", action="store_true")
    args = parser.parse_args()
    p = percentile
    result = claims(args.pairs)
    print(f"warm create, {args.pairs} pairs (ms, the manager's timing)")
    for durable, rows in result.items():
        total, config = [r[0] for r in rows], [r[1] for r in rows]
        label = "claim with fsync (API)" if durable else "claim without fsync (on demand)"
        print(
            f"  {label:34} total p50 {p(total, 0.5):6.2f} p90 {p(total, 0.9):6.2f}  "
            f"config p50 {p(config, 0.5):6.2f} p90 {p(config, 0.9):6.2f}"
        )
    if args.freezer:
        if not (FREEZER / "cgroup.procs").exists():
            raise SystemExit("no cgroup v1 freezer here")
        times = freezer()
        print("v1 freezer: one write of THAWED (us; the only frozen cgroup of ours vs another "
              "one kept frozen; other frozen cgroups on the host keep the key on too)")  # fmt: skip
        for label, values in times.items():
            print(
                f"  {label:30} p50 {p(values, 0.5):7.0f} p90 {p(values, 0.9):7.0f} "
                f"p99 {p(values, 0.99):7.0f} max {max(values):7.0f}"
            )


if __name__ == "__main__":
    main()
