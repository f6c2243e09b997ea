"""Density: N concurrent idle instances through the API; creation latency as the count grows.

Creates ``--count`` instances of the built-in ``idle`` template one after the other (all stay
running), against a real daemon whose prepare workers refill the pool in the background, and
reports:

- creation latency (API wall time and server total) of the 1st, 10th, 100th, 1000th... instance
  and per-decile medians (LightVM's point: the curve must stay flat, within 1.5x);
- memory overhead per idle instance: drop of MemAvailable divided by the count (the pool is
  back to its size at both measurements), and the mean cgroup ``memory.usage_in_bytes``;
- the cost of one pooled shell (RSS of its launcher, waiting on the go FIFO);
- CPU: the daemon's CPU time per created instance (its own and its reaped children's, i.e. the
  ``runc create`` of the refill, so one creation end to end), the CPU an idle instance and the
  daemon use over a quiet window once the count is reached, and what that extrapolates to for
  10,000 instances (memory against MemTotal, pids against ``kernel.pid_max``, CPU time of the
  creations on this host's CPUs): the figure to quote where 10,000 cannot be run;
- per-operation cost as the count grows (issue 12: flat within 1.5x): at 1, 10, 100, 1000...
  instances, median of several pause + resume of the first instance, a read of one
  instance, a delete of a fresh instance (lean keep-alive client), a page of 100 instances
  (``?limit=100``) and the list of all instances (O(N) by nature: reported per instance too).

    .venv/bin/python bench/instances_density.py [--quick] [--count N] [--pool N]
        [--memory-overcommit X] [--pids-overcommit X] [--store-synchronous normal]
        [--burst] [--workers N] [--max-minutes M] [--runtime crun]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fluidedge.instances import runc
from fluidedge.instances.cgroups import detect
from fluidedge.instances.timing import PHASES
from fluidedge.measure.machine import meminfo_kib
from instances_common import BenchDaemon, LeanClient, kernel_kib, machine

CHECKPOINTS = (1, 10, 100, 500, 1000, 2000, 5000, 10000)
# The operations whose cost should not grow with the count (a page of 100 included; all: linear).
FLAT_OPS = ("pause+resume", "get one", "list 100", "delete")
PAGE = 100  # the page the per-operation costs read ("list 100")


def _timed(fn: Any, runs: int) -> float:
    """Median ms of ``runs`` calls of ``fn``."""
    out = []
    for _ in range(runs):
        begin = time.perf_counter()
        fn()
        out.append((time.perf_counter() - begin) * 1000)
    return statistics.median(out)


def _flat_ratios(ops: dict[int, dict[str, float]]) -> str:
    """Each flat operation's cost at the largest N over its cost at the smallest N; a page of
    100 from the smallest N at which it holds 100 (below, it holds fewer and costs less)."""
    most = max(ops)
    parts = []
    for name in FLAT_OPS:
        full = [n for n in ops if n >= PAGE] if name == "list 100" else list(ops)
        if name in ops[most] and full:
            base = min(full)
            parts.append(f"{name} {ops[most][name] / ops[base][name]:.2f}x (N={base})")
    return f"ratio at N={most} / at N: " + ", ".join(parts)


def op_costs(daemon: BenchDaemon, count: int, template: str) -> dict[str, float]:
    """Per-operation costs with ``count`` instances running (see the module docstring)."""
    lean = LeanClient(daemon.port)
    try:
        lean.ping()

        def call(method: str, path: str, body: dict[str, Any] | None = None) -> Any:
            data = None if body is None else json.dumps(body)
            lean.conn.request(method, path, body=data, headers=lean.headers)
            response = lean.conn.getresponse()
            payload = response.read()
            if response.status >= 300:
                raise RuntimeError(f"{method} {path}: {response.status} {payload[:200]!r}")
            return payload

        def pause_resume() -> None:
            call("POST", "/v1/instances/n0/pause")
            call("POST", "/v1/instances/n0/resume")

        costs = {
            "pause+resume": _timed(pause_resume, 10),
            "get one": _timed(lambda: call("GET", "/v1/instances/n0"), 10),
            "list all": _timed(lambda: call("GET", "/v1/instances"), 3),
            "list 100": _timed(lambda: call("GET", f"/v1/instances?limit={PAGE}"), 10),
        }
        deletes = []
        for index in range(3):
            daemon.wait_pool(template)
            lean.ping()
            call("POST", "/v1/instances", {"name": f"probe{count}x{index}", "template": template})
            begin = time.perf_counter()
            call("DELETE", f"/v1/instances/probe{count}x{index}")
            deletes.append((time.perf_counter() - begin) * 1000)
        costs["delete"] = statistics.median(deletes)
        # what the daemon itself holds: nothing per instance (no thread, no descriptor)
        pid = daemon.process.pid
        costs["daemon fds"] = float(len(os.listdir(f"/proc/{pid}/fd")))
        status = Path(f"/proc/{pid}/status").read_text().split("\n")
        fields = dict(line.split(":", 1) for line in status if ":" in line)
        costs["daemon threads"] = float(fields["Threads"])
        costs["daemon RSS MiB"] = int(fields["VmRSS"].split()[0]) / 1024
        return costs
    finally:
        lean.close()


TICKS = os.sysconf("SC_CLK_TCK")
IDLE_WINDOW_S = 5.0


def cpu_seconds(pid: int, *, children: bool = False) -> float:
    """CPU time (user + system) of ``pid``, with its reaped children's if ``children``; 0 if
    it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    # after the command: state (0) ... utime (11), stime (12), cutime (13), cstime (14)
    ticks = int(fields[11]) + int(fields[12])
    if children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / TICKS


