"""The resctrl emulation behaves like the kernel for what fluidedge uses (errno + last_cmd_status).

These checks pin the emulation to the documented behaviour, so the manager's tests against it
mean something; the real adapter is exercised underneath (the emulation's reads are its I/O).
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest
from tests.fixtures.resctrl import SHAPES, FakeResctrl, KernelError, Shape


def _status(fs: FakeResctrl) -> str:
    return fs.read("info/last_cmd_status").strip()


def test_mkdir_beyond_num_closids_is_enospc(tmp_path: Path, shape: Shape) -> None:
    fs = FakeResctrl(tmp_path / "r", shape)
    closids = (
        min(shape.num_closids, shape.mba_closids or shape.num_closids)
        if shape.mba
        else shape.num_closids
    )
    for index in range(closids - 1):  # the default group holds CLOSID 0
        fs.mkdir(f"g{index}")
    with pytest.raises(KernelError) as caught:
        fs.mkdir("one-more")
    assert caught.value.errno == errno.ENOSPC
    assert _status(fs) == "out of CLOSIDs"
    fs.rmdir("g0")
    fs.mkdir("one-more")  # the freed CLOSID is reused
    assert _status(fs) == "ok"


@pytest.mark.parametrize(
    ("line", "status"),
    [
        ("L3:0=f0f", "The mask f0f has non-consecutive 1-bits"),
        ("L3:0=fffffff", "Mask out of range"),
        ("L3:0=zz", "Non-hex character in the mask zz"),
        ("L9:0=f", "Unknown or unsupported resource name 'L9'"),
        ("L3 0=f", "Missing ':'"),
        ("L3:x=f", "Missing '=' or non-numeric domain"),
    ],
)
def test_bad_schemata_is_einval_with_the_reason_and_changes_nothing(
    tmp_path: Path, line: str, status: str
) -> None:
    fs = FakeResctrl(tmp_path / "r", SHAPES["12w-16c-plain"])
    fs.mkdir("g")
    before = fs.read("g/schemata")
    with pytest.raises(KernelError) as caught:
        fs.write("g/schemata", f"{line}\n")
    assert caught.value.errno == errno.EINVAL
    assert _status(fs) == status
    assert fs.read("g/schemata") == before


def test_schemata_lines_apply_together_or_not_at_all(tmp_path: Path) -> None:
    fs = FakeResctrl(tmp_path / "r", SHAPES["12w-4c-mba-mon"])
    fs.mkdir("g")
    with pytest.raises(KernelError):
        fs.write("g/schemata", "L3:0=f\nMB:0=5\n")  # the L3 line is fine, MB is out of range
    assert _status(fs) == "MB value 5 out of range [10,100]"
    assert "L3:0=fff" in fs.read("g/schemata")
    fs.write("g/schemata", "MB:0=45\n")  # partial write: only MB changes, rounded up
    assert "MB:0=50" in fs.read("g/schemata")
    assert "L3:0=fff" in fs.read("g/schemata")


def test_min_cbm_bits_and_exclusive_mode(tmp_path: Path) -> None:
    fs = FakeResctrl(tmp_path / "r", SHAPES["20w-16c-mba-mon"])  # min 2 bits, shareable c0000
    fs.mkdir("a")
    with pytest.raises(KernelError):
        fs.write("a/schemata", "L3:0=1\n")
    assert _status(fs) == "Need at least 2 bits in the mask"
    fs.write("a/schemata", "L3:0=3;1=3\n")
    with pytest.raises(KernelError):
        fs.write("a/mode", "exclusive\n")  # overlaps the default group's full mask
    assert _status(fs) == "Schemata overlaps"
    fs.write("schemata", "L3:0=ffffc;1=ffffc\n")
    fs.write("a/mode", "exclusive\n")
    fs.mkdir("b")  # a new group gets every way no exclusive group holds
    assert "L3:0=ffffc;1=ffffc" in fs.read("b/schemata")
    with pytest.raises(KernelError):
        fs.write("b/schemata", "L3:0=7\n")
    assert _status(fs) == "Overlaps with exclusive group"
    with pytest.raises(KernelError):
        fs.write("mode", "exclusive\n")
    assert _status(fs) == "Cannot change default group mode"


def test_tasks_need_a_live_task_and_mon_groups_their_parent(tmp_path: Path) -> None:
    fs = FakeResctrl(tmp_path / "r", SHAPES["12w-4c-mba-mon"])
    fs.mkdir("g")
    fs.mkdir("g/mon_groups/m")
    with pytest.raises(KernelError) as caught:
        fs.write("g/tasks", "999999999\n")
    assert caught.value.errno == errno.ESRCH
    assert _status(fs) == "No task 999999999"
    pid = os.getpid()
    with pytest.raises(KernelError):
        fs.write("g/mon_groups/m/tasks", f"{pid}\n")
    assert _status(fs) == "Can't move task to different control group"
    fs.write("g/tasks", f"{pid}\n")
    fs.write("g/mon_groups/m/tasks", f"{pid}\n")
    assert fs.read("g/tasks").split() == [str(pid)]
    assert fs.read("g/mon_groups/m/tasks").split() == [str(pid)]
    fs.rmdir("g")  # tasks go back to the default group
    assert str(pid) in fs.read("tasks").split()


def test_cpus_move_between_groups_and_back_on_rmdir(tmp_path: Path) -> None:
    fs = FakeResctrl(tmp_path / "r", SHAPES["12w-16c-plain"])
    fs.mkdir("g")
    fs.write("g/cpus_list", "1-2\n")
    assert fs.read("g/cpus_list").strip() == "1-2"
    assert fs.read("cpus_list").strip() == "0,3"
    with pytest.raises(KernelError):
        fs.write("g/cpus_list", "7\n")
    assert _status(fs) == "Can only assign online CPUs"
    with pytest.raises(KernelError):
        fs.write("cpus_list", "0\n")
    assert _status(fs) == "Can't drop CPUs from default group"
    fs.rmdir("g")
    assert fs.read("cpus_list").strip() == "0-3"


def test_rmids_run_out(tmp_path: Path) -> None:
    fs = FakeResctrl(tmp_path / "r", SHAPES["20w-16c-mba-mon"])  # 10 RMIDs, the root holds one
    for index in range(9):
        fs.mkdir(f"mon_groups/m{index}")
    with pytest.raises(KernelError) as caught:
        fs.mkdir("g")
    assert caught.value.errno == errno.ENOSPC
    assert _status(fs) == "out of RMIDs"
