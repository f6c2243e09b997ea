"""The CAT manager against the resctrl emulation, for several host shapes."""

from __future__ import annotations

import errno
import subprocess
from pathlib import Path

import pytest
from tests.fixtures.resctrl import SHAPES, FakeResctrl, Shape

from fluidedge.cat.errors import (
    CatConflict,
    CatUnprocessable,
    CosNotFound,
    NotSupported,
)
from fluidedge.cat.fs import RealResctrlFS
from fluidedge.cat.layout import MODELS, CacheInfo, preset
from fluidedge.cat.manager import CatConfig, CatManager
from fluidedge.cat.models import CosSpec, PresetRequest
from fluidedge.core.store import Store

from .conftest import MakeManager


def _cache(shape: Shape) -> CacheInfo:
    return CacheInfo(
        "L3", shape.cbm_mask, shape.min_cbm_bits, shape.num_closids, 0, shape.cache_ids
    )


@pytest.mark.parametrize("model", sorted(MODELS))
def test_every_preset_lands_in_the_kernel_on_every_shape(
    tmp_path: Path, shape: Shape, model: str, make_manager: MakeManager
) -> None:
    fs = FakeResctrl(tmp_path / "r", shape)
    manager = make_manager(fs)
    roles = len(MODELS[model])
    if roles > min(shape.num_closids, shape.mba_closids or shape.num_closids):
        with pytest.raises(CatConflict, match="out of CLOSIDs"):
            manager.apply_preset(model, PresetRequest())
        return
    view = manager.apply_preset(model, PresetRequest())
    expected = {
        ("default" if p.role == "rest" else p.role): p.mask for p in preset(model, _cache(shape))
    }
    for name, mask in expected.items():
        line = fs.read("schemata" if name == "default" else f"{name}/schemata")
        for dom in shape.cache_ids:
            assert f"{dom}={mask:0{(shape.ways + 3) // 4}x}" in line
    assert sum(view.ways.values()) == shape.ways
    assert "largest remainders" in (view.rounding or "")


def test_a_layout_failing_in_the_kernel_is_rolled_back(
    tmp_path: Path, make_manager: MakeManager
) -> None:
    """Another agent takes the last CLOSID between our check and our mkdir: ENOSPC mid-layout."""

    class Racing(FakeResctrl):
        def mkdir(self, rel: str) -> None:
            super().mkdir(rel)
            if rel == "a" and "intruder" not in self.groups:
                super().mkdir("intruder")

    fs = Racing(tmp_path / "r", SHAPES["12w-4c-mba-mon"])
    manager = make_manager(fs)
    root_before = fs.read("schemata")
    specs = [
        CosSpec(name="default", l3="f"),
        CosSpec(name="a", l3="f00"),
        CosSpec(name="b", l3="f0"),
        CosSpec(name="c", l3="f0"),
    ]
    with pytest.raises(CatConflict) as caught:
        manager.apply([*specs[:3], CosSpec(name="c", l3="f0", mb=50)])
    assert "out of CLOSIDs" in str(caught.value)  # last_cmd_status, quoted
    assert "ENOSPC" in str(caught.value)
    assert sorted(fs.groups) == ["", "intruder"]  # ours removed, the intruder's left alone
    assert fs.read("schemata") == root_before  # the default group written back
    assert manager.classes == {}
    assert manager.tables.classes() == []


def test_kernel_einval_after_our_checks_reports_last_cmd_status(
    tmp_path: Path, make_manager: MakeManager
) -> None:
    """Someone makes a group exclusive behind our back: the kernel refuses our mask (EINVAL)."""

    class Racing(FakeResctrl):
        def mkdir(self, rel: str) -> None:
            if rel == "b":  # between our read of the state and our writes
                super().write("a/schemata", "L3:0=c00\n")
                super().write("schemata", "L3:0=ff\n")
                super().write("other/mode", "exclusive\n")
            super().mkdir(rel)

    fs = Racing(tmp_path / "r", SHAPES["12w-16c-plain"])
    manager = make_manager(fs)
    manager.apply([CosSpec(name="default", l3="ff"), CosSpec(name="a", l3="f00")])
    fs.mkdir("other")  # a foreign group
    fs.write("other/schemata", "L3:0=300\n")
    with pytest.raises(CatUnprocessable, match="Overlaps with exclusive group"):
        manager.apply([CosSpec(name="b", l3="3f0")])
    assert "b" not in fs.groups
    assert "b" not in manager.classes
    assert fs.groups["other"].mode == "exclusive"  # the other agent's change is not undone


