"""A request that fails at any step of its execute phase is rolled back whole.

The manager runs on a recording double of its containers' adapter (the
:class:`~fluidedge.instances.shell.ShellIO` seam) and a real SQLite store; the functional tests
(tests/functional/instances/test_pool_and_paths.py) run the same rollback on real runc
containers through :class:`~fluidedge.instances.shell.RuncShellIO`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from fluidedge.core.store import Store, StoreError
from fluidedge.instances.config import InstancesConfig
from fluidedge.instances.errors import (
    AddressInUse,
    LauncherGone,
    ReadinessTimeout,
    RuntimeFailure,
    WorkloadFailed,
)
from fluidedge.instances.images.config import ImageConfig
from fluidedge.instances.images.store import ImageView
from fluidedge.instances.manager import Manager
from fluidedge.instances.models import (
    InstanceRequest,
    InterfaceState,
    NetworkSpec,
    Readiness,
    Resources,
    TemplateSpec,
)
from fluidedge.instances.readiness import StartWatch
from fluidedge.instances.records import Shell, ShellIface

STEPS = ("build", "configure", "address", "forget_neighbours", "release", "wait_ready")


class FakeIO:
    """Records what the manager asks of containers; fails at ``fail_at`` (with ``error``)."""

    launcher_kind = "c"

    def __init__(self) -> None:
        self.fail_at: str | None = None
        self.error: BaseException = RuntimeFailure("injected")
        self.built: list[str] = []
        self.destroyed: list[str] = []
        self.calls: list[tuple[str, str]] = []
        self.forgotten: list[tuple[str, list[str]]] = []
        self.next_pid = 1000
        self.dead: set[int] = set()  # launchers that exited (pids)
        self.release_kills = False  # the next launcher dies between the take and its go
        # shell id -> the write end of the pipe its exit_fd reads (None: no exit descriptors)
        self.exit_pipes: dict[str, int] | None = None
        self.exit_error: OSError | None = None  # what exit_fd raises (e.g. out of descriptors)
        self.exit_errors: dict[str, OSError] = {}  # ... for one shell
        self.idle_start = True  # shells are built in the idle CPU class
        self.built_with: list[Resources] = []  # the limits each shell's cgroup was made with
        self.limits: list[tuple[Resources, Resources]] = []  # configure's (base, wanted)

    def _step(self, step: str, shell_id: str) -> None:
        self.calls.append((step, shell_id))
        if self.fail_at == step:
            raise self.error

    def setup(self) -> None:
        raise AssertionError("not started in unit tests")

    def build(self, shell: Shell, template: TemplateSpec, networks: dict[str, NetworkSpec]) -> None:
        del networks
        self.built_with.append(template.resources)
        self._step("build", shell.id)
        self.next_pid += 1
        shell.pid = self.next_pid
        shell.idle = self.idle_start  # a host whose shells start in the idle class
        self.built.append(shell.id)

    def destroy(self, container_id: str, ifaces: list[ShellIface], directory: Path) -> None:
        del ifaces, directory
        self.destroyed.append(container_id)

    def configure(  # noqa: PLR0917 (the protocol's signature)
        self,
        shell: Shell,
        files: dict[str, str],
        assignment: bytes,
        base: Resources,
        wanted: Resources,
        cpus: tuple[int, ...],
    ) -> None:
        del files, assignment, cpus
        self.limits.append((base, wanted))
        self._step("configure", shell.id)

    def address(self, shell: Shell, interfaces: list[InterfaceState]) -> None:
        del interfaces
        self._step("address", shell.id)

    def forget_neighbours(self, spec: NetworkSpec, addresses: list[str]) -> None:
        self.forgotten.append((spec.name, list(addresses)))
        self._step("forget_neighbours", spec.name)

    def revive_veth(
        self,
        container_id: str,
        pid: int,
        spec: NetworkSpec,
        iface: ShellIface,
        state: InterfaceState | None,
        *,
        isolated: bool,
    ) -> bool:
        del pid, spec, state, isolated
        self._step("revive_veth", f"{container_id}/{iface.name}")
        return True

    def release(self, shell: Shell, *, watch: bool) -> StartWatch | None:
        del watch
        self._step("release", shell.id)
        if self.release_kills:  # once
            self.release_kills = False
            self.dead.add(shell.pid)
            raise LauncherGone(f"launcher {shell.pid} exited before its go")
        return None

    def alive(self, shell: Shell) -> bool:
        return shell.pid not in self.dead

    def exit_fd(self, shell: Shell) -> int | None:
        error = self.exit_errors.get(shell.id, self.exit_error)
        if error is not None:
            raise error
        if self.exit_pipes is None:
            return None
        if shell.pid in self.dead:
            raise ProcessLookupError(f"launcher {shell.pid} has exited")
        read_end, write_end = os.pipe2(os.O_CLOEXEC)
        self.exit_pipes[shell.id] = write_end
        return read_end

    def kill(self, shell_id: str, pid: int) -> None:
        """The launcher of ``shell_id`` exits: its exit descriptor becomes readable."""
        self.dead.add(pid)
        if self.exit_pipes is not None:
            os.close(self.exit_pipes.pop(shell_id))  # EOF: readable

    def wait_ready(self, check: Readiness, pid: int, name: str, watch: StartWatch | None) -> None:
        del check, pid, name, watch
        self._step("wait_ready", "")

    def answered(self, container_id: str, cpus: float) -> None:
        del cpus
        self.calls.append(("answered", container_id))

    def freeze(self, container_id: str, *, timeout: float) -> None:
        del container_id, timeout

    def thaw(self, container_id: str, *, timeout: float) -> None:
        del container_id, timeout

    def describe(self) -> dict[str, Any]:
        return {"fake": True}


class RecordingCos:
    def __init__(self) -> None:
        self.bound: list[str] = []
        self.unbound: list[str] = []

    def check(self, cos: str) -> tuple[int, ...] | None:
        del cos
        return None

    def bind(self, instance: str, cos: str, pid: int) -> None:
        del cos, pid
        self.bound.append(instance)

    def unbind(self, instance: str) -> None:
        self.unbound.append(instance)


def fake_image(name: str) -> ImageView:
    """A store record with no rootfs behind it (nothing here mounts one)."""
    return ImageView(
        name=name,
        digest="sha256:" + "0" * 64,
        rootfs="sha256:" + "1" * 64,
        config=ImageConfig(cmd=["/bin/sh"]),
        uid=0,
        gid=0,
        size_bytes=0,
        format="oci",
        imported_at=0.0,
    )


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Manager, FakeIO]:
    io = FakeIO()
    config = InstancesConfig(cpus="0-1", memory_mb=1024, builtin_templates=False)
    manager = Manager(config, Store(tmp_path / "db.sqlite"), tmp_path / "state", io=io)
    # The image store's record of the default image (the double mounts no root).
    manager.images.images["busybox"] = fake_image("busybox")
    # A network known to the catalog without a bridge behind it: the double plugs nothing.
    manager.networks["lan"] = NetworkSpec(name="lan", bridge="unused0", subnet="10.9.0.0/24")
    manager.create_template(
        TemplateSpec.model_validate(
            {
                "name": "app",
                "command": ["/bin/app"],
                "interfaces": [{"name": "eth0", "network": "lan"}],
                "resources": {"memory_mb": 64},
                "pool": {"size": 2},
            }
        )
    )
    return manager, io


def _request(name: str = "x", address: str = "10.9.0.5/24", **extra: Any) -> InstanceRequest:
    return InstanceRequest.model_validate(
        {
            "name": name,
            "template": "app",
            "interfaces": {"eth0": {"addresses": [address]}},
            **extra,
        }
    )


def _nothing_held(manager: Manager, name: str) -> None:
    assert name not in manager.instances
    assert name not in manager.reserved_names
    assert name not in manager.placed
    assert manager.addresses == {}
    assert manager.usage.committed_mb == 0
    assert all(load == 0 for load in manager.usage.loads.values())
    assert manager.tables.instances() == []


@pytest.mark.parametrize("step", STEPS)
@pytest.mark.parametrize("cold", [False, True])
def test_failure_at_any_step_releases_everything(
    setup: tuple[Manager, FakeIO], step: str, cold: bool
) -> None:
    manager, io = setup
    pooled = [manager.prepare_shell(manager.templates["app"]) for _ in range(2)]
    manager.pools["app"].ready.extend(pooled)
    if cold or step == "build":  # a warm request builds nothing: build fails only cold
        cold = True
    io.fail_at = step
    with pytest.raises(RuntimeFailure, match="injected"):
        manager.create_instance(_request(cold=cold))
    _nothing_held(manager, "x")
    if cold:  # the shell made for the request (its build may be what failed)
        (taken,) = {i for s, i in io.calls if s == "build"} - {s.id for s in pooled}
    else:
        taken = pooled[0].id
    assert io.destroyed == [taken]
    assert {s["id"] for s in manager.tables.shells()} == {s.id for s in manager.pools["app"].ready}
    assert taken not in {s.id for s in manager.pools["app"].ready}
    # the name and the address are free again
    io.fail_at = None
    view = manager.create_instance(_request(cold=cold))
    assert view.state in ("running", "exited")
    assert manager.addresses == {("lan", "10.9.0.5"): "x"}
    assert [r["name"] for r in manager.tables.instances()] == ["x"]


@pytest.mark.parametrize(
    "error", [WorkloadFailed("exited at start"), ReadinessTimeout("not ready"), KeyboardInterrupt()]
)
def test_readiness_failures_and_interrupts_roll_back_too(
    setup: tuple[Manager, FakeIO], error: BaseException
) -> None:
    manager, io = setup
    io.fail_at, io.error = "wait_ready", error
    with pytest.raises(type(error)):
        manager.create_instance(_request())
    _nothing_held(manager, "x")
    assert io.destroyed == io.built  # the cold shell made for it is gone


def test_rejected_request_touches_no_shell(setup: tuple[Manager, FakeIO]) -> None:
    manager, io = setup
    manager.pools["app"].ready.append(manager.prepare_shell(manager.templates["app"]))
    manager.create_instance(_request("a"))
    with pytest.raises(AddressInUse):
        manager.create_instance(_request("b"))
    assert "b" not in manager.reserved_names
    assert io.destroyed == []
    assert manager.addresses == {("lan", "10.9.0.5"): "a"}


def test_failure_unbinds_the_class_of_service(setup: tuple[Manager, FakeIO]) -> None:
    manager, io = setup
    cos = RecordingCos()
    manager.cos_binder = cos
    io.fail_at = "release"
    with pytest.raises(RuntimeFailure):
        manager.create_instance(_request(cos="gold"))
    assert cos.bound == ["x"]
    assert cos.unbound == ["x"]
    _nothing_held(manager, "x")


def test_dead_pooled_shells_are_discarded_and_the_next_one_taken(
    setup: tuple[Manager, FakeIO],
) -> None:
    manager, io = setup
    pooled = [manager.prepare_shell(manager.templates["app"]) for _ in range(2)]
    manager.pools["app"].ready.extend(pooled)
    io.dead.add(pooled[0].pid)  # died while it waited in the pool
    view = manager.create_instance(_request())
    assert view.id == pooled[1].id
    assert view.path == "warm"
    assert io.destroyed == [pooled[0].id]
    assert pooled[0].id not in {s["id"] for s in manager.tables.shells()}
    assert "launcher had exited" in (manager.pools["app"].last_error or "")
    # every pooled shell dead: the cold path, not an error
    manager.pools["app"].ready.append(manager.prepare_shell(manager.templates["app"]))
    io.dead.add(manager.pools["app"].ready[0].pid)
    assert manager.create_instance(_request("y", "10.9.0.6/24")).path == "cold"


def test_a_launcher_dying_after_the_take_sends_the_request_down_the_cold_path(
    setup: tuple[Manager, FakeIO],
) -> None:
    manager, io = setup
    pooled = manager.prepare_shell(manager.templates["app"])
    manager.pools["app"].ready.append(pooled)
    io.release_kills = True
    view = manager.create_instance(_request())
    assert view.path == "cold"
    assert view.state in ("running", "exited")  # the double's pids are no processes
    assert pooled.id in io.destroyed
    assert [r["name"] for r in manager.tables.instances()] == ["x"]
    assert manager.addresses == {("lan", "10.9.0.5"): "x"}
    # cold and dying too: that is the request's error (no loop)
    io.dead.clear()
    io.release_kills = True
    with pytest.raises(LauncherGone):
        manager.create_instance(_request("y", "10.9.0.6/24", cold=True))
    _nothing_held_but(manager, "y")


def _nothing_held_but(manager: Manager, name: str) -> None:
    assert name not in manager.instances
    assert name not in manager.reserved_names
    assert ("lan", "10.9.0.6") not in manager.addresses


def test_failed_cold_build_leaves_no_shell_row(setup: tuple[Manager, FakeIO]) -> None:
    manager, io = setup
    io.fail_at = "build"
    with pytest.raises(RuntimeFailure):
        manager.create_instance(_request())
    assert manager.tables.shells() == []
    assert len(io.destroyed) == 1
    _nothing_held(manager, "x")


def test_follow_up_writes_never_resurrect_nor_overwrite(setup: tuple[Manager, FakeIO]) -> None:
    manager, _ = setup
    manager.create_instance(_request("a"))
    manager.writer.flush()
    (row,) = manager.tables.instances()
    assert row["timing"]["total"] > 0  # the deferred timing update landed
    manager.tables.update_instance({**row, "state": "paused"})
    assert manager.tables.instances()[0]["state"] == "paused"
    manager.tables.update_instance({**row, "id": "fe-other", "state": "running"})
    assert manager.tables.instances()[0]["state"] == "paused"  # another instance's write
    manager.delete_instance("a")
    manager.tables.update_instance(row)  # late, after the delete
    assert manager.tables.instances() == []


@pytest.mark.parametrize("cold", [False, True])
def test_the_network_forgets_the_neighbour_entry_of_an_assigned_address(
    setup: tuple[Manager, FakeIO], cold: bool
) -> None:
    """Addresses come back (delete, create again at the same address): the network's side
    must not keep the previous holder's MAC, on the warm and the cold path alike."""
    manager, io = setup
    if not cold:
        manager.pools["app"].ready.append(manager.prepare_shell(manager.templates["app"]))
    manager.create_instance(_request(cold=cold))
    assert io.forgotten == [("lan", ["10.9.0.5/24"])]
    steps = [step for step, _ in io.calls]
    assert steps.index("address") < steps.index("forget_neighbours") < steps.index("release")


