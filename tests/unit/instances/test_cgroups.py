"""The cgroup adapter's pure parts and its file protocol against a tree laid out like the kernel's.

The real hierarchies are exercised by the functional tests: v1/hybrid on these hosts, pure v2 in
the VM tier (``scripts/vmtest``); here, what each implementation writes where, and detection.
"""

from __future__ import annotations

import ctypes
import errno
import os
import threading
from pathlib import Path

import pytest

from fluidedge.instances import cgroups
from fluidedge.instances.errors import FreezerBusy, RuntimeFailure
from fluidedge.linux import heldcalls

HYBRID = """\
25 1 0:23 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755
26 25 0:24 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw
27 25 0:25 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
"""
V1 = "27 25 0:25 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n"
V2 = "30 22 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n"


def test_mount_kind() -> None:
    assert cgroups.mount_kind(HYBRID) == "hybrid"
    assert cgroups.mount_kind(V1) == "v1"
    assert cgroups.mount_kind(V2 + HYBRID) == "v2"
    with pytest.raises(RuntimeFailure, match="no cgroup"):
        cgroups.mount_kind("1 0 8:1 / / rw - ext4 /dev/vda rw\n")


def test_own_cgroup_and_default_parent() -> None:
    assert cgroups.own_cgroup_v2("0::/\n") == "/"
    assert cgroups.own_cgroup_v2("4:memory:/x\n0::/system.slice/fe.service\n") == (
        "/system.slice/fe.service"
    )
    assert cgroups.default_parent_v2("/") == "/fluidedge"
    assert cgroups.default_parent_v2("/fluidedge/daemon") == "/fluidedge"
    # Not below a systemd unit: systemd (re)starts the unit in its own cgroup, which could
    # hold no process once its children used controllers (restart: status=219/CGROUP).
    assert cgroups.default_parent_v2("/system.slice/fe.service") == "/fluidedge"
    assert cgroups.default_parent_v2("/system.slice/fe.service/instances/daemon") == (
        "/system.slice/fe.service/instances"
    )


def test_a_daemon_in_a_units_cgroup_stays_there() -> None:
    unit = "/system.slice/fe.service"
    assert cgroups.in_own_unit(unit, "/fluidedge")
    assert not cgroups.in_own_unit("/", "/fluidedge")  # no systemd: beside its instances
    assert not cgroups.in_own_unit("/fluidedge/daemon", "/fluidedge")  # already beside them
    assert not cgroups.in_own_unit(unit, f"{unit}/instances")  # a parent configured below it


def test_cpu_weight_is_runc_conversion_of_shares() -> None:
    assert cgroups.cpu_weight(1.0) == 1 + (1022 * 9999) // 262142  # 1024 shares -> 39
    assert cgroups.cpu_weight(0.001) == 1  # kernel minimum share 2 -> weight 1
    assert cgroups.cpu_weight(256) == 10000


def _v2_tree(root: Path, cid: str) -> Path:
    base = root / "fluidedge" / cid
    base.mkdir(parents=True)
    for name in ("cpuset.cpus", "cpu.weight", "cpu.max", "memory.max", "pids.max", "cgroup.freeze"):
        (base / name).write_text("")
    (base / "cgroup.events").write_text("populated 1\nfrozen 0\n")
    (base / "pids.events").write_text("max 7\n")
    (base / "memory.events").write_text("low 0\nhigh 0\nmax 3\noom 1\noom_kill 2\n")
    (base / "cgroup.procs").write_text("11\n12\n")
    return base


def test_v2_writes_unified_knobs(tmp_path: Path) -> None:
    cg = cgroups.CgroupsV2("/fluidedge", root=tmp_path)
    base = _v2_tree(tmp_path, "fe1")
    assert cg.runc_path("fe1") == "/fluidedge/fe1"
    cg.set_cpus("fe1", "0-1")
    cg.set_cpu_weight("fe1", 0.5)
    cg.set_cpu_limit("fe1", 0.25)
    cg.set_memory("fe1", 20, lowering=True)
    cg.set_pids("fe1", 16)
    assert (base / "cpuset.cpus").read_text() == "0-1"
    assert (base / "cpu.weight").read_text() == str(cgroups.cpu_weight(0.5))
    assert (base / "cpu.max").read_text() == "25000 100000"
    assert (base / "memory.max").read_text() == str(20 * 1024 * 1024)
    assert (base / "pids.max").read_text() == "16"
    cg.set_cpu_limit("fe1", None)
    assert (base / "cpu.max").read_text() == "max 100000"
    assert (cg.pids_limit_hits("fe1"), cg.oom_kills("fe1"), cg.procs("fe1")) == (7, 2, [11, 12])
    assert cg.leftover("fe1") == [base]
    assert cg.leftover("gone") == []


