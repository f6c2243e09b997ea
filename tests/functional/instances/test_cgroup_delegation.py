"""cgroup v2 under systemd: a daemon started in a unit's cgroup stays there, and its instances go
under ``/fluidedge`` at the root, not below the unit: systemd puts every (re)start of the unit
into the unit's own cgroup, which cgroup v2 refuses once children of it use controllers (no
internal processes). With instances below the unit, ``systemctl restart`` failed with
``status=219/CGROUP`` while any ran (found in the VM tier's systemd payload).

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
def test_a_daemon_in_a_unit_stays_there_and_its_unit_can_be_restarted(tmp_path: Path) -> None:
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
        # what systemd does at a restart: the new process into the unit's own cgroup
        placed = subprocess.Popen(["sleep", "30"])
        try:
            (unit_dir / "cgroup.procs").write_text(str(placed.pid))
            assert Path(f"/proc/{placed.pid}/cgroup").read_text().strip() == f"0::{unit}"
        finally:
            placed.kill()
            placed.wait()
    finally:
        if unit_dir.exists():
            unit_dir.rmdir()
    stats = got["stats"]
    assert stats["mode"] == "v2"
    assert stats["parent"] == "/fluidedge"
    assert got["own"] == f"0::{unit}"  # it stayed in its unit's cgroup
    assert stats["daemon_cgroup"] == unit
    assert stats["idle_start"] is False
    assert unit in stats["idle_start_why"]
    assert {"cpuset", "cpu", "memory", "pids"} <= set(stats["controllers"])
    (leftover,) = got["leftover"]
    assert leftover.startswith("/sys/fs/cgroup/fluidedge/")
    assert got["pid"] in got["procs"]
    assert got["after"] == []