def test_the_instance_leaves_the_idle_class_after_the_answer_or_before_returning(
    setup: tuple[Manager, FakeIO],
) -> None:
    """A caller that answers someone gets the promotion to run once its answer is out; any
    other caller's instance is promoted before create_instance returns."""
    manager, io = setup
    view = manager.create_instance(_request("a"))
    assert ("answered", view.id) in io.calls  # no caller to wait for
    after: list[Any] = []
    view = manager.create_instance(_request("b", "10.9.0.6/24"), after_answer=after)
    assert ("answered", view.id) not in io.calls
    manager.writer.flush()
    assert manager.tables.instances()[-1]["timing"] == {}  # the follow-ups wait too
    for call in after:
        call()
    assert io.calls[-1] == ("answered", view.id)
    manager.writer.flush()
    assert manager.tables.instances()[-1]["timing"]["total"] > 0
    io.idle_start = False  # a shell not started idle has no class to leave: nothing written
    view = manager.create_instance(_request("c", "10.9.0.7/24"))
    assert ("answered", view.id) not in io.calls


def test_the_claim_is_committed_before_the_release_and_flushed_before_the_answer(
    setup: tuple[Manager, FakeIO], monkeypatch: pytest.MonkeyPatch
) -> None:
    manager, io = setup
    seen: list[str] = []
    store = manager.tables.store
    real_sync = store.sync

    def sync() -> None:
        seen.append("sync")
        real_sync()

    def release(shell: Shell, *, watch: bool) -> StartWatch | None:
        # the claim is a committed row when the workload is let go
        assert shell.id in {r["id"] for r in manager.tables.instances()}
        seen.append("release")
        return FakeIO.release(io, shell, watch=watch)

    monkeypatch.setattr(store, "sync", sync)
    monkeypatch.setattr(io, "release", release)
    manager.create_instance(_request("a"))
    assert sorted(seen) == ["release", "sync"]  # both happened before it returned
    seen.clear()
    manager.create_instance(_request("b", "10.9.0.6/24"), durable=False)
    assert seen == ["release"]  # on-demand instances: no flush waited for