def test_v2_freeze_waits_for_cgroup_events(tmp_path: Path) -> None:
    cg = cgroups.CgroupsV2("/fluidedge", root=tmp_path)
    base = _v2_tree(tmp_path, "fe1")
    # The kernel reports completion in cgroup.events; until it says frozen 1, freeze waits.
    with pytest.raises(FreezerBusy, match="not frozen"):
        cg.freeze("fe1", timeout=0.01)
    assert (base / "cgroup.freeze").read_text() == "1"
    (base / "cgroup.events").write_text("populated 1\nfrozen 1\n")
    cg.freeze("fe1", timeout=0.01)
    assert cg.frozen("fe1")
    with pytest.raises(FreezerBusy, match="not thawed"):
        cg.thaw("fe1", timeout=0.01)
    assert (base / "cgroup.freeze").read_text() == "0"


def test_v2_freeze_sees_a_completion_that_comes_while_it_waits(tmp_path: Path) -> None:
    """A completion that lands while the freeze waits is seen (the kernel reports it in
    cgroup.events some time after the write)."""
    cg = cgroups.CgroupsV2("/fluidedge", root=tmp_path)
    base = _v2_tree(tmp_path, "fe1")
    later = threading.Timer(0.03, (base / "cgroup.events").write_text, ["populated 1\nfrozen 1\n"])
    later.start()
    try:
        cg.freeze("fe1", timeout=1.0)
    finally:
        later.join()
    assert cg.frozen("fe1")


def test_v1_writes_per_controller_knobs(tmp_path: Path) -> None:
    cg = cgroups.CgroupsV1("/fluidedge", root=tmp_path, kind="hybrid")
    files = {
        "cpuset": ["cpuset.cpus"],
        "cpu": ["cpu.shares", "cpu.cfs_quota_us", "cpu.cfs_period_us"],
        "memory": ["memory.limit_in_bytes", "memory.memsw.limit_in_bytes"],
        "pids": ["pids.max"],
        "freezer": ["freezer.state"],
    }
    for controller, names in files.items():
        base = tmp_path / controller / "fluidedge" / "fe1"
        base.mkdir(parents=True)
        for name in names:
            (base / name).write_text("")
    cg.set_cpus("fe1", "1")
    cg.set_cpu_weight("fe1", 0.5)
    cg.set_cpu_limit("fe1", 0.25)
    cg.set_memory("fe1", 20, lowering=False)
    cg.set_pids("fe1", 16)
    read = {
        name: (tmp_path / c / "fluidedge" / "fe1" / name).read_text()
        for c, names in files.items()
        for name in names
    }
    assert read["cpuset.cpus"] == "1"
    assert read["cpu.shares"] == "512"
    assert (read["cpu.cfs_quota_us"], read["cpu.cfs_period_us"]) == ("25000", "100000")
    assert read["memory.limit_in_bytes"] == read["memory.memsw.limit_in_bytes"] == "20971520"
    assert read["pids.max"] == "16"
    assert len(cg.leftover("fe1")) == 5
    assert cg.describe()["mode"] == "hybrid"


def test_runtime_check_refuses_crun_on_hybrid_hosts() -> None:
    from fluidedge.instances import runc

    with pytest.raises(RuntimeFailure, match="crun refuses hybrid"):
        runc.check_runtime("crun", "crun", "hybrid")
    with pytest.raises(RuntimeFailure, match="unknown OCI runtime"):
        runc.check_runtime("youki", "youki", "v2")
    with pytest.raises(RuntimeFailure, match="not installed"):
        runc.check_runtime("crun", "/nonexistent/crun", "v2")
    assert runc._missing("container `x` does not exist")
    assert runc._missing("error opening file `/r/x/status`: No such file or directory")
    assert not runc._missing("permission denied")


