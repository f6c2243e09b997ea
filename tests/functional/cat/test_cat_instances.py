"""Real runc instances assigned to classes of service through the instance manager's CoS path.

The resctrl side is the kernel emulation (this host has no RDT); the instance side is real:
runc containers, their cgroups, their pids. The emulation refuses pids that do not exist, so
the tasks it lists are the instance's real tasks.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from fluidedge.cat.errors import CosNotFound
from fluidedge.cat.manager import CatConfig, CatManager
from fluidedge.cat.models import CosSpec
from fluidedge.cat.tasks import cgroup_tasks_file
from fluidedge.core.store import Store
from fluidedge.instances.errors import InvalidRequest
from fluidedge.instances.manager import InstancesConfig, Manager
from fluidedge.instances.models import InstanceRequest
from tests.fixtures.resctrl import FakeResctrl, Shape

pytestmark = pytest.mark.root


@pytest.fixture
def managers(tmp_path: Path) -> Iterator[tuple[Manager, CatManager, FakeResctrl]]:
    store = Store(tmp_path / "db.sqlite")
    instances = Manager(
        InstancesConfig.model_validate({"pool_scale": 0.5, "cpus": "0-1"}),
        store,
        tmp_path / "state",
    )
    shape = Shape(ways=12, num_closids=4, mba=True, mon=True, cpus=os.cpu_count() or 2)
    fs = FakeResctrl(tmp_path / "resctrl", shape)

    def pid_of(name: str) -> int | None:
        inst = instances.instances.get(name)
        return inst.pid if inst is not None and inst.state == "running" else None

    cat = CatManager(CatConfig(mount=fs.root, sync_interval_s=60), store, fs, instance_pid=pid_of)
    instances.start()
    cat.start()
    instances.cos_binder = cat
    try:
        yield instances, cat, fs
    finally:
        cat.stop()
        instances.purge()


def test_an_instance_runs_in_its_class_from_the_start(
    managers: tuple[Manager, CatManager, FakeResctrl],
) -> None:
    instances, cat, fs = managers
    cat.apply([CosSpec(name="default", l3="f"), CosSpec(name="vfw", l3="ff0", cpus="1")])
    with pytest.raises(CosNotFound):
        instances.create_instance(InstanceRequest(name="x", template="idle", cos="nope"))
    assert "x" not in instances.instances
    view = instances.create_instance(InstanceRequest(name="fw", template="idle", cos="vfw"))
    assert view.cos == "vfw"
    assert view.cpus == [1]  # placement kept the instance inside its class's CPUs
    assert view.pid is not None
    members = fs.read("vfw/tasks").split()
    assert str(view.pid) in members  # the launcher's pid, now the workload's
    assert fs.read("vfw/mon_groups/fw/tasks").split() == members
    tasks_file = cgroup_tasks_file(view.pid)
    assert tasks_file is not None
    # A process joins the container's cgroup from outside (as runc exec does): it is not in the
    # class until the sync sees it in the cgroup.
    joiner = subprocess.Popen(["sleep", "60"])
    try:
        tasks_file.write_text(f"{joiner.pid}\n")
        assert str(joiner.pid) not in fs.read("vfw/tasks").split()
        assert cat.sync() >= 1
        assert str(joiner.pid) in fs.read("vfw/tasks").split()
        state = cat.instance_view("fw")
        assert state.tasks == state.in_class >= 2
    finally:
        joiner.kill()
        joiner.wait()
    instances.delete_instance("fw")
    assert "fw" not in cat.bindings
    assert not fs.exists("vfw/mon_groups/fw")
    cat.delete("vfw")


def test_a_cos_needs_the_cat_part(tmp_path: Path) -> None:
    instances = Manager(
        InstancesConfig.model_validate({"pool_scale": 0, "builtin_templates": True}),
        Store(tmp_path / "db.sqlite"),
        tmp_path / "state",
    )
    instances.start()
    try:
        with pytest.raises(InvalidRequest, match=r"needs the \[cat\] part"):
            instances.create_instance(InstanceRequest(name="a", template="idle", cos="vfw"))
        assert instances.instances == {}
    finally:
        instances.purge()
