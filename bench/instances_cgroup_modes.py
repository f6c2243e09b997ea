"""Warm creation and pause/resume on cgroup v1 (hybrid) against pure cgroup v2, same kernel.

    .venv/bin/python bench/instances_cgroup_modes.py [--rounds 2] [--creates 40] [--pauses 100]

Operators' hosts run cgroup v2; these development machines are hybrid (v1 controllers), and
the only v2 host here is the test VM, which QEMU runs under TCG emulation (no usable KVM):
its absolute timings are many times a real host's and say nothing alone. What it can say is
how the two modes compare on one kernel: the VM is booted in turn with the development
machines' hybrid layout (``FLUIDEDGE_VM_CGROUP=hybrid``) and with pure v2, ``--rounds`` times
each (hybrid, v2, hybrid, v2...: whatever the host does hits both), and each boot runs the
same payload (``--payload``): a bench daemon (``store_synchronous = "full"``), ``--creates``
warm creations of the built-in ``idle`` template (its busybox image, a user namespace per
shell) with every pool full before each, then ``--pauses`` pause + resume of one instance,
through the lean keep-alive client over TCP (the rows; ``pause_resume`` also sends the same
pairs over the Unix socket and httpx in between, as in ``bench/instances_latency.py``). The
v2 / v1 ratio of each p50 is the figure; multiplied by this host's v1 figures
(``bench/instances_latency.py``) it estimates v2 on a real host, as far as emulation preserves
the ratio of the two kernel paths.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from instances_common import BenchDaemon, machine, pct
from instances_latency import api_runs, pause_resume

REPO = Path(__file__).resolve().parent.parent
MARK = "FE-CGROUP-MODES "
MODES = ("hybrid", "v2")
ROWS = (
    ("create", "warm create idle, API -> running"),
    ("total", "  server total"),
    ("shell", "    shell (take from the pool)"),
    ("config", "    config (claim, cgroup knobs)"),
    ("start", "    start (go to the launcher)"),
    ("durable", "    durable (the store's flush)"),
    ("ready", "    ready (exec seen)"),
    ("pause", "pause, API"),
    ("pause_op", "  freezer op"),
    ("resume", "resume, API"),
    ("resume_op", "  thaw op"),
)


def payload(creates: int, pauses: int) -> dict[str, Any]:
    """Inside the VM: one daemon, the creations and the pause/resume pairs, measured as
    ``bench/instances_latency.py`` measures them (its ``api_runs`` and ``pause_resume``)."""
    daemon = BenchDaemon(
        {"pool_scale": 1.0, "prepare_workers": 2, "cpu_overcommit": 50.0},
        startup_timeout=900,
    )
    try:
        stats = daemon.http.get("/v1/stats").json()
        wall, timings = api_runs(daemon, "idle", creates, cold=False)
        paused = pause_resume(daemon, pauses)
    finally:
        daemon.close()
    out: dict[str, Any] = {
        "cgroups": {key: stats.get(key) for key in ("cgroup", "runtime", "launcher")},
        "create": wall,
        "pause": paused["pause_api"],
        "pause_op": paused["pause_op"],
        "resume": paused["resume_api"],
        "resume_op": paused["resume_op"],
    }
    for phase in ("total", "shell", "config", "start", "durable", "ready"):
        out[phase] = [timing.get(phase, 0.0) for timing in timings]
    return out


def boot(mode: str, creates: int, pauses: int) -> dict[str, Any]:
    """One VM boot in ``mode`` running the payload; its result."""
    env = dict(os.environ, FLUIDEDGE_VM_CGROUP=mode)
    argv = [
        str(REPO / "scripts" / "vmtest"), "--cmd", "--", ".venv/bin/python",
        "bench/instances_cgroup_modes.py", "--payload",
        "--creates", str(creates), "--pauses", str(pauses),
    ]  # fmt: skip
    begin = time.monotonic()
    run = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    lines = [line for line in run.stdout.splitlines() if line.startswith(MARK)]
    if run.returncode != 0 or not lines:
        tail = "\n".join((run.stdout + run.stderr).splitlines()[-30:])
        raise RuntimeError(f"VM run ({mode}) failed, rc {run.returncode}:\n{tail}")
    result: dict[str, Any] = json.loads(lines[-1][len(MARK) :])
    print(
        f"  {mode:6s} boot done in {time.monotonic() - begin:5.0f} s: {result['cgroups']}",
        flush=True,
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--creates", type=int, default=40)
    parser.add_argument("--pauses", type=int, default=100)
    parser.add_argument("--payload", action="store_true", help="(inside the VM)")
    args = parser.parse_args()
    if args.payload:
        print(MARK + json.dumps(payload(args.creates, args.pauses)), flush=True)
        return
    print(
        f"instances cgroup modes bench: host {machine()}; VM under QEMU TCG, "
        f"{args.rounds} boots per mode, alternated"
    )
    series: dict[str, dict[str, list[float]]] = {m: {k: [] for k, _ in ROWS} for m in MODES}
    for _ in range(args.rounds):
        for mode in MODES:
            result = boot(mode, args.creates, args.pauses)
            for key, _ in ROWS:
                series[mode][key] += result[key]
    print("milliseconds inside the emulated VM (only the ratios mean anything)")
    for key, label in ROWS:
        v1, v2 = series["hybrid"][key], series["v2"][key]
        print(
            f"  {label:34s} v1 p50 {pct(v1, 50):8.3f}  v2 p50 {pct(v2, 50):8.3f}  "
            f"v2/v1 {pct(v2, 50) / pct(v1, 50):5.2f}x  (n={len(v1)}/{len(v2)})"
        )


if __name__ == "__main__":
    main()
