"""The controller's decisions against a fake instance manager (the real one is exercised by
tests/e2e/superfluid through the same methods) and the null backend's real pipeline."""

from __future__ import annotations

import ipaddress
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from tests.fixtures.wait import wait_until

from fluidedge.core import rows
from fluidedge.core.store import Store
from fluidedge.instances.errors import InstanceNotFound, TemplateNotFound
from fluidedge.tenants.errors import QuotaExceeded
from fluidedge.tof.backend import NullBackend
from fluidedge.tof.config import TofConfig
from fluidedge.tof.models import Service
from fluidedge.tof.superfluid.admission import NoAdmission
from fluidedge.tof.superfluid.controller import LABEL_SERVICE, Controller
from fluidedge.tof.superfluid.errors import OnDemandTargetMissing
from fluidedge.tof.superfluid.model import OnDemand

UE1 = ipaddress.IPv4Address("198.18.100.1").packed
UE2 = ipaddress.IPv4Address("198.18.100.2").packed


@dataclass
class FakeInstance:
    name: str
    id: str
    state: str
    labels: dict[str, str]


@dataclass
class FakeIface:
    name: str
    network: str


@dataclass
class FakeTemplate:
    interfaces: list[FakeIface]


@dataclass
class FakeNetwork:
    netns: str | None = None
    bridge: str = "nobridge"
    subnet: str | None = "198.19.0.0/24"


@dataclass
class FakeCgroups:
    thawed: list[str] = field(default_factory=list)

    fail: bool = False
    prepared: bool = True  # thawer() works (False: the wake opens the files itself)
    closed: list[str] = field(default_factory=list)

    def thaw(self, container_id: str, *, timeout: float = 1.0) -> None:
        if self.fail:
            raise OSError(5, "thaw failed")
        self.thawed.append(container_id)

    def thawer(self, container_id: str) -> FakeThawer:
        if not self.prepared:
            raise OSError(2, "no freezer files")
        return FakeThawer(self, container_id)


@dataclass
class FakeThawer:
    cgroups: FakeCgroups
    container_id: str

    def thaw(self) -> bool:
        if self.cgroups.fail:
            raise OSError(5, "thaw failed")
        self.cgroups.thawed.append(self.container_id)
        return True

    def close(self) -> None:
        self.cgroups.closed.append(self.container_id)


class FakeManager:
    def __init__(self) -> None:
        self.instances: dict[str, FakeInstance] = {}
        self.requests: list[Any] = []
        self.durable: list[bool] = []
        self.calls: list[tuple[str, str]] = []
        self.cgroups = FakeCgroups()

    def get_template(self, name: str) -> FakeTemplate:
        if name != "edge":
            raise TemplateNotFound(f"template {name!r} does not exist")
        return FakeTemplate([FakeIface("eth0", "apps")])

    def get_network(self, name: str) -> FakeNetwork:
        return FakeNetwork()

    def create_instance(self, request: Any, *, durable: bool = True) -> None:
        self.durable.append(durable)
        self.requests.append(request)
        self.instances[request.name] = FakeInstance(
            request.name, f"id-{request.name}", "running", dict(request.labels)
        )

    def get_instance(self, name: str) -> FakeInstance:
        if name not in self.instances:
            raise InstanceNotFound(name)
        return self.instances[name]

    def list_instances(self) -> list[FakeInstance]:
        return list(self.instances.values())

    def pause(self, name: str) -> None:
        self.calls.append(("pause", name))
        self.instances[name].state = "paused"

    def resume(self, name: str) -> None:
        self.calls.append(("resume", name))
        self.instances[name].state = "running"

    def delete_instance(self, name: str) -> None:
        self.calls.append(("delete", name))
        del self.instances[name]


def spec(**kw: Any) -> OnDemand:
    base: dict[str, Any] = {
        "template": "edge",
        "policy": "per-ue",
        "max_instances": 2,
        "idle_pause": 1.0,
        "idle_delete": 2.0,
        "address_pool": "198.19.0.64/29",
        "gateway": "198.19.0.1",
    }
    base.update(kw)
    return OnDemand(**base)


def service(**kw: Any) -> dict[str, Service]:
    return {"web": Service("web", "198.18.50.1", "0.0.0.0", spec(**kw))}


def make(tmp_path: Path, manager: FakeManager | None = None, **kw: Any) -> Controller:
    backend = NullBackend(TofConfig(backend="none"))
    services = service(**kw)
    backend.apply(services)
    controller = Controller(
        manager or FakeManager(),  # type: ignore[arg-type]
        backend,
        Store(tmp_path / "db.sqlite"),
        workers=1,
    )
    controller.services = {n: s.ondemand for n, s in services.items() if s.ondemand}
    return controller


