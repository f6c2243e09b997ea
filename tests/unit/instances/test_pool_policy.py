"""The pure refill policy: which pool a prepare worker fills next, hysteresis, back-off and the
refill delay after a consumption. Time is passed in, so these tests drive it."""

from __future__ import annotations

from pathlib import Path

import pytest

from fluidedge.instances import pool
from fluidedge.instances.models import TemplateSpec
from fluidedge.instances.pool import Pool
from fluidedge.instances.records import Shell


def _template(name: str = "t", **policy: object) -> TemplateSpec:
    return TemplateSpec.model_validate({"name": name, "command": ["/bin/true"], "pool": policy})


def _shell(n: int) -> Shell:
    return Shell(f"fe{n:010x}", "t", 100 + n, Path("/nonexistent"), [])


def _fill(p: Pool, count: int) -> None:
    for n in range(count):
        p.ready.append(_shell(n))


def test_target_scales_and_rounds() -> None:
    assert pool.target(_template(size=4), 1.0) == 4
    assert pool.target(_template(size=4), 0.5) == 2
    assert pool.target(_template(size=3), 0.5) == 2  # round half to even: 1.5 -> 2
    assert pool.target(_template(size=4), 0.0) == 0


def test_empty_pool_is_filled_up_to_its_target_then_rests() -> None:
    templates = {"t": _template(size=2)}
    pools: dict[str, Pool] = {}
    job = pool.next_job(templates, pools, 1.0, now=100.0)
    assert job is not None
    assert job.name == "t"
    pool.start_job(pools["t"])
    assert pool.next_job(templates, pools, 1.0, now=100.0) is templates["t"]  # 1 of 2 coming
    pool.start_job(pools["t"])
    assert pool.next_job(templates, pools, 1.0, now=100.0) is None  # 2 of 2 coming
    for n in range(2):
        assert pool.finish_job(pools["t"], _shell(n), None, keep=True, now=100.0)
    assert (len(pools["t"].ready), pools["t"].preparing) == (2, 0)
    assert pool.full(templates, pools, 1.0)
    assert pool.next_job(templates, pools, 1.0, now=100.0) is None
    assert not pools["t"].filling


def test_hysteresis_waits_for_low_water_then_fills_to_target() -> None:
    templates = {"t": _template(size=4, low_water=2, refill_delay_ms=0)}
    pools = {"t": Pool()}
    _fill(pools["t"], 4)
    for _ in range(2):  # 4 -> 2: still at low water, no refill
        assert pool.take(pools["t"], cold=False, now=10.0) is not None
        assert pool.next_job(templates, pools, 1.0, now=11.0) is None
    assert pool.take(pools["t"], cold=False, now=12.0) is not None  # 1 < low water 2
    assert pool.next_job(templates, pools, 1.0, now=13.0) is templates["t"]
    pool.start_job(pools["t"])
    pool.finish_job(pools["t"], _shell(9), None, keep=True, now=13.0)
    # now 2 ready: above low water, but the pool keeps filling until its target
    assert pool.next_job(templates, pools, 1.0, now=14.0) is templates["t"]


def test_failure_backs_the_pool_off() -> None:
    templates = {"t": _template(size=1)}
    pools = {"t": Pool()}
    pool.start_job(pools["t"])
    assert not pool.finish_job(pools["t"], None, "runc create failed", keep=True, now=50.0)
    assert (pools["t"].failures, pools["t"].last_error) == (1, "runc create failed")
    assert pool.next_job(templates, pools, 1.0, now=50.0 + pool.BACKOFF_S / 2) is None
    assert pool.next_job(templates, pools, 1.0, now=50.0 + pool.BACKOFF_S + 0.01) is not None


def test_refill_waits_after_a_consumption_while_the_pool_is_half_full() -> None:
    templates = {"t": _template(size=4, refill_delay_ms=50)}
    pools = {"t": Pool()}
    _fill(pools["t"], 4)
    assert pool.take(pools["t"], cold=False, now=1.0) is not None
    assert pool.next_job(templates, pools, 1.0, now=1.01) is None  # 3 ready, just served
    assert pool.next_job(templates, pools, 1.0, now=1.06) is templates["t"]
    # an almost empty pool does not wait
    pools["t"].ready.clear()
    _fill(pools["t"], 1)
    assert pool.take(pools["t"], cold=False, now=2.0) is not None
    assert pool.next_job(templates, pools, 1.0, now=2.001) is templates["t"]