def test_masks_the_host_refuses_are_422_and_touch_nothing(
    tmp_path: Path, make_manager: MakeManager
) -> None:
    fs = FakeResctrl(tmp_path / "r", SHAPES["20w-16c-mba-mon"])
    manager = make_manager(fs)
    with pytest.raises(CatUnprocessable, match="Need at least 2 bits"):
        manager.apply([CosSpec(name="a", l3="ff"), CosSpec(name="b", l3="1")])
    with pytest.raises(CatUnprocessable, match="non-consecutive"):
        manager.apply([CosSpec(name="a", l3={"0": "f0f", "1": "f"})])
    assert sorted(fs.groups) == [""]
    view = manager.apply([CosSpec(name="a", l3="c0000", mb=45)])[0]
    assert view.schemata["MB"] == {"0": "50", "1": "50"}
    assert any("rounded up to 50%" in n for n in view.notes)
    assert any("shareable_bits" in n for n in view.notes)


def test_closids_run_out_as_409(tmp_path: Path, make_manager: MakeManager) -> None:
    fs = FakeResctrl(tmp_path / "r", SHAPES["20w-4c-l2"])
    manager = make_manager(fs)
    manager.apply([CosSpec(name=n, l3="f", l2="f") for n in ("a", "b", "c")])
    with pytest.raises(CatConflict, match="num_closids=4"):
        manager.apply([CosSpec(name="d", l3="f")])
    manager.delete("c")
    manager.apply([CosSpec(name="d", l2="ff0")])
    assert "L2:0=00ff0;1=00ff0" in fs.read("d/schemata")


def test_instances_tasks_join_and_stay_in_sync(
    tmp_path: Path, make_manager: MakeManager, workload: subprocess.Popen[bytes]
) -> None:
    fs = FakeResctrl(tmp_path / "r", SHAPES["12w-4c-mba-mon"])
    members = [workload.pid]
    manager = make_manager(
        fs,
        instance_pid=lambda name: workload.pid if name == "vfw" else None,
        instance_tasks=lambda pid: list(members),
    )
    manager.apply([CosSpec(name="target", l3="f0")])
    manager.bind("vfw", "target", workload.pid)
    assert fs.read("target/tasks").split() == [str(workload.pid)]
    assert fs.read("target/mon_groups/vfw/tasks").split() == [str(workload.pid)]
    # A process joins the instance later (as runc exec would): the sync moves it in.
    child = int(subprocess.check_output(["pgrep", "-P", str(workload.pid)]).split()[0])
    members.append(child)
    assert manager.sync() == 1
    assert sorted(fs.read("target/tasks").split()) == sorted([str(workload.pid), str(child)])
    assert manager.sync() == 0
    view = manager.instance_view("vfw")
    assert (view.tasks, view.in_class) == (2, 2)
    fs.set_counter("target", "vfw", 0, "llc_occupancy", 1234567)
    fs.set_counter("target", None, 0, "mbm_total_bytes", 42)
    assert manager.instance_view("vfw").monitoring["mon_L3_00"]["llc_occupancy"] == 1234567
    text = manager.metrics()
    labels = 'instance="vfw",cos="target",domain="mon_L3_00"'
    assert f"fluidedge_cat_instance_llc_occupancy{{{labels}}} 1234567" in text
    assert 'fluidedge_cat_mbm_total_bytes{cos="target",domain="mon_L3_00"} 42' in text
    with pytest.raises(CatConflict, match="used by instance"):
        manager.delete("target")
    manager.unbind("vfw", move_tasks=True)
    assert fs.read("target/tasks").split() == []
    assert not fs.exists("target/mon_groups/vfw")
    manager.delete("target")