def paused(tmp_path: Path) -> tuple[Controller, FakeManager, Any, str]:
    """A controller whose one (per-ue, UE1) instance was paused by its idle timer: the
    controller, the fake manager, the data plane's table and the instance's name."""
    manager = FakeManager()
    c = make(tmp_path, manager)
    table = c.plane.pipeline.ondemand  # type: ignore[attr-defined]
    c._create("web", UE1)
    [name] = manager.instances
    c.idle_pass(time.monotonic() + 1.5)
    return c, manager, table, name


def test_create_points_the_binding_and_records_it(tmp_path: Path) -> None:
    c = make(tmp_path)
    table = c.plane.pipeline.ondemand  # type: ignore[attr-defined]
    table.admit("web", UE1, "k", b"p", 0.0)
    c._create("web", UE1)
    [request] = c.manager.requests  # type: ignore[attr-defined]
    assert request.template == "edge"
    assert request.interfaces["eth0"].addresses == ["198.19.0.65/24"]
    assert request.interfaces["eth0"].gateway == "198.19.0.1"
    assert request.labels == {LABEL_SERVICE: "web", "fluidedge.tof.superfluid.ue": "198.18.100.1"}
    assert table.activity()[("web", UE1)][0] == "ready"
    assert c.instances_of("web")[0]["address"] == "198.19.0.65"
    assert c.counts()["web"] == {"created": 1}
    assert c.manager.durable == [False]  # type: ignore[attr-defined]  # no fsync on the path


def test_bound_refuses_counted(tmp_path: Path) -> None:
    c = make(tmp_path, max_instances=1)
    c._create("web", UE1)
    table = c.plane.pipeline.ondemand  # type: ignore[attr-defined]
    table.admit("web", UE2, "k", b"p", 0.0)
    c._create("web", UE2)
    assert c.counts()["web"] == {"created": 1, "refused_max_instances": 1}
    assert table.drops["refused_max_instances"] == 1
    assert ("web", UE2) not in table.activity()


def test_idle_pause_then_delete(tmp_path: Path) -> None:
    manager = FakeManager()
    c = make(tmp_path, manager)
    c._create("web", UE1)
    [name] = manager.instances
    now = time.monotonic()
    c.idle_pass(now + 0.5)
    assert manager.calls == []
    c.idle_pass(now + 1.5)
    assert manager.calls == [("pause", name)]
    c.idle_pass(now + 2.0)  # T2 counts from the pause
    assert ("delete", name) not in manager.calls
    c.idle_pass(time.monotonic() + 2.1)
    assert manager.calls[-1] == ("delete", name)
    assert c.instances_of("web") == []
    assert c.counts()["web"] == {"created": 1, "paused": 1, "deleted": 1}


def test_a_packet_between_the_idle_look_and_the_pause_keeps_the_instance_running(
    tmp_path: Path,
) -> None:
    """The idle thread decides on a snapshot of the activity; a packet delivered before the
    pause takes effect must cancel it (the instance would be frozen with that packet in it)."""
    manager = FakeManager()
    c = make(tmp_path, manager)
    table = c.plane.pipeline.ondemand  # type: ignore[attr-defined]
    c._create("web", UE1)
    looked = table.activity
    delivered: list[bytes] = []

    def look_then_packet() -> dict[Any, tuple[str, float]]:
        snapshot = looked()
        delivered.append(table.admit("web", UE1, "k", b"p", time.monotonic()))
        return snapshot

    table.activity = look_then_packet
    c.idle_pass(time.monotonic() + 1.5)
    assert delivered == [ipaddress.IPv4Address("198.19.0.65").packed]  # went to the instance
    assert manager.calls == []  # not frozen under it
    assert looked()[("web", UE1)][0] == "ready"
    assert c.instances_of("web")[0]["state"] == "running"


def test_a_packet_wakes_a_frozen_instance_on_the_packet_path(tmp_path: Path) -> None:
    c, manager, table, name = paused(tmp_path)
    assert table.bindings[("web", UE1)].frozen  # the freeze is confirmed
    table.waker = c._wake
    table.sink = c._sink
    assert (
        table.admit("web", UE1, "k", b"p", time.monotonic())
        == ipaddress.IPv4Address("198.19.0.65").packed
    )
    assert manager.cgroups.thawed == [f"id-{name}"]  # thawed before the packet went on
    assert table.activity()[("web", UE1)][0] == "ready"
    assert table.counters["demand_resumed"] == 1
    assert c.counts()["web"]["resumed"] == 1  # counted at once
    assert manager.calls[-1] == ("pause", name)  # recorded later, by the idle thread
    assert c._resumes.qsize() == 0  # the notice woke no thread
    c.idle_pass(time.monotonic())  # not before RECORD_AFTER
    assert manager.calls[-1] == ("pause", name)
    c.idle_pass(time.monotonic() + 0.5)  # its next look (T1 is 1 s: no new pause)
    assert manager.calls[-1] == ("resume", name)
    assert manager.cgroups.closed == [f"id-{name}"]  # the prepared thaw, released
    assert c.instances_of("web")[0]["state"] == "running"
    assert c.counts()["web"]["resumed"] == 1