def test_a_failed_flush_is_never_answered_as_created(
    setup: tuple[Manager, FakeIO], monkeypatch: pytest.MonkeyPatch
) -> None:
    manager, io = setup

    def sync() -> None:
        raise StoreError("store: sync of db.sqlite-wal failed: Input/output error")

    monkeypatch.setattr(manager.tables.store, "sync", sync)
    with pytest.raises(StoreError, match="Input/output error"):
        manager.create_instance(_request("a"))
    _nothing_held(manager, "a")
    assert ("release", io.built[-1]) in io.calls  # it had started: destroyed by the rollback
    assert io.destroyed == [io.built[-1]]


def test_pooled_shells_are_made_with_the_limits_a_request_ends_up_with(
    setup: tuple[Manager, FakeIO],
) -> None:
    """With admission's default CPU cap (``shell_limits``), a pooled shell's cgroup is made
    capped, the shell says so (its row too: a restart re-adopts it with it), and a warm
    creation with that cap has nothing to change; one with another cap changes it."""
    manager, io = setup
    manager.shell_limits = lambda r: r.model_copy(update={"cpu_limit": 1.0})
    pooled = [manager.prepare_shell(manager.templates["app"]) for _ in range(2)]
    manager.pools["app"].ready.extend(pooled)
    assert [r.cpu_limit for r in io.built_with] == [1.0, 1.0]
    assert pooled[0].base is not None
    assert pooled[0].base.cpu_limit == 1.0
    row = next(r for r in manager.tables.shells() if r["id"] == pooled[0].id)
    assert Shell.from_info(row).base == pooled[0].base
    manager.create_instance(_request(resources={"cpu_limit": 1.0}))
    base, wanted = io.limits[-1]
    assert base == wanted  # no knob to write
    manager.create_instance(_request("y", "10.9.0.6/24", resources={"cpu_limit": 0.5}))
    base, wanted = io.limits[-1]
    assert (base.cpu_limit, wanted.cpu_limit) == (1.0, 0.5)
    # Without the hook (or a template that names its own cap) the template's limits, as before.
    manager.shell_limits = None
    plain = manager.prepare_shell(manager.templates["app"])
    assert plain.base is None
    assert "base" not in plain.info()