def test_v1_prepare_keeps_an_empty_cgroup_frozen(tmp_path: Path) -> None:
    """The v1 freezer flips a kernel static key when the host's only frozen cgroup thaws (text
    patching: ms at the tail of a resume); a cgroup that stays frozen keeps it on."""
    for controller in ("cpuset", "cpu", "memory", "pids", "freezer"):
        (tmp_path / controller).mkdir()
        (tmp_path / controller / "cgroup.procs").write_text("")
    cg = cgroups.CgroupsV1("/fluidedge", root=tmp_path)
    cg.prepare()
    anchor = tmp_path / "freezer" / "fluidedge" / cgroups.FREEZER_ANCHOR
    assert (anchor / "freezer.state").read_text() == "FROZEN"
    cg.prepare()  # a restart: the same anchor, still frozen
    assert (anchor / "freezer.state").read_text() == "FROZEN"
    assert [p.name for p in anchor.parent.iterdir()] == [cgroups.FREEZER_ANCHOR]


@pytest.mark.parametrize("root_flag", ["1", "0", None])
def test_v1_makes_a_quiet_cpuset_only_under_a_balancing_root(
    tmp_path: Path, root_flag: str | None
) -> None:
    """Before the runtime's create, a container's v1 cpuset is made with
    ``sched_load_balance`` 0 (no scheduling-domain rebuild on its CPU writes nor its removal)
    when the root cpuset balances load, where the flag of any other cpuset does not matter to
    the scheduler; under a root that does not (an operator's partitioning) or without the flag,
    nothing is made ahead and the runtime makes the cpuset as before. v2 makes nothing."""
    for controller in ("cpuset", "cpu", "memory", "pids", "freezer"):
        (tmp_path / controller).mkdir()
        (tmp_path / controller / "cgroup.procs").write_text("")
    if root_flag is not None:
        (tmp_path / "cpuset" / "cpuset.sched_load_balance").write_text(root_flag + "\n")
    cg = cgroups.CgroupsV1("/fluidedge", root=tmp_path)
    cg.prepare()
    assert cg.describe()["quiet_cpusets"] is (root_flag == "1")
    cg.before_create("fe1")
    flag = tmp_path / "cpuset" / "fluidedge" / "fe1" / "cpuset.sched_load_balance"
    if root_flag == "1":
        assert flag.read_text() == "0"
        assert cg.leftover("fe1") == [tmp_path / "cpuset" / "fluidedge" / "fe1"]
    else:
        assert not flag.parent.exists()
    v2 = cgroups.CgroupsV2("/fluidedge", root=tmp_path / "unified")
    v2.before_create("fe1")
    assert not (tmp_path / "unified").exists()


def test_thawer_writes_once_and_confirms(tmp_path: Path) -> None:
    """The packet path's thaw: one write on a descriptor opened at the pause, one read."""
    v1 = cgroups.CgroupsV1("/fluidedge", root=tmp_path)
    state = tmp_path / "freezer" / "fluidedge" / "fe1" / "freezer.state"
    state.parent.mkdir(parents=True)
    state.write_text("FROZEN\n")
    thawer = v1.thawer("fe1")
    assert thawer.thaw()
    thawer.close()
    assert state.read_text().startswith("THAWED")
    v2 = cgroups.CgroupsV2("/fluidedge", root=tmp_path)
    base = _v2_tree(tmp_path, "fe2")
    (base / "cgroup.events").write_text("populated 1\nfrozen 1\n")
    thawer = v2.thawer("fe2")
    assert not thawer.thaw()  # the (fake) kernel still says frozen: the caller's slow path
    assert (base / "cgroup.freeze").read_text() == "0"
    (base / "cgroup.events").write_text("populated 1\nfrozen 0\n")
    assert thawer.thaw()
    thawer.close()
    with pytest.raises(FileNotFoundError):
        v2.thawer("gone")


def test_heldcalls_keep_the_gil_and_raise_like_os(tmp_path: Path) -> None:
    """The thaw's write and read go through libc with the GIL held (ctypes.PyDLL), and
    behave like os.pwrite/os.pread (bytes in, bytes out, OSError with errno)."""
    assert isinstance(heldcalls.libc, ctypes.PyDLL)
    assert heldcalls.libc.pwrite._flags_ & ctypes._FUNCFLAG_PYTHONAPI  # type: ignore[attr-defined]
    path = tmp_path / "state"
    fd = os.open(path, os.O_RDWR | os.O_CREAT)
    try:
        assert heldcalls.pwrite(fd, b"THAWED\n", 0) == 7
        assert heldcalls.pread(fd, 256, 0) == b"THAWED\n"
        assert heldcalls.pread(fd, 3, 2) == b"AWE"
    finally:
        os.close(fd)
    with pytest.raises(OSError, match="Bad file descriptor") as caught:
        heldcalls.pread(fd, 1, 0)  # closed
    assert caught.value.errno == errno.EBADF
