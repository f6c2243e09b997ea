"""The on-demand table: queueing, demands, bounds, timeouts, pause/forget/refuse (pure)."""

from __future__ import annotations

from fluidedge.tof.superfluid.table import (
    CREATE,
    PAUSED,
    PENDING,
    READY,
    RESUME,
    RESUMED,
    OnDemandTable,
)

UE1 = bytes([10, 0, 0, 1])
UE2 = bytes([10, 0, 0, 2])
APP = bytes([198, 19, 0, 64])


def table(per_ue: int = 4, total: int = 6, timeout: float = 3.0) -> tuple[OnDemandTable, list]:
    t = OnDemandTable(per_ue, total, timeout)
    demands: list[tuple[str, bytes, str, float]] = []
    t.sink = lambda *d: demands.append(d)
    t.configure({"web": True, "shared": False})
    return t, demands


def test_first_packet_queues_and_asks_once_then_ready_releases_in_order() -> None:
    t, demands = table()
    assert t.admit("web", UE1, "k", b"p1", 1.0) == b""
    assert t.admit("web", UE1, "k", b"p2", 1.1) == b""
    assert demands == [("web", UE1, CREATE, 1.0)]
    assert t.queued == 2
    released = t.ready("web", UE1, APP, 1.5)
    assert [p for p, _ in released.items] == [b"p1", b"p2"]
    assert released.waited == 0.5
    assert t.queued == 0
    assert not t.queued_by_ue
    assert t.admit("web", UE1, "k", b"p3", 2.0) == APP
    assert t.activity()[("web", UE1)] == (READY, 2.0)


def test_per_ue_gets_own_binding_shared_one() -> None:
    t, demands = table()
    t.admit("web", UE1, "k", b"a", 0.0)
    t.admit("web", UE2, "k", b"b", 0.0)
    t.admit("shared", UE1, "k", b"c", 0.0)
    t.admit("shared", UE2, "k", b"d", 0.0)
    assert [(d[0], d[1]) for d in demands] == [("web", UE1), ("web", UE2), ("shared", b"")]
    released = t.ready("shared", UE2, APP, 1.0)  # any UE names the shared binding
    assert [p for p, _ in released.items] == [b"c", b"d"]


def test_bounds_per_ue_and_total_are_counted() -> None:
    t, _ = table(per_ue=2, total=3)
    for i in range(4):
        t.admit("web", UE1, "k", b"x%d" % i, 0.0)
    assert t.queued == 2
    assert t.drops["queue_full_ue"] == 2
    t.admit("web", UE2, "k", b"y", 0.0)
    t.admit("web", UE2, "k", b"z", 0.0)
    assert t.queued == 3
    assert t.drops["queue_full_total"] == 1


def test_timeout_drops_oldest_counted() -> None:
    t, _ = table(timeout=1.0)
    t.admit("web", UE1, "k", b"old", 0.0)
    t.admit("web", UE1, "k", b"new", 0.9)
    assert t.expire(1.5) == 1
    assert t.drops["queue_timeout"] == 1
    released = t.ready("web", UE1, APP, 1.6)
    assert [p for p, _ in released.items] == [b"new"]


def test_park_then_packet_asks_for_resume_and_forget_waits() -> None:
    t, demands = table()
    t.ready("web", UE1, APP, 0.0)
    assert t.park("web", UE1)
    assert t.activity()[("web", UE1)][0] == PAUSED
    assert t.admit("web", UE1, "k", b"p", 5.0) == b""
    assert demands[-1] == ("web", UE1, RESUME, 5.0)
    assert t.activity()[("web", UE1)][0] == PENDING
    assert t.forget("web", UE1) is None  # a resume is pending: not deleted under it
    released = t.ready("web", UE1, APP, 5.001)
    assert released.resumed
    assert [p for p, _ in released.items] == [b"p"]
    assert t.park("web", UE1)
    assert t.forget("web", UE1) == APP
    assert ("web", UE1) not in t.activity()


def test_park_is_refused_when_a_packet_went_through_since_the_idle_look() -> None:
    t, _ = table()
    t.ready("web", UE1, APP, 0.0)
    _, seen = t.activity()[("web", UE1)]
    assert t.admit("web", UE1, "k", b"p", 2.0) == APP  # delivered after the look
    assert not t.park("web", UE1, seen)
    assert t.activity()[("web", UE1)] == (READY, 2.0)
    assert t.park("web", UE1, 2.0)  # idle since the latest packet: parked
    assert t.activity()[("web", UE1)][0] == PAUSED


def test_a_frozen_binding_is_woken_on_the_packet_path_only_once_the_freeze_is_confirmed() -> None:
    t, demands = table()
    woken: list[tuple[str, bytes]] = []
    t.waker = lambda service, ue: woken.append((service, ue)) is None
    t.ready("web", UE1, APP, 0.0)
    assert t.park("web", UE1)
    assert not t.bindings[("web", UE1)].frozen  # being frozen: a packet now is queued
    assert t.frozen("web", UE1)
    assert t.admit("web", UE1, "k", b"p", 3.0) == APP
    assert woken == [("web", UE1)]
    assert demands[-1] == ("web", UE1, RESUMED, 3.0)
    assert t.activity()[("web", UE1)] == (READY, 3.0)
    assert t.queued == 0
    assert t.park("web", UE1)
    assert t.admit("web", UE1, "k", b"q", 4.0) == b""  # not confirmed frozen: queued
    assert demands[-1] == ("web", UE1, RESUME, 4.0)
    assert not t.frozen("web", UE1)  # no longer parked
    assert woken == [("web", UE1)]


def test_refuse_drops_counted_and_next_packet_asks_again() -> None:
    t, demands = table()
    t.admit("web", UE1, "k", b"p", 0.0)
    t.admit("web", UE1, "k", b"q", 0.0)
    assert t.refuse("web", UE1, "max_instances") == 2
    assert t.drops["refused_max_instances"] == 2
    assert t.queued == 0
    t.admit("web", UE1, "k", b"r", 1.0)
    assert len(demands) == 2


def test_configure_drops_bindings_of_services_gone_or_changed_policy() -> None:
    t, _ = table()
    t.admit("web", UE1, "k", b"p", 0.0)
    t.ready("shared", UE1, APP, 0.0)
    gone = t.configure({"web": False})
    assert sorted(gone) == [("shared", b""), ("web", UE1)]
    assert t.drops["service_gone"] == 1
    assert t.queued == 0
