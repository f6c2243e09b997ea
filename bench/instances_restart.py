"""``restart = "always"``: from a workload's kill -9 to the instance running again.

``--instances`` instances (20 by default) of a template with the policy, each with a veth and
an address on a linuxbridge network, under a real instance manager (runc, cgroups, veths).
They run for longer than ``restart.STABLE_S`` (so no back-off applies), then each workload is
killed in turn and the time until the manager reports the instance running again (new pid,
same id) is measured: the exit's report (pidfd), the teardown of what is left, and the cold
path with the same id. The baseline, in the same invocation: a cold creation of the same
template (``cold=True``), measured from the call to its return.

Run as root: ``.venv/bin/python bench/instances_restart.py [--instances 20]``. Everything it
makes (instances, bridge, state directory) is removed at the end.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fluidedge.core.store import Store
from fluidedge.instances import restart
from fluidedge.instances.manager import InstancesConfig, Manager
from fluidedge.instances.models import InstanceRequest, NetworkSpec, TemplateSpec
from instances_common import pct

BRIDGE = f"fbk{os.getpid() % 100000}"


def _template() -> TemplateSpec:
    return TemplateSpec.model_validate(
        {
            "name": "ridle",
            "image": "busybox",
            "command": ["/bin/busybox", "sleep", "2147483647"],
            "resources": {"cpus": 0.01, "memory_mb": 8, "pids": 8},
            "readiness": {"kind": "started"},
            "interfaces": [{"name": "eth0", "network": "knet"}],
            "pool": {"size": 0},
            "restart": "always",
        }
    )


def _request(index: int, **extra: object) -> InstanceRequest:
    return InstanceRequest.model_validate(
        {
            "name": f"r{index}",
            "template": "ridle",
            "interfaces": {"eth0": {"addresses": [f"198.18.90.{index + 2}/24"]}},
            **extra,
        }
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=20)
    args = parser.parse_args()
    logging.disable(logging.WARNING)  # one exit and one restart line per instance
    workdir = Path(tempfile.mkdtemp(prefix="fe-bench-restart-"))
    manager = Manager(
        InstancesConfig(pool_scale=0, builtin_templates=True),
        Store(workdir / "db.sqlite"),
        workdir / "state",
    )
    manager.start()
    try:
        manager.create_network(NetworkSpec(name="knet", bridge=BRIDGE))
        manager.create_template(_template())
        cold = []
        for index in range(args.instances):
            started = time.perf_counter()
            manager.create_instance(_request(index, cold=True))
            cold.append((time.perf_counter() - started) * 1000)
        time.sleep(restart.STABLE_S + 0.5)  # a long run: no back-off
        again = []
        for index in range(args.instances):
            inst = manager.instances[f"r{index}"]
            old_pid, cid = inst.pid, inst.id
            assert old_pid is not None
            started = time.perf_counter()
            os.kill(old_pid, signal.SIGKILL)
            while True:
                now = manager.instances.get(f"r{index}")
                if (
                    now is not None
                    and now.pid not in (None, old_pid)
                    and now.current_state() == "running"
                ):
                    break
                if time.perf_counter() - started > 30:
                    raise RuntimeError(f"r{index} was not made again")
                time.sleep(0.0005)
            again.append((time.perf_counter() - started) * 1000)
            if now.id != cid or now.restarts != 1:
                raise RuntimeError(f"r{index}: id {now.id} restarts {now.restarts}")
        print(
            f'restart = "always": {args.instances} instances, each killed (kill -9) after '
            f"{restart.STABLE_S:g} s of running, one at a time"
        )
        r50, c50 = pct(again, 50), pct(cold, 50)
        print(f"  kill -> running again (same id)   p50 {r50:8.2f}  p99 {pct(again, 99):8.2f} ms")
        print(f"  cold creation (baseline)          p50 {c50:8.2f}  p99 {pct(cold, 99):8.2f} ms")
        print(f"  restart p50 / cold creation p50 = {r50 / c50:.2f}x")
    finally:
        manager.purge()
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