def test_a_wake_without_a_prepared_thaw_opens_the_freezer_itself(tmp_path: Path) -> None:
    manager = FakeManager()
    manager.cgroups.prepared = False
    c = make(tmp_path, manager)
    table = c.plane.pipeline.ondemand  # type: ignore[attr-defined]
    c._create("web", UE1)
    [name] = manager.instances
    c.idle_pass(time.monotonic() + 1.5)
    assert c.records[("web", UE1)].thawer is None
    table.waker = c._wake
    assert table.admit("web", UE1, "k", b"p", time.monotonic()) != b""
    assert manager.cgroups.thawed == [f"id-{name}"]


def test_a_failed_wake_falls_back_to_the_queued_resume(tmp_path: Path) -> None:
    c, manager, table, _ = paused(tmp_path)
    table.waker = c._wake
    manager.cgroups.fail = True
    assert table.admit("web", UE1, "k", b"p", time.monotonic()) == b""  # queued
    assert table.activity()[("web", UE1)][0] == "pending"
    assert table.counters["demand_resume"] == 1


def test_resume_thaws_first_and_releases(tmp_path: Path) -> None:
    c, manager, table, name = paused(tmp_path)
    table.admit("web", UE1, "k", b"p", 0.0)
    c._resume("web", UE1)
    assert manager.cgroups.thawed == [f"id-{name}"]
    assert manager.calls[-1] == ("resume", name)
    assert table.activity()[("web", UE1)][0] == "ready"
    assert c.instances_of("web")[0]["state"] == "running"


def test_restore_keeps_pause_time_drops_gone_and_deletes_unrecorded(tmp_path: Path) -> None:
    manager = FakeManager()
    c = make(tmp_path, manager)
    c._create("web", UE1)
    c._create("web", UE2)
    first, second = sorted(
        manager.instances, key=lambda n: manager.instances[n].labels["fluidedge.tof.superfluid.ue"]
    )
    c.idle_pass(time.monotonic() + 1.5)  # both paused
    paused_at = {i["instance"]: i["pausedAt"] for i in c.instances_of("web")}
    del manager.instances[second]  # gone while the daemon was down
    manager.instances["orphan"] = FakeInstance("orphan", "id-o", "running", {LABEL_SERVICE: "web"})
    again = make(tmp_path, manager)
    again.start(service())
    try:
        views = again.instances_of("web")
        assert [v["instance"] for v in views] == [first]
        assert views[0]["state"] == "paused"
        assert abs(views[0]["pausedAt"] - paused_at[first]) < 0.01  # T2 keeps counting
        assert "orphan" not in manager.instances
        table = again.plane.pipeline.ondemand  # type: ignore[attr-defined]
        assert table.activity()[("web", UE1)][0] == "paused"
    finally:
        again.stop()


def test_check_names_the_missing_template_and_interface(tmp_path: Path) -> None:
    c = make(tmp_path)
    with pytest.raises(OnDemandTargetMissing, match="template 'nope'"):
        c.check(Service("x", "198.18.50.2", "0.0.0.0", spec(template="nope")))
    with pytest.raises(OnDemandTargetMissing, match="no interface 'eth9'"):
        c.check(Service("x", "198.18.50.2", "0.0.0.0", spec(interface="eth9")))


def test_changed_template_reaps_instances(tmp_path: Path) -> None:
    manager = FakeManager()
    c = make(tmp_path, manager)
    c._create("web", UE1)
    c.services_changed({"web": Service("web", "198.18.50.1", "0.0.0.0", spec(template="other"))})
    item = c._demands.get_nowait()
    assert item is not None
    c._reap(item[0], item[1])
    assert manager.instances == {}
    assert c.counts()["web"]["deleted"] == 1