def test_binding_to_an_unknown_class_or_dead_task(
    tmp_path: Path, make_manager: MakeManager
) -> None:
    fs = FakeResctrl(tmp_path / "r", SHAPES["12w-16c-plain"])
    manager = make_manager(fs)
    with pytest.raises(CosNotFound):
        manager.bind("x", "nope", 1)
    manager.apply([CosSpec(name="a", l3="f", cpus="2-3")])
    assert manager.check("a") == (2, 3)
    with pytest.raises(CatUnprocessable, match="No task 999999999"):
        manager.bind("x", "a", 999999999)
    assert "x" not in manager.bindings


def test_declared_state_is_restored_after_restart_and_after_reboot(
    tmp_path: Path, make_manager: MakeManager, workload: subprocess.Popen[bytes]
) -> None:
    store = Store(tmp_path / "db.sqlite")
    fs = FakeResctrl(tmp_path / "r", SHAPES["12w-16c-plain"])
    first = make_manager(fs, store, instance_tasks=lambda pid: [pid])
    first.apply_preset("4-4-4", PresetRequest(names={"target": "vfw"}, cpus={"noisy": "3"}))
    first.bind("fw1", "vfw", workload.pid)
    first.stop()
    # Daemon restart: the kernel still has everything; nothing is lost or duplicated.
    second = make_manager(fs, store, instance_tasks=lambda pid: [pid])
    assert sorted(second.classes) == ["default", "noisy", "vfw"]
    assert second.bindings["fw1"].cos == "vfw"
    second.stop()
    # Reboot: an empty resctrl mount. The groups, masks, CPUs and tasks come back.
    fresh = FakeResctrl(tmp_path / "r2", SHAPES["12w-16c-plain"])
    third = make_manager(
        fresh, store, instance_pid=lambda _n: workload.pid, instance_tasks=lambda pid: [pid]
    )
    assert "L3:0=f00" in fresh.read("noisy/schemata")
    assert "L3:0=00f" in fresh.read("schemata")
    assert fresh.read("noisy/cpus_list").strip() == "3"
    assert fresh.read("vfw/tasks").split() == [str(workload.pid)]
    assert third.last_error is None


def test_a_host_without_resctrl_says_so_and_keeps_declared_state(tmp_path: Path) -> None:
    store = Store(tmp_path / "db.sqlite")
    fs = FakeResctrl(tmp_path / "r", SHAPES["12w-16c-plain"])
    manager = CatManager(CatConfig(mount=fs.root), store, fs)
    manager.start()
    manager.apply([CosSpec(name="a", l3="f")])
    manager.stop()
    empty = tmp_path / "absent"
    bare = CatManager(CatConfig(mount=empty), store, RealResctrlFS(empty))
    bare.start()
    status = bare.status()
    assert not status.supported
    assert status.reason.startswith("not supported on this host: no RDT")
    assert any(str(empty) in check and "absent" in check for check in status.checks)
    assert any("filesystems" in check for check in status.checks)
    for call in (bare.list_classes, lambda: bare.apply([CosSpec(name="b", l3="f")])):
        with pytest.raises(NotSupported) as caught:
            call()
        assert caught.value.http_status == 501
    # an instance naming a class here is refused for what it asks of this host: 422, not 501
    with pytest.raises(CatUnprocessable, match="cos: 'a' needs cache allocation") as refused:
        bare.check("a")
    assert refused.value.http_status == 422
    assert "fluidedge_cat_supported 0" in bare.metrics()
    assert [c["name"] for c in bare.tables.classes()] == ["a"]  # nothing lost


def test_replace_drops_undeclared_classes_but_not_used_ones(
    tmp_path: Path, make_manager: MakeManager, workload: subprocess.Popen[bytes]
) -> None:
    fs = FakeResctrl(tmp_path / "r", SHAPES["12w-16c-plain"])
    manager = make_manager(fs, instance_tasks=lambda pid: [pid])
    manager.apply([CosSpec(name="a", l3="f"), CosSpec(name="b", l3="f0")])
    manager.bind("i", "b", workload.pid)
    with pytest.raises(CatConflict, match="used by instance"):
        manager.apply([CosSpec(name="a", l3="ff")], replace=True)
    manager.unbind("i")
    manager.apply([CosSpec(name="a", l3="ff")], replace=True)
    assert sorted(fs.groups) == ["", "a"]
    assert sorted(manager.classes) == ["a"]
    with pytest.raises(OSError, match="Operation not permitted") as caught:
        fs.rmdir("info")
    assert caught.value.errno == errno.EPERM


