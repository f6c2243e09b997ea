"""cgroup v2 delegation as under systemd with ``Delegate=yes``: a daemon that is not in the root
cgroup puts instances below its own cgroup and moves itself into a leaf beside them.

v2 only (the hybrid development hosts have no unified controllers): it runs in the VM tier
(``scripts/vmtest``), on pure v2. The "daemon" is a child Python process placed in a cgroup that
stands for the unit's (``/<unit>.service``), so the test process itself never moves.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fluidedge.instances import cgroups

pytestmark = pytest.mark.root

CHILD = r"""
import json, sys
from pathlib import Path
from fluidedge.core.store import Store
from fluidedge.instances.manager import InstancesConfig, Manager
from fluidedge.instances.models import InstanceRequest
unit, tmp = sys.argv[1], Path(sys.argv[2])
Path(f"/sys/fs/cgroup{unit}/cgroup.procs").write_text("0")  # "systemd started us here"
m = Manager(InstancesConfig(pool_scale=0), Store(tmp / "db.sqlite"), tmp / "state")
m.start()
try:
    view = m.create_instance(InstanceRequest(name="a", template="idle"))
    out = {
        "stats": m.stats()["cgroup"],
        "own": Path("/proc/self/cgroup").read_text().strip(),
        "leftover": [str(p) for p in m.cgroups.leftover(view.id)],
        "procs": m.cgroups.procs(view.id),
        "pid": view.pid,
    }
finally:
    m.purge()
out["after"] = [str(p) for p in m.cgroups.leftover(view.id)]
print(json.dumps(out))
"""


@pytest.mark.skipif(
    cgroups.mount_kind(Path("/proc/self/mountinfo").read_text()) != "v2",
    reason="cgroup v2 delegation: runs in the VM tier (scripts/vmtest), this host is not v2",
)
def test_delegated_unit_puts_instances_below_itself(tmp_path: Path) -> None:
    unit = f"/fe-test-{os.getpid()}.service"
    unit_dir = Path(f"/sys/fs/cgroup{unit}")
    unit_dir.mkdir()
    try:
        result = subprocess.run(
            [sys.executable, "-c", CHILD, unit, str(tmp_path)],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert result.returncode == 0, result.stderr[-3000:]
        got = json.loads(result.stdout.strip().splitlines()[-1])
    finally:
        for leaf in (
            unit_dir / "instances" / "daemon",
            unit_dir / "instances",
            unit_dir / "daemon",
            unit_dir,
        ):
            if leaf.exists():
                leaf.rmdir()
    stats = got["stats"]
    assert stats["mode"] == "v2"
    assert stats["parent"] == f"{unit}/instances"
    assert stats["daemon_cgroup"] == f"{unit}/instances/daemon"
    # it left the unit's cgroup (no internal processes) for a leaf beside its instances
    assert got["own"] == f"0::{unit}/instances/daemon"
    assert stats["idle_start"] is True
    assert {"cpuset", "cpu", "memory", "pids"} <= set(stats["controllers"])
    (leftover,) = got["leftover"]
    assert leftover.startswith(f"/sys/fs/cgroup{unit}/instances/")
    assert got["pid"] in got["procs"]
    assert got["after"] == []