class HeldManager(FakeManager):
    """A manager whose creations wait until the test lets them go."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = threading.Event()
        self.go = threading.Event()

    def create_instance(self, request: Any, *, durable: bool = True) -> None:
        if self.requests:  # the first creation (before the threads start) is not held
            self.entered.set()
            self.go.wait(10)
        super().create_instance(request)


@pytest.mark.parametrize("frozen", [True, False], ids=["woken", "queued"])
def test_a_resume_never_waits_behind_a_creation(tmp_path: Path, frozen: bool) -> None:
    """Resumes have their own lane: a paused UE's next packet is released (queued: a freeze
    was in progress) or its resume recorded (woken on the packet path) while the only
    creation worker is busy with another UE's instance."""
    manager = HeldManager()
    c = make(tmp_path, manager)
    c._create("web", UE1)
    c.idle_pass(time.monotonic() + 1.5)
    assert c.instances_of("web")[0]["state"] == "paused"
    c.start(service())
    try:
        table = c.plane.pipeline.ondemand  # type: ignore[attr-defined]
        lock = c.plane._lock  # type: ignore[attr-defined]  # the data plane's, per batch
        with lock:
            assert table.admit("web", UE2, "k", b"p", time.monotonic()) == b""
        assert manager.entered.wait(5)  # the one creation worker is now held
        with lock:
            table.bindings[("web", UE1)].frozen = frozen
            delivered = table.admit("web", UE1, "k", b"p", time.monotonic())
        assert (delivered != b"") is frozen
        assert wait_until(lambda: c.instances_of("web")[0]["state"] == "running", 5)
        assert table.activity()[("web", UE1)][0] == "ready"
        assert manager.calls[-1][0] == "resume"
        assert not manager.go.is_set()
        assert table.activity()[("web", UE2)][0] != "ready"
        assert c.counts()["web"]["resumed"] == 1
    finally:
        manager.go.set()
        c.stop()


class TenantAdmission(NoAdmission):
    """The template is tenant acme's (the real adapter: tests/e2e/superfluid/test_tenants.py)."""

    def prefix(self, template: str) -> str:
        return "acme-"


class RefusingAdmission(TenantAdmission):
    """... and its quota is full."""

    @contextmanager
    def admit(self, request: Any) -> Iterator[Any]:
        raise QuotaExceeded(f"tenant acme: instances 1 of 1 in use, {request.name} refused")
        yield request  # pragma: no cover (a generator, for @contextmanager)


def test_a_refused_admission_is_counted_and_a_later_packet_asks_again(tmp_path: Path) -> None:
    manager = FakeManager()
    c = make(tmp_path, manager)
    c.admission = RefusingAdmission()
    table = c.plane.pipeline.ondemand  # type: ignore[attr-defined]
    table.admit("web", UE1, "k", b"p", 0.0)
    c._create("web", UE1)
    assert manager.instances == {}
    assert c.counts()["web"] == {"refused_admission": 1}
    assert table.drops["refused_admission"] == 1
    assert c.instances_of("web") == []  # the record is gone: the next packet tries again
    c.admission = NoAdmission()
    c._create("web", UE1)
    assert len(manager.instances) == 1


def test_instances_of_a_tenants_template_carry_its_prefix(tmp_path: Path) -> None:
    manager = FakeManager()
    c = make(tmp_path, manager)
    c.admission = TenantAdmission()
    c._create("web", UE1)
    [name] = manager.instances
    assert name.startswith("acme-web-")


def test_a_service_name_an_instance_cannot_have_still_gets_instances(tmp_path: Path) -> None:
    manager = FakeManager()
    c = make(tmp_path, manager)
    c.services = {"Video_Cache.v2": c.services["web"]}
    c._create("Video_Cache.v2", UE1)
    [name] = manager.instances
    assert name.startswith("video-cache-v2-")
    assert c.counts()["Video_Cache.v2"] == {"created": 1}


def test_an_unexpected_failure_of_a_creation_lets_the_next_packet_retry(tmp_path: Path) -> None:
    class Crashing(FakeManager):
        def create_instance(self, request: Any, *, durable: bool = True) -> None:
            if not self.requests:
                self.requests.append(request)
                raise RuntimeError("a bug, not a refusal")
            super().create_instance(request)

    manager = Crashing()
    c = make(tmp_path, manager)
    c._create("web", UE1)
    assert c.counts()["web"] == {"refused_create_failed": 1}
    assert c.instances_of("web") == []
    c._create("web", UE1)  # not stuck behind a record "creating" forever
    assert c.counts()["web"]["created"] == 1


def test_a_stored_record_naming_an_instance_not_of_its_service_touches_nothing(
    tmp_path: Path,
) -> None:
    """A damaged record that names someone's own instance: the restore neither adopts nor
    deletes it (a record whose service is gone is otherwise deleted); the record is set
    aside."""
    manager = FakeManager()
    c = make(tmp_path, manager)
    c._create("web", UE1)
    [name] = manager.instances
    manager.instances["db"] = FakeInstance("db", "id-db", "running", {})
    with c.store.transaction() as conn:
        conn.execute("UPDATE superfluid_instance SET instance = 'db'")
    again = make(tmp_path, manager)
    again.start({})  # the service is gone: its records' instances would be deleted
    try:
        assert "db" in manager.instances
        assert ("delete", "db") not in manager.calls
        assert rows.count(again.store) == 1
        assert again.instances_of("web") == []
        assert name not in manager.instances  # its own, now unrecorded, is deleted as before
    finally:
        again.stop()