def _meminfo_mb(key: str) -> float:
    value = meminfo_kib(Path("/proc/meminfo").read_text(), key)
    return float("nan") if value is None else value / 1024


def mem_total_mb() -> float:
    return _meminfo_mb("MemTotal")


def mem_available_mb() -> float:
    return _meminfo_mb("MemAvailable")


def _pids_current(instances: list[dict[str, Any]]) -> list[int]:
    """``pids.current`` of each instance's cgroup (skipping the ones gone meanwhile)."""
    host_cgroups = detect()
    out = []
    for inst in instances:
        try:
            out.append(host_cgroups.pids_current(inst["id"]))
        except OSError:
            continue
    return out


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="100 instances instead of 1000")
    parser.add_argument("--count", type=int, default=None)
    parser.add_argument("--pool", type=int, default=8, help="idle pool size")
    parser.add_argument(
        "--burst",
        action="store_true",
        help="do not wait for the pool to be full between creations (refill competes)",
    )
    parser.add_argument(
        "--memory-overcommit", type=float, default=1.0, help="daemon memory_overcommit"
    )
    parser.add_argument(
        "--pids-overcommit",
        type=float,
        default=1.0,
        help="admission's pids_overcommit (the idle template's 8-pid limit admits "
        "pid_max * 0.75 / 8 instances at 1.0: 3,072 for pid_max 32,768)",
    )
    parser.add_argument(
        "--store-synchronous",
        choices=["full", "normal"],
        default="full",
        help="the daemon's store_synchronous (normal: no fsync per commit, so the shared "
        "disk's fsync latency does not mask how creation scales with the count)",
    )
    parser.add_argument("--workers", type=int, default=2, help="daemon prepare_workers")
    parser.add_argument(
        "--mounts",
        choices=("lean", "full"),
        default="lean",
        help="lean: the built-in idle (no /sys, no /dev/pts); full: the same workload with a "
        "template's default mounts (/sys and /dev/pts: two filesystems more per instance)",
    )
    parser.add_argument(
        "--runtime",
        choices=("runc", "crun"),
        default="runc",
        help="the daemon's OCI runtime (crun: cgroup v2 hosts only, e.g. the VM tier)",
    )
    parser.add_argument(
        "--max-minutes",
        type=float,
        default=None,
        help="stop creating after this long (then measure and clean up as usual): on a busy "
        "host the refill (one runc create per instance) bounds the rate",
    )
    args = parser.parse_args()
    count = args.count or (100 if args.quick else 1000)
    mode = "burst" if args.burst else "paced"
    print(
        f"instances density bench: {count} idle instances ({args.mounts} mounts), "
        f"pool {args.pool}, {mode}, store_synchronous = {args.store_synchronous}, "
        f"runtime {args.runtime}"
    )
    print(f"machine: {machine()}")
    daemon = BenchDaemon(
        {
            "pool_scale": args.pool / 4,
            "prepare_workers": args.workers,
            "cpu_overcommit": 8.0,
            "memory_overcommit": args.memory_overcommit,
            "runtime": args.runtime,
        },
        top={"store_synchronous": args.store_synchronous},
        tables={"admission": {"pids_overcommit": args.pids_overcommit}},
    )
    wall: list[float] = []
    phases: list[dict[str, float]] = []  # each creation's server timing (its phases, total)
    paths: list[str] = []
    ops: dict[int, dict[str, float]] = {}
    template = "idle"
    try:
        if args.mounts == "full":
            idle = daemon.http.get("/v1/templates/idle").json()
            template = "idle-full"
            spec = {**idle, "name": template, "mounts": {"sysfs": True, "devpts": True}}
            response = daemon.http.post("/v1/templates", json=spec)
            if response.status_code != 201:
                raise SystemExit(f"template {template}: {response.status_code} {response.text}")
        daemon.wait_pool(template)
        daemon.wait_pool("httpd")
        time.sleep(1.0)
        mem_before = mem_available_mb()
        kernel_before = kernel_kib()
        state = daemon.workdir / "state" / "instances" / args.runtime
        # No instance exists yet: every container is a pooled shell (its launcher started in
        # the prepare phase, waiting on its go FIFO).
        runtime = runc.Runc(state, args.runtime, kind=args.runtime)
        shells = [c for c in runtime.list() if c.get("pid")]
        shell_rss = statistics.fmean(rss_mb(int(c["pid"])) for c in shells[:10])
        daemon_cpu_before = cpu_seconds(daemon.process.pid, children=True)
        begin_all = time.perf_counter()
        stop_at = None if args.max_minutes is None else time.monotonic() + args.max_minutes * 60
        for index in range(count):
            if stop_at is not None and time.monotonic() > stop_at:
                print(f"  stopped after {args.max_minutes} min: {index} instances created")
                break
            # Paced (default): wait, untimed, until the pool is full again so that creation
            # does not compete with the refill (the seed's "unloaded conditions"); burst: only
            # until a shell is ready.
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                pools = {p["template"]: p for p in daemon.http.get("/v1/pools").json()}
                if pools[template]["ready"] >= (1 if args.burst else pools[template]["target"]):
                    break
                time.sleep(0.005)
            begin = time.perf_counter()
            response = daemon.http.post(
                "/v1/instances", json={"name": f"n{index}", "template": template}
            )
            wall.append((time.perf_counter() - begin) * 1000)
            if response.status_code != 201:
                print(f"instance {index + 1} refused: {response.status_code} {response.text}")
                break
            body = response.json()
            phases.append(body["timing"])
            paths.append(body["path"])
            if index + 1 in CHECKPOINTS:  # untimed for the creation curve
                ops[index + 1] = op_costs(daemon, index + 1, template)
            if (index + 1) % (100 if count <= 2000 else 500) == 0:
                print(f"  {index + 1} instances, last {wall[-1]:.2f} ms ({paths[-1]})", flush=True)
        elapsed = time.perf_counter() - begin_all
        daemon.wait_pool(template)
        daemon_cpu_made = cpu_seconds(daemon.process.pid, children=True) - daemon_cpu_before
        time.sleep(1.0)
        mem_after = mem_available_mb()
        kernel_after = kernel_kib()
        listed = daemon.http.get("/v1/instances").json()
        running = [i for i in listed if i["state"] == "running" and runc.pid_alive(i["pid"])]
        # A quiet window: what idle instances and the daemon cost once nothing is created.
        pids = [int(i["pid"]) for i in running]
        inst_cpu_0 = sum(cpu_seconds(pid) for pid in pids)
        daemon_cpu_0 = cpu_seconds(daemon.process.pid, children=True)
        time.sleep(IDLE_WINDOW_S)
        inst_idle_cpu = sum(cpu_seconds(pid) for pid in pids) - inst_cpu_0
        daemon_idle_cpu = cpu_seconds(daemon.process.pid, children=True) - daemon_cpu_0
        pids_per = _pids_current(running[:200])
        host_cgroups = detect()  # the daemon's default parent on this host
        usage = [host_cgroups.memory_usage(i["id"]) / 2**20 for i in running[:200]]
        inst_rss = statistics.fmean(rss_mb(i["pid"]) for i in running[:50])
        server = [t["total"] for t in phases]
        made = len(server)
        print(f"\ncreated {made} instances in {elapsed:.1f} s; {len(running)} running at the end")
        print(f"paths: warm {paths.count('warm')}, cold {paths.count('cold')}")
        print("\ncreation latency of the k-th instance, ms (API wall / server total)")
        marks = [k for k in (1, 10, 100, 500, 1000, 2000, 5000, 10000) if k <= made]
        for k in marks:
            print(f"  #{k:<5d}  {wall[k - 1]:8.2f} / {server[k - 1]:8.2f}")
        print("median per decile of the run, ms (API wall / server total)")
        step = max(1, made // 10)
        deciles = []
        for start in range(0, made, step):
            chunk_w = wall[start : start + step]
            chunk_s = server[start : start + step]
            deciles.append(statistics.median(chunk_w))
            print(
                f"  #{start + 1:>5d}-{start + len(chunk_w):<5d} "
                f"{statistics.median(chunk_w):8.2f} / {statistics.median(chunk_s):8.2f}"
            )
        print(f"  max/min decile median ratio: {max(deciles) / min(deciles):.2f} (target <= 1.5)")
        # Where a growth is: the server's phases (fluidedge.instances.timing) per decile.
        names = [n for n in PHASES if all(n in t for t in phases)]
        print("server phases, median per decile, ms")
        print("  decile       " + "".join(f"{n:>10s}" for n in names))
        for start in range(0, made, step):
            chunk = phases[start : start + step]
            print(
                f"  #{start + 1:>5d}-{start + len(chunk):<5d}"
                + "".join(f"{statistics.median(t[n] for t in chunk):10.3f}" for n in names)
            )
        if made >= 100:
            first = statistics.median(wall[:10])
            hundredth = statistics.median(wall[95:105])
            last = statistics.median(wall[-10:])
            print(
                "  median of 10 around 1st / 100th / last: "
                f"{first:.2f} / {hundredth:.2f} / {last:.2f} ms, "
                f"max ratio {max(first, hundredth, last) / min(first, hundredth, last):.2f}"
            )
        if made >= 1010:
            around = [wall[:10], wall[995:1005], wall[-10:]]
            around_s = [server[:10], server[995:1005], server[-10:]]
            for label, rows in (("API wall", around), ("server total", around_s)):
                meds = [statistics.median(r) for r in rows]
                print(
                    f"  {label}, median of 10 around 1st / 1,000th / last ({made}th): "
                    + " / ".join(f"{m:.2f}" for m in meds)
                    + f" ms, max ratio {max(meds) / min(meds):.2f} (target <= 1.5)"
                )
        if ops:
            print("\nper-operation cost with N instances running, median ms (lean client)")
            names = list(next(iter(ops.values())))
            print("  N      " + "".join(f" {n:>14s}" for n in names) + "   list per instance")
            for n, row in ops.items():
                per = row["list all"] / (n + 1) * 1000
                print(
                    f"  {n:<6d} " + "".join(f" {row[k]:14.3f}" for k in names) + f"   {per:7.1f} us"
                )
            print("  " + _flat_ratios(ops) + " (target <= 1.5)")
        print("\nmemory")
        print(
            f"  MemAvailable drop: {mem_before - mem_after:.0f} MiB for {made} instances = "
            f"{(mem_before - mem_after) / max(made, 1):.2f} MiB per idle instance (all-in)"
        )
        print(
            f"  of which the kernel's own (Slab + VmallocUsed + Percpu): "
            f"{(kernel_after - kernel_before) / 1024 / max(made, 1):.2f} MiB per instance "
            "(cgroups, namespaces, superblocks, and every memory cgroup's shrinker map, which "
            "grows with the host's superblock count: quadratic in the instances)"
        )
        print(
            f"  cgroup memory.usage per instance (mean of {len(usage)}): "
            f"{statistics.fmean(usage):.2f} MiB"
        )
        print(f"  RSS of an idle instance's process: {inst_rss:.2f} MiB")
        print(f"  RSS of a pooled shell (launcher waiting): {shell_rss:.2f} MiB")
        per_mb = (mem_before - mem_after) / max(made, 1)
        per_cpu = daemon_cpu_made / max(made, 1)
        cpus = os.cpu_count() or 1
        print("\nCPU")
        print(
            f"  daemon CPU per created instance (API + refill's runc create, reaped children "
            f"included): {per_cpu * 1000:.1f} ms ({daemon_cpu_made:.1f} s for {made})"
        )
        print(
            f"  idle, over {IDLE_WINDOW_S:.0f} s with {len(pids)} instances: instances "
            f"{inst_idle_cpu / IDLE_WINDOW_S / max(len(pids), 1) * 1e6:.2f} us CPU per second "
            f"each, daemon {daemon_idle_cpu / IDLE_WINDOW_S * 100:.2f} % of a CPU "
            f"(/proc counts in {1000 / TICKS:.0f} ms ticks: instances "
            f"{round(inst_idle_cpu * TICKS)} ticks in all)"
        )
        pid_max = int(Path("/proc/sys/kernel/pid_max").read_text())
        mean_pids = statistics.fmean(pids_per) if pids_per else float("nan")
        print("\nextrapolated to 10,000 idle instances (from this run's per-instance figures)")
        print(
            f"  memory: {per_mb * 10000 / 1024:.1f} GiB all-in "
            f"(MemTotal {mem_total_mb() / 1024:.1f} GiB)"
        )
        print(f"  pids: {mean_pids * 10000:.0f} ({mean_pids:.2f} per instance; pid_max {pid_max})")
        print(
            f"  creation CPU: {per_cpu * 10000:.0f} s = at least "
            f"{per_cpu * 10000 / cpus / 60:.1f} min on {cpus} CPUs fully used by the daemon "
            f"(the 1.5x flatness target is about latency, this about the time to get there)"
        )
        idle_share = inst_idle_cpu / IDLE_WINDOW_S / max(len(pids), 1)
        print(f"  idle: instances {idle_share * 10000 * 100:.3f} % of a CPU in all")
    finally:
        begin = time.perf_counter()
        names = [i["name"] for i in daemon.http.get("/v1/instances").json()]
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(lambda n: daemon.http.delete(f"/v1/instances/{n}"), names))
        print(f"\ndeleted {len(names)} instances in {time.perf_counter() - begin:.1f} s")
        daemon.close()


if __name__ == "__main__":
    main()