def test_no_refill_policy_fills_once() -> None:
    templates = {"t": _template(size=2, refill=False, refill_delay_ms=0)}
    pools = {"t": Pool()}
    assert pool.next_job(templates, pools, 1.0, now=0.0) is templates["t"]  # never consumed
    _fill(pools["t"], 2)
    assert pool.next_job(templates, pools, 1.0, now=0.0) is None
    assert pool.take(pools["t"], cold=False, now=1.0) is not None
    assert pool.next_job(templates, pools, 1.0, now=5.0) is None


def test_take_is_oldest_first_and_counts() -> None:
    p = Pool()
    _fill(p, 3)
    first = p.ready[0]
    assert pool.take(p, cold=True, now=1.0) is None  # a cold request leaves the pool alone
    assert p.consumed == 0
    assert pool.take(p, cold=False, now=2.0) is first
    assert (p.consumed, p.last_consumed, len(p.ready)) == (1, 2.0, 2)
    assert pool.take(Pool(), cold=False, now=3.0) is None


def test_shell_of_a_deleted_template_is_not_kept() -> None:
    p = Pool()
    pool.start_job(p)
    assert not pool.finish_job(p, _shell(1), None, keep=False, now=0.0)
    assert (len(p.ready), p.preparing, p.failures) == (0, 0, 0)


def test_templates_are_served_in_turn_when_one_is_full() -> None:
    templates = {"a": _template("a", size=1), "b": _template("b", size=1)}
    pools = {"a": Pool(), "b": Pool()}
    _fill(pools["a"], 1)
    job = pool.next_job(templates, pools, 1.0, now=0.0)
    assert job is not None
    assert job.name == "b"
    assert not pool.full(templates, pools, 1.0)


def _pinned(n: int, cpu: int) -> Shell:
    shell = _shell(n)
    shell.cpus = (cpu,)
    return shell


def test_shells_are_pinned_to_the_least_represented_cpu() -> None:
    p = Pool()
    assert pool.pin_for(p, (0, 1)) == 0  # a tie: the lowest
    pool.start_job(p, 0)
    assert pool.pin_for(p, (0, 1)) == 1  # one is coming for CPU 0
    pool.start_job(p, 1)
    p.ready.extend([_pinned(1, 1), _pinned(2, 1)])
    assert pool.pin_for(p, (0, 1)) == 0
    assert pool.finish_job(p, _pinned(3, 0), None, keep=True, now=0.0, pin=0)
    assert p.pinning == [1]
    assert pool.pin_for(p, (0, 1)) == 0  # 0: one ready; 1: two ready and one coming


def test_take_prefers_a_shell_pinned_to_the_placed_cpus() -> None:
    p = Pool()
    p.ready.extend([_pinned(1, 0), _pinned(2, 1), _pinned(3, 1)])
    taken = pool.take(p, cold=False, now=0.0, cpus=(1,))
    assert taken is not None
    assert taken.id == _shell(2).id  # the oldest on CPU 1
    taken = pool.take(p, cold=False, now=0.0, cpus=(0, 1))  # no shell has both: the oldest
    assert taken is not None
    assert taken.id == _shell(1).id
    assert [s.id for s in p.ready] == [_shell(3).id]
    assert p.consumed == 2


def test_next_due_is_when_time_alone_may_give_a_worker_a_job() -> None:
    templates = {"t": _template(size=2, refill_delay_ms=50), "u": _template("u", size=1)}
    pools = {"t": Pool(), "u": Pool()}
    _fill(pools["t"], 2)
    _fill(pools["u"], 1)
    assert pool.next_due(templates, pools, 1.0, now=1.0) is None  # full: sleep until notified
    assert pool.take(pools["t"], cold=False, now=1.0) is not None
    assert pool.next_job(templates, pools, 1.0, now=1.01) is None  # half full, just served
    assert pool.next_due(templates, pools, 1.0, now=1.01) == pytest.approx(1.05)
    assert pool.next_job(templates, pools, 1.0, now=1.05 + 1e-9) is templates["t"]
    assert pool.next_due(templates, pools, 1.0, now=1.06) is None  # due now: no later time
    pool.start_job(pools["t"])
    assert pool.next_due(templates, pools, 1.0, now=1.01) is None  # coming: target reached
    pool.finish_job(pools["t"], None, "runc create failed", keep=True, now=2.0)
    assert pool.next_job(templates, pools, 1.0, now=2.5) is None
    assert pool.next_due(templates, pools, 1.0, now=2.5) == 2.0 + pool.BACKOFF_S
    assert pool.next_due({}, pools, 1.0, now=2.5) is None  # a deleted template is nobody's job