def test_a_gone_instances_remembered_pid_is_never_synced(
    tmp_path: Path, make_manager: MakeManager, workload: subprocess.Popen[bytes]
) -> None:
    """Once the instance manager no longer knows the instance, its old pid may belong to an
    unrelated process (pid reuse): the sync must not move that process into the class."""
    fs = FakeResctrl(tmp_path / "r", SHAPES["12w-16c-plain"])
    alive = {"fw": True}
    manager = make_manager(
        fs,
        instance_pid=lambda name: workload.pid if alive.get(name) else None,
        instance_tasks=lambda pid: [pid],
    )
    manager.apply([CosSpec(name="vfw", l3="f0")])
    manager.bind("fw", "vfw", workload.pid)
    fs.write("tasks", f"{workload.pid}\n")  # someone moved it back to the default group
    alive["fw"] = False  # the instance is gone; the pid now "belongs" to someone else
    assert manager.sync() == 0
    assert fs.read("vfw/tasks").split() == []
    alive["fw"] = True
    assert manager.sync() == 1


def test_reset_gives_the_default_group_everything_back(
    tmp_path: Path, make_manager: MakeManager, workload: subprocess.Popen[bytes]
) -> None:
    fs = FakeResctrl(tmp_path / "r", SHAPES["12w-4c-mba-mon"])
    manager = make_manager(
        fs, instance_pid=lambda _n: workload.pid, instance_tasks=lambda pid: [pid]
    )
    manager.apply_preset("6-4-2", PresetRequest(names={"target": "vfw"}))
    manager.apply([CosSpec(name="vfw", l3="3", mb=20)])
    manager.bind("fw", "vfw", workload.pid)
    manager.reset()
    assert sorted(fs.groups) == [""]
    assert fs.read("schemata").split() == ["L3:0=fff", "MB:0=100"]
    assert str(workload.pid) in fs.read("tasks").split()
    assert manager.classes == {}
    assert manager.bindings == {}
    assert manager.tables.classes() == []
    assert manager.tables.assignments() == []


def test_a_preset_with_replace_drops_the_previous_models_classes(
    tmp_path: Path, make_manager: MakeManager
) -> None:
    fs = FakeResctrl(tmp_path / "r", SHAPES["12w-16c-plain"])
    manager = make_manager(fs)
    manager.apply_preset("3-3-3-3", PresetRequest())
    assert "target2" in fs.groups
    manager.apply_preset("4-4-4", PresetRequest(replace=True))
    assert sorted(fs.groups) == ["", "noisy", "target"]


def test_a_class_deleted_from_outside_is_created_again_with_its_tasks(
    tmp_path: Path, make_manager: MakeManager, workload: subprocess.Popen[bytes]
) -> None:
    """``rmdir /sys/fs/resctrl/<class>`` (by hand, or a tool that resets resctrl) moves the
    class's tasks to the default group: the instance loses its cache isolation, silently. The
    sync (every ``sync_interval_s``) creates the class again, with its masks and CPUs, and
    moves the instances' tasks and monitoring groups back."""
    fs = FakeResctrl(tmp_path / "r", SHAPES["12w-4c-mba-mon"])
    manager = make_manager(
        fs,
        instance_pid=lambda name: workload.pid if name == "vfw" else None,
        instance_tasks=lambda pid: [pid],
    )
    manager.apply([CosSpec(name="target", l3="f0", cpus="2")])
    manager.bind("vfw", "target", workload.pid)
    schemata = fs.read("target/schemata")
    fs.rmdir("target")
    assert str(workload.pid) in fs.read("tasks").split()  # back in the default group
    assert manager.sync() == 1
    assert fs.read("target/schemata") == schemata
    assert fs.read("target/cpus_list").strip() == "2"
    assert fs.read("target/tasks").split() == [str(workload.pid)]
    assert fs.read("target/mon_groups/vfw/tasks").split() == [str(workload.pid)]
    assert manager.recreated == 1
    assert manager.sync() == 0
    assert manager.last_error is None
