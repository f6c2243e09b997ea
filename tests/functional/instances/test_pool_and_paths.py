"""Pool refill, warm vs cold path, timing breakdown, rollback."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from fluidedge.core.cpus import parse_cpu_list
from fluidedge.core.store import Store
from fluidedge.instances import cgroups, runc
from fluidedge.instances.bundle import cpu_quota_us, cpu_shares
from fluidedge.instances.errors import NameInUse, RuntimeFailure, TemplateNotFound
from fluidedge.instances.manager import Manager
from fluidedge.instances.models import InstanceRequest
from fluidedge.instances.scoping import Scoped
from fluidedge.instances.shell import INIT_MEMORY_MB
from fluidedge.instances.timing import PHASES
from fluidedge.linux import procfs
from fluidedge.tenants.scope import ADMIN
from tests.fixtures.wait import wait_until

from .conftest import ManagerFactory

pytestmark = pytest.mark.root


def _containers(manager: object) -> set[str]:
    return {c["id"] for c in manager.runc.list()}  # type: ignore[attr-defined]


def test_pool_fills_and_refills_after_consumption(manager_factory: ManagerFactory) -> None:
    manager = manager_factory()
    assert manager.wait_pools(60)
    idle = next(p for p in manager.pool_status() if p.template == "idle")
    assert idle.ready == idle.target == 2
    shells_before = {s.id for s in manager.pools["idle"].ready}
    view = manager.create_instance(InstanceRequest(name="a", template="idle"))
    assert view.path == "warm"
    assert view.id in shells_before
    assert manager.wait_pools(60)
    idle = next(p for p in manager.pool_status() if p.template == "idle")
    assert (idle.ready, idle.consumed) == (2, 1)
    assert view.id not in {s.id for s in manager.pools["idle"].ready}


def test_warm_and_cold_paths_and_timing(manager_factory: ManagerFactory) -> None:
    manager = manager_factory()
    assert manager.wait_pools(60)
    warm = manager.create_instance(InstanceRequest(name="w", template="idle"))
    cold = manager.create_instance(InstanceRequest(name="c", template="idle", cold=True))
    assert (warm.path, cold.path) == ("warm", "cold")
    for view in (warm, cold):
        timing = view.timing.model_dump()
        assert set(PHASES) <= set(timing)
        assert timing["total"] == pytest.approx(sum(timing[p] for p in PHASES), abs=0.05)
        assert view.state == "running"
        assert runc.exe_of(view.pid or 0) is not None
        assert not (runc.exe_of(view.pid or 0) or "").endswith("fe-launcher")
    # The cold path pays the whole prepare work (runc create) in its shell phase.
    assert cold.timing.shell > 5 * warm.timing.shell
    assert cold.timing.shell > 5.0
    state = manager.runc.state(warm.id)
    assert state is not None
    assert state["status"] == "running"


def test_empty_pool_falls_back_to_cold(manager_factory: ManagerFactory) -> None:
    manager = manager_factory(pool_scale=0)
    view = manager.create_instance(InstanceRequest(name="x", template="idle"))
    assert view.path == "cold"
    assert view.state == "running"


def test_failed_start_rolls_back_everything(manager_factory: ManagerFactory) -> None:
    manager = manager_factory()
    assert manager.wait_pools(60)
    before = _containers(manager)
    pooled = {s.id for s in manager.pools["idle"].ready}
    with pytest.raises(RuntimeFailure, match="exited"):
        manager.create_instance(
            InstanceRequest(name="bad", template="idle", command=["/nonexistent"])
        )
    taken = pooled - {s.id for s in manager.pools["idle"].ready}
    assert len(taken) == 1
    (shell_id,) = taken
    assert shell_id not in _containers(manager)
    assert manager.cgroups.leftover(shell_id) == []
    assert not (manager.shell_root / shell_id).exists()
    assert "bad" not in manager.instances
    assert manager.tables.instances() == []
    # The name is free again, and the pool heals.
    assert manager.create_instance(InstanceRequest(name="bad", template="idle")).state == "running"
    assert manager.wait_pools(60)
    assert before - _containers(manager) <= pooled


def test_a_pooled_shell_killed_while_it_waits_never_fails_a_request(
    manager_factory: ManagerFactory,
) -> None:
    """Its launcher killed (an OOM kill, an admin's kill, a container torn down under it): the
    pidfd watch takes it out of the pool and the pool refills, with no request; a request
    that comes first takes a live shell instead (or the cold path), never the dead one."""
    manager = manager_factory()
    assert manager.wait_pools(60)
    victim = manager.pools["idle"].ready[0]
    os.kill(victim.pid, signal.SIGKILL)
    assert wait_until(
        lambda: victim.id not in {s.id for s in manager.pools["idle"].ready}, timeout=10
    )
    assert wait_until(lambda: victim.id not in _containers(manager), timeout=10)
    # Its row goes last (destroy_shell: container, interfaces, root, cgroups, then the row's
    # durable commit): waited for like the container, which goes first.
    assert wait_until(
        lambda: victim.id not in {s["id"] for s in manager.tables.shells()}, timeout=10
    )
    assert manager.cgroups.leftover(victim.id) == []
    assert manager.wait_pools(60)
    # killed right before a request: whichever comes first, the watch or the take's look
    for name in ("a", "b"):
        assert manager.wait_pools(60)
        victim = manager.pools["idle"].ready[0]
        os.kill(victim.pid, signal.SIGKILL)
        assert wait_until(lambda v=victim: not procfs.process_running(v.pid), timeout=10)  # type: ignore[misc]
        view = manager.create_instance(InstanceRequest(name=name, template="idle"))
        assert view.state == "running"
        assert view.id != victim.id
        assert wait_until(lambda v=victim: v.id not in _containers(manager), timeout=10)  # type: ignore[misc]
    assert manager.wait_pools(60)


def test_errors(manager_factory: ManagerFactory) -> None:
    manager = manager_factory(pool_scale=0)
    with pytest.raises(TemplateNotFound):
        manager.create_instance(InstanceRequest(name="x", template="nope"))
    manager.create_instance(InstanceRequest(name="x", template="idle"))
    with pytest.raises(NameInUse):
        manager.create_instance(InstanceRequest(name="x", template="idle"))


def test_pause_freezes_and_resume_thaws(manager_factory: ManagerFactory) -> None:
    manager = manager_factory(pool_scale=0)
    # Write-then-rename so a reader never sees the truncated file between two writes.
    script = (
        "i=0; while true; do i=$((i+1)); "
        "echo $i > /tmp/c.new; mv /tmp/c.new /tmp/c; usleep 2000; done"
    )
    view = manager.create_instance(
        InstanceRequest(name="ctr", template="idle", command=["/bin/busybox", "sh", "-c", script])
    )
    counter = f"/proc/{view.pid}/root/tmp/c"

    def read() -> int:
        with open(counter) as handle:
            return int(handle.read().strip())

    def counted() -> int:
        try:
            return read()
        except (OSError, ValueError):  # not written yet
            return 0

    assert wait_until(lambda: counted() > 3, timeout=10)
    assert manager.pause("ctr").state == "paused"
    assert manager.cgroups.frozen(view.id)
    frozen_value = read()
    # An observation window, not a synchronisation: unfrozen, the loop would count ~150 times
    # in it; a slow machine can only make this pass for the wrong reason, never fail it.
    time.sleep(0.3)
    assert read() == frozen_value
    assert view.pid in manager.cgroups.procs(view.id)  # frozen, not killed
    assert manager.resume("ctr").state == "running"
    # generous: the VM tier runs under TCG
    assert wait_until(lambda: read() > frozen_value + 10, timeout=10, period=0.02)


def test_small_memory_limit_applies_after_runc_init(manager_factory: ManagerFactory) -> None:
    """The built-in idle template (8 MiB) is below the headroom a shell is created with (runc
    init needs more on cgroup v2): once running, the instance has the template's limit."""
    manager = manager_factory(pool_scale=0)
    template = manager.get_template("idle")
    assert template.resources.memory_mb < INIT_MEMORY_MB
    view = manager.create_instance(InstanceRequest(name="small", template="idle"))
    assert manager.cgroups.memory_limit(view.id) == template.resources.memory_mb * 1024 * 1024
    sized = manager.create_instance(
        InstanceRequest(name="sized", template="idle", resources={"memory_mb": 12})
    )
    assert manager.cgroups.memory_limit(sized.id) == 12 * 1024 * 1024


def test_cgroup_mode_reported_and_paused_delete_kills_everything(
    manager_factory: ManagerFactory,
) -> None:
    manager = manager_factory(pool_scale=0)
    kind = cgroups.mount_kind(Path("/proc/self/mountinfo").read_text())
    stats = manager.stats()
    assert stats["cgroup"]["mode"] == kind
    assert stats["cgroup"]["mode"] == manager.cgroups.kind
    assert stats["runtime"]["name"] == manager.config.runtime
    assert manager.runc.root.name == manager.config.runtime
    # A workload with children, paused, then deleted: the cgroup kill (v2: cgroup.kill, which
    # takes frozen tasks too) leaves no process, no cgroup, no container behind.
    view = manager.create_instance(
        InstanceRequest(
            name="fam",
            template="idle",
            command=["/bin/busybox", "sh", "-c", "sleep 1000 & sleep 1000 & sleep 1000"],
        )
    )
    assert wait_until(lambda: manager.cgroups.pids_current(view.id) >= 3, timeout=10)
    pids = manager.cgroups.procs(view.id)
    assert view.pid in pids
    manager.pause("fam")
    assert manager.cgroups.frozen(view.id)
    manager.delete_instance("fam")
    assert manager.cgroups.leftover(view.id) == []
    assert view.id not in _containers(manager)
    assert not any(procfs.process_running(pid) for pid in pids)


def test_workload_that_ends_shows_exited_and_deletes_cleanly(
    manager_factory: ManagerFactory,
) -> None:
    manager = manager_factory(pool_scale=0)
    # It ends when told (SIGUSR1), not after a timer that a loaded machine could outrun before
    # the view below is taken.
    script = 'trap "exit 0" USR1; while true; do usleep 20000; done'
    view = manager.create_instance(
        InstanceRequest(name="brief", template="idle", command=["/bin/busybox", "sh", "-c", script])
    )
    assert view.state == "running"
    pid = view.pid
    assert pid is not None

    def trapped() -> bool:  # the shell has installed its trap (else USR1 to a pid 1 is lost)
        status = Path(f"/proc/{pid}/status").read_text()
        caught = next(ln for ln in status.splitlines() if ln.startswith("SigCgt:"))
        return bool(int(caught.split()[1], 16) & (1 << (signal.SIGUSR1 - 1)))

    assert wait_until(trapped, timeout=10)
    os.kill(pid, signal.SIGUSR1)
    assert wait_until(lambda: manager.get_instance("brief").view().state == "exited", timeout=10)
    manager.delete_instance("brief")
    assert view.id not in _containers(manager)
    assert manager.cgroups.leftover(view.id) == []


def test_pooled_shells_are_pinned_and_warm_instances_get_their_placement(
    manager_factory: ManagerFactory,
) -> None:
    manager = manager_factory(pool_scale=1.0, cpus="0-1")
    assert manager.wait_pools(120)
    shells = list(manager.pools["idle"].ready)
    assert {s.cpus for s in shells} == {(0,), (1,)}  # spread over both CPUs
    for shell in shells:
        assert manager.cgroups.cpus(shell.id) == str(shell.cpus[0])
    views = [
        manager.create_instance(InstanceRequest(name=f"pin{i}", template="idle")) for i in range(3)
    ]
    views.append(
        manager.create_instance(
            InstanceRequest.model_validate(
                {"name": "both", "template": "idle", "resources": {"cpus": 1.5}}
            )
        )
    )
    for view in views:
        assert view.path == "warm"
        assert parse_cpu_list(manager.cgroups.cpus(view.id)) == tuple(view.cpus)
    assert len(views[-1].cpus) == 2  # no shell is pinned to both: its cpuset was written


def test_v1_cpusets_stay_out_of_the_schedulers_domain_rebuilds(
    manager_factory: ManagerFactory,
) -> None:
    """cgroup v1 with a load-balancing root cpuset: every shell's cpuset is made with
    ``cpuset.sched_load_balance`` 0 before the runtime fills it in (its CPU writes and its
    removal then rebuild no scheduling domain, bench/cpuset_rebuild.py), and still holds the
    CPUs placement gave it, through a claim that moved it; /stats says so; deleted, it is gone.
    On v2 there is no such flag and nothing is made ahead."""
    manager = manager_factory(pool_scale=1.0, cpus="0-1")
    assert manager.wait_pools(120)
    cg = manager.cgroups
    if not isinstance(cg, cgroups.CgroupsV1):
        assert isinstance(cg, cgroups.CgroupsV2)
        cg.before_create("fe-not-made")  # v2 has no such flag: nothing is made ahead
        assert not cg.dir("fe-not-made").exists()
        return
    root_balances = (cg.root / "cpuset" / "cpuset.sched_load_balance").read_text().strip() == "1"
    assert cg.describe()["quiet_cpusets"] is root_balances
    assert root_balances, "this host's root cpuset does not balance load: nothing to test"
    for shell in manager.pools["idle"].ready:
        flag = cg.dir("cpuset", shell.id) / "cpuset.sched_load_balance"
        assert flag.read_text().strip() == "0", shell.id
    view = manager.create_instance(
        InstanceRequest.model_validate(
            {"name": "quiet", "template": "idle", "resources": {"cpus": 1.5}}
        )
    )
    assert parse_cpu_list(cg.cpus(view.id)) == tuple(view.cpus) == (0, 1)  # written at the claim
    assert (cg.dir("cpuset", view.id) / "cpuset.sched_load_balance").read_text().strip() == "0"
    manager.delete_instance("quiet")
    assert cg.leftover(view.id) == []


def _own_cpu_cgroup() -> str:
    """This process's cgroup in the hierarchy holding the cpu controller (v1) or unified."""
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if "cpu" in controllers.split(","):
            return path
    return next(
        line.split(":", 2)[2]
        for line in Path("/proc/self/cgroup").read_text().splitlines()
        if line.startswith("0::")
    )


def _weight(manager: Manager, container_id: str) -> int:
    cg = manager.cgroups
    if isinstance(cg, cgroups.CgroupsV1):
        return int((cg.dir("cpu", container_id) / "cpu.shares").read_text())
    assert isinstance(cg, cgroups.CgroupsV2)
    return int((cg.dir(container_id) / "cpu.weight").read_text())


def _weight_for(manager: Manager, cpus: float) -> int:
    if isinstance(manager.cgroups, cgroups.CgroupsV1):
        return cpu_shares(cpus)
    return cgroups.cpu_weight(cpus)


def test_instances_start_in_the_idle_class_until_answered(
    manager_factory: ManagerFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Idle start (fluidedge.instances.cgroups): the daemon (here this process) sits beside
    the instances; a pooled shell of a template whose readiness is "started" waits in the idle
    class and is released in it; it leaves the class once the caller's answer is out (or
    before create_instance returns to a caller that answers no one, or at re-adoption after
    a stop in between); a template whose readiness needs the workload's CPU (httpd: a TCP
    port) never starts idle."""
    manager = manager_factory(pool_scale=1.0)
    cg = manager.cgroups
    assert cg.idle_start, cg.idle_start_why
    assert _own_cpu_cgroup() == f"{cg.parent}/daemon"
    # ... with the highest weight: beside N instances it must not get 1/(N+1) of their CPU
    if isinstance(cg, cgroups.CgroupsV1):
        daemon_weight = cg.root / "cpu" / cg.parent.lstrip("/") / "daemon" / "cpu.shares"
    else:
        assert isinstance(cg, cgroups.CgroupsV2)
        daemon_weight = cg.parent_dir / "daemon" / "cpu.weight"
    assert int(daemon_weight.read_text()) == (262144 if cg.mode == "v1" else 10000)
    assert manager.wait_pools(60)
    assert all(cg.cpu_idle(shell.id) for shell in manager.pools["idle"].ready)
    assert not any(cg.cpu_idle(shell.id) for shell in manager.pools["httpd"].ready)
    after: list[Any] = []
    view = manager.create_instance(InstanceRequest(name="a", template="idle"), after_answer=after)
    assert cg.cpu_idle(view.id)  # released in the idle class, the answer not out yet
    for call in after:
        call()
    assert not cg.cpu_idle(view.id)
    # leaving the class resets a cgroup's weight: the request's is written back
    assert _weight(manager, view.id) == _weight_for(manager, view.resources.cpus)
    plain = manager.create_instance(
        InstanceRequest.model_validate(
            {"name": "b", "template": "idle", "resources": {"cpus": 0.3}}
        )
    )
    assert not cg.cpu_idle(plain.id)
    assert _weight(manager, plain.id) == _weight_for(manager, 0.3)
    web = manager.create_instance(InstanceRequest(name="w", template="httpd"))
    assert not cg.cpu_idle(web.id)
    # A stop between the answer and the promotion: the next start promotes it. That start
    # may not move beside its instances (refused here): the pooled shells left idle by the
    # last daemon leave the class too, with their template's weight.
    pending = manager.create_instance(InstanceRequest(name="c", template="idle"), after_answer=[])
    assert cg.cpu_idle(pending.id)
    assert manager.wait_pools(60)
    pooled = [shell.id for shell in manager.pools["idle"].ready]
    assert len(pooled) == 4
    assert all(cg.cpu_idle(shell_id) for shell_id in pooled)
    manager.stop()
    monkeypatch.setattr(cgroups, "settle_beside", lambda *_args: (True, False, "refused (test)"))
    again = Manager(manager.config, Store(tmp_path / "db0.sqlite"), manager.state_dir)
    again.start()
    try:
        assert not again.cgroups.idle_start
        assert again.stats()["cgroup"]["idle_start_why"] == "refused (test)"
        assert again.get_instance("c").state == "running"
        assert not cg.cpu_idle(pending.id)
        assert {s.id for s in again.pools["idle"].ready} >= set(pooled)
        idle = again.templates["idle"].resources.cpus
        for shell_id in pooled:
            assert not cg.cpu_idle(shell_id)
            assert _weight(again, shell_id) == _weight_for(again, idle)
    finally:
        again.purge()


def _cpu_quota(manager: Manager, container_id: str) -> int:
    cg = manager.cgroups
    if isinstance(cg, cgroups.CgroupsV1):
        return int((cg.dir("cpu", container_id) / "cpu.cfs_quota_us").read_text())
    assert isinstance(cg, cgroups.CgroupsV2)
    quota = (cg.dir(container_id) / "cpu.max").read_text().split()[0]
    return -1 if quota == "max" else int(quota)


def test_pooled_shells_carry_the_default_cap_and_a_warm_creation_writes_none(
    manager_factory: ManagerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Admission gives every instance a CPU cap (``default_cpu_limit``, 1 CPU): the daemon's
    scoping makes pooled shells with it, in their cgroup from ``runc create`` on, so a warm
    creation writes no CFS knob; a request with another cap still gets its own."""
    manager = manager_factory(pool_scale=0)
    scoped = Scoped(manager, None)  # what the daemon builds: sets manager.shell_limits
    template = manager.get_template("idle")
    assert template.resources.cpu_limit is None
    for _ in range(2):
        manager.pools["idle"].ready.append(manager.prepare_shell(template))
    for shell in manager.pools["idle"].ready:
        assert _cpu_quota(manager, shell.id) == cpu_quota_us(1.0)
    writes: list[tuple[str, float | None]] = []
    real = manager.cgroups.set_cpu_limit

    def set_cpu_limit(container_id: str, cpu_limit: float | None) -> None:
        writes.append((container_id, cpu_limit))
        real(container_id, cpu_limit)

    monkeypatch.setattr(manager.cgroups, "set_cpu_limit", set_cpu_limit)
    views = []
    for name, extra in (("capped", {}), ("half", {"resources": {"cpu_limit": 0.5}})):
        request = InstanceRequest.model_validate({"name": name, "template": "idle", **extra})
        with scoped.admit_instance(ADMIN, request, None) as checked:
            views.append(manager.create_instance(checked))
    assert [v.path for v in views] == ["warm", "warm"]
    assert writes == [(views[1].id, 0.5)]  # the default cap was there already
    assert _cpu_quota(manager, views[0].id) == cpu_quota_us(1.0)
    assert _cpu_quota(manager, views[1].id) == cpu_quota_us(0.5)
