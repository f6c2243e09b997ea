"""The data plane's objects may be frozen out of CPython's cyclic collector
(:mod:`fluidedge.tof.gcfreeze`) only because they hold no reference cycle: what the pipeline
allocates per UE (bearers, their queues and usage records, flows) must be freed by reference
counting alone, since frozen cycles are never reclaimed."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest
from tests.unit.tof.test_pipeline import APP, ENB1, SGW1, SVC_IP, UE2, gpdu, udp_packet
from tests.unit.tof_accounting.test_usage import acct_pipeline, bearer_up, reply, send_up

from fluidedge.tof.accounting.usage import Accountant, Usage, UsageRecord
from fluidedge.tof.dataplane_common import allocated
from fluidedge.tof.gcfreeze import Freezer
from fluidedge.tof.pipeline import ENB, Bearer, Flow, Pipeline

WATCHED = (Bearer, Flow, Usage, UsageRecord, Accountant, Pipeline)


def watched() -> list[object]:
    return [obj for obj in gc.get_objects() if type(obj) in WATCHED]


BEFORE: list[object] = []  # what other tests keep alive (held here: their ids stay theirs)


def live() -> dict[str, int]:
    """Instances of the data plane's classes the interpreter holds, beyond :data:`BEFORE`."""
    before = {id(obj) for obj in BEFORE}
    counts: dict[str, int] = {}
    for obj in watched():
        if id(obj) not in before:
            counts[type(obj).__name__] = counts.get(type(obj).__name__, 0) + 1
    return counts


@pytest.fixture
def no_collector() -> Iterator[None]:
    gc.collect()
    BEFORE[:] = watched()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
        BEFORE.clear()


def run(p: Pipeline) -> None:
    """Learn, offload both ways, queue for a Pinger, report, replace and reuse TEIDs, purge."""
    bearer_up(p)
    bearer_up(p, UE2, 0x101)
    for now in (1.0, 2.0):
        send_up(p, b"x" * 100, now)
        send_up(p, b"y", now, ue=UE2, teid=0x101)
        reply(p, b"z" * 50, now)
    # A UE without a downlink TEID yet: its reply waits in the bearer's queue (Pinger).
    ue3 = bytes([198, 18, 100, 3])
    p.from_s1(gpdu(ENB1, SGW1, 0x300, udp_packet(ue3, SVC_IP, 40000, 8080, b"q")), ENB, 2.0)
    assert p.from_apps(udp_packet(APP, ue3, 8080, 40000, b"queued"), 2.0) == []
    p.tick(2.0)
    p.tick(61.0)  # a period boundary: every open record closes...
    send_up(p, b"x", 61.5)  # ...and the next packet opens a new one
    send_up(p, b"x", 62.0, teid=0x555)  # the SGW gave UE1's bearer a new uplink TEID
    send_up(p, b"x", 62.0, ue=bytes([198, 18, 100, 4]), teid=0x101)  # UE2's TEID re-used
    p.tick(62.0)
    assert p.accounting is not None
    assert p.accounting.drain(), "the run closed records"
    assert p.accounting.active, "and left some open"
    p.tick(1000.0)  # everything idle: purged
    assert p.accounting.drain(), "the bearers' ends closed their records"


def test_the_pipelines_per_ue_state_is_freed_by_reference_counting(no_collector: None) -> None:
    p = acct_pipeline(period=60)
    run(p)
    assert p.accounting is not None
    assert not p.bearers
    assert not p.accounting.active
    assert live() == {"Accountant": 1, "Pipeline": 1}  # the purged bearers are gone already
    p = acct_pipeline(period=60)
    bearer_up(p)
    send_up(p, b"x", 1.0)
    reply(p, b"z", 1.0)
    assert live()["Usage"] == 1
    assert live()["Flow"] == 1
    del p  # the pipeline dropped with bearers, flows and open records in it
    assert live() == {}, "a reference cycle: frozen, these would never be freed"


def test_freezer_collects_and_freezes_every_batch() -> None:
    freezer = Freezer(batch=100)
    try:
        assert freezer.tick(0)  # the first tick freezes the start-up heap
        frozen = gc.get_freeze_count()
        assert frozen > 0
        assert freezer.frozen > 0
        assert not freezer.tick(99)
        junk = [[i] for i in range(1000)]
        assert freezer.tick(100)
        assert freezer.freezes == 2
        assert gc.get_freeze_count() >= frozen + 1000  # the batch's survivors, frozen
        del junk  # frozen objects are still freed by reference counting
        assert gc.get_freeze_count() < frozen + 1000
        assert not freezer.tick(150)
        freezer.release()
        assert gc.get_freeze_count() == 0
    finally:
        gc.unfreeze()


class _Cycle:
    def __init__(self) -> None:
        self.me = self


def test_frozen_cycles_are_reclaimed_by_the_periodic_full_collection() -> None:
    """A cycle that was alive at a freeze and became garbage later is not collectable while
    frozen; the hourly unfreeze + full collection reclaims it (the leak bound)."""
    now = [0.0]
    freezer = Freezer(batch=10**9, full_every=3600.0, clock=lambda: now[0])
    try:
        cycle = _Cycle()
        ref = weakref.ref(cycle)
        assert freezer.tick(0)  # frozen with the cycle alive
        del cycle
        gc.collect()
        assert ref() is not None  # frozen garbage: the collector does not see it
        now[0] = 3599.0
        assert not freezer.tick(1)
        assert ref() is not None
        now[0] = 3600.0
        assert freezer.tick(2)  # the hour: unfreeze, full collection, freeze again
        assert ref() is None
        assert freezer.full_collections == 1
        assert gc.get_freeze_count() > 0
        assert not freezer.tick(3)  # the next one only an hour later
    finally:
        gc.unfreeze()


def test_allocated_counts_what_the_data_plane_keeps() -> None:
    p = acct_pipeline(period=60)
    assert allocated(p) == 0
    bearer_up(p)
    send_up(p, b"x", 1.0)  # one bearer, one flow, one record
    assert allocated(p) == 3
    p.tick(61.0)  # the record closed
    assert allocated(p) == 4
