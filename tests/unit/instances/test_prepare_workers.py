"""The prepare workers are event-driven: an idle worker sleeps until a shell is taken, a
prepare finishes, a template changes or the manager stops (or until a back-off or refill delay
ends), never on a short poll. The manager runs on the recording double of test_rollback, its
safety timeout raised to an hour so that only a notification (or a due time) can wake a worker.
"""

from __future__ import annotations

import errno
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.fixtures.wait import scaled, wait_until
from tests.unit.instances.test_rollback import FakeIO, _request, fake_image

from fluidedge.core.store import Store
from fluidedge.instances import manager as manager_module
from fluidedge.instances.config import InstancesConfig
from fluidedge.instances.manager import Manager
from fluidedge.instances.models import NetworkSpec, TemplateSpec

HOUR = 3600.0


class RecordingCondition(threading.Condition):
    """The manager's condition, recording the timeout of every wait of a prepare worker and
    how many are waiting (counted with the lock held, so once a test sees a worker waiting,
    anything it does under the manager's lock happens after that worker went to sleep)."""

    def __init__(self, lock: threading.RLock) -> None:
        super().__init__(lock)
        self.timeouts: list[float | None] = []
        self.waiting = 0

    def wait(self, timeout: float | None = None) -> bool:
        if not threading.current_thread().name.startswith("fe-prepare-"):
            return super().wait(timeout)
        self.timeouts.append(timeout)
        self.waiting += 1
        try:
            return super().wait(timeout)
        finally:
            self.waiting -= 1


@pytest.fixture
def running(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Manager, FakeIO, RecordingCondition]]:
    monkeypatch.setattr(manager_module, "IDLE_WAIT_S", HOUR)
    io = FakeIO()
    config = InstancesConfig(cpus="0-1", memory_mb=1024, builtin_templates=False)
    manager = Manager(config, Store(tmp_path / "db.sqlite"), tmp_path / "state", io=io)
    manager.images.images["busybox"] = fake_image("busybox")
    manager.networks["lan"] = NetworkSpec(name="lan", bridge="unused0", subnet="10.9.0.0/24")
    wake = RecordingCondition(manager.lock)
    manager._wake = wake
    manager._start_workers()
    try:
        yield manager, io, wake
    finally:
        manager.stop()


def _template(size: int, **pool: object) -> TemplateSpec:
    return TemplateSpec.model_validate(
        {
            "name": "app",
            "command": ["/bin/app"],
            "interfaces": [{"name": "eth0", "network": "lan"}],
            "resources": {"memory_mb": 64},
            "pool": {"size": size, **pool},
        }
    )


def test_a_new_template_a_taken_shell_and_stop_wake_the_workers_at_once(
    running: tuple[Manager, FakeIO, RecordingCondition],
) -> None:
    manager, io, wake = running
    assert wait_until(lambda: wake.waiting == 2, timeout=10)  # both workers idle
    assert set(wake.timeouts) == {HOUR}  # nothing to do, nothing due: sleep until notified
    manager.create_template(_template(size=2, refill_delay_ms=0))
    assert manager.wait_pools(timeout=scaled(10))
    assert wait_until(lambda: wake.waiting == 2, timeout=10)
    assert len(io.built) == 2
    waits = len(wake.timeouts)
    manager.create_instance(_request())  # takes a pooled shell from sleeping workers
    assert wait_until(lambda: len(manager.pools["app"].ready) == 2, timeout=10)
    assert len(io.built) == 3
    assert wait_until(lambda: len(wake.timeouts) > waits, timeout=10)
    assert wake.timeouts[-1] == HOUR  # full again: back to sleep until notified
    workers = list(manager._workers)
    started = time.monotonic()
    manager.stop()
    assert time.monotonic() - started < scaled(5)
    assert not any(worker.is_alive() for worker in workers)


def test_a_refill_delay_and_a_back_off_end_by_themselves(
    running: tuple[Manager, FakeIO, RecordingCondition],
) -> None:
    manager, io, wake = running
    manager.create_template(_template(size=2, refill_delay_ms=200))
    assert manager.wait_pools(timeout=scaled(10))
    assert wait_until(lambda: wake.waiting == 2, timeout=10)
    manager.create_instance(_request())  # 1 of 2 left: half full, the refill waits 200 ms
    assert wait_until(lambda: any(t is not None and 0 < t <= 0.2 for t in wake.timeouts), 10)
    assert wait_until(lambda: len(manager.pools["app"].ready) == 2, timeout=10)
    io.fail_at = "build"  # every prepare fails from now on: the pool backs off, then retries
    manager.create_instance(_request("y", "10.9.0.6/24"))
    assert wait_until(lambda: manager.pools["app"].failures >= 2, timeout=10)
    assert any(t is not None and 0 < t <= 1.0 for t in wake.timeouts[-4:])


def test_a_pooled_launcher_that_exits_is_replaced_without_any_poll(
    running: tuple[Manager, FakeIO, RecordingCondition],
) -> None:
    """The exit descriptor's report (a pidfd on a real host) takes the dead shell out of its
    pool, destroys it and wakes a worker to refill: no sweep, no request needed."""
    manager, io, wake = running
    io.exit_pipes = {}
    manager.stop()  # restart the workers and the watch with exit descriptors in use
    manager._start_workers()
    manager.create_template(_template(size=2, refill_delay_ms=0))
    assert manager.wait_pools(timeout=scaled(10))
    assert wait_until(lambda: set(io.exit_pipes or {}) == set(io.built), timeout=10)
    victim = manager.pools["app"].ready[0]
    io.kill(victim.id, victim.pid)
    assert wait_until(lambda: victim.id in io.destroyed, timeout=10)
    assert wait_until(lambda: len(io.built) == 3, timeout=10)
    assert manager.wait_pools(timeout=scaled(10))
    assert victim.id not in {s.id for s in manager.pools["app"].ready}
    assert victim.id not in {s["id"] for s in manager.tables.shells()}
    assert manager.pools["app"].failures == 1
    assert set(wake.timeouts) == {HOUR}  # the workers only ever slept until notified
    # a shell taken by a request is the request's: its exit is not the pool's business
    view = manager.create_instance(_request())
    assert manager._shellwatch is not None
    assert view.id not in manager._shellwatch.watched()


def test_a_shell_that_cannot_be_watched_stays_pooled(
    running: tuple[Manager, FakeIO, RecordingCondition],
) -> None:
    """No exit descriptor for a live launcher (out of descriptors): the shell stays in its
    pool, unwatched (the take's own look still guards it); only a launcher that is gone
    (ProcessLookupError) is discarded."""
    manager, io, _wake = running
    io.exit_pipes = {}
    io.exit_error = OSError(errno.EMFILE, "Too many open files")
    manager.create_template(_template(size=2, refill_delay_ms=0))
    assert manager.wait_pools(timeout=scaled(10))
    time.sleep(0.05)  # part of the scenario: a discard would show as a destroy by now
    assert io.destroyed == []
    assert len(manager.pools["app"].ready) == 2
    assert manager._shellwatch is not None
    assert manager._shellwatch.watched() == set()
    victim = manager.pools["app"].ready[0]
    io.exit_error = None
    io.exit_errors[victim.id] = ProcessLookupError("launcher has exited")
    manager._watch_exit(victim)
    assert io.destroyed == [victim.id]
