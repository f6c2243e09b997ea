"""Pause/resume routes: inline with a bounded freezer wait, finished in the thread pool when the
cgroup is slow to settle.

The manager is a fake here (the seam is the ``Manager`` the router is built on); the e2e tests
pause and resume real instances through the same routes of a real daemon.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import cast

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from tests.fixtures.wait import scaled

from fluidedge.instances import api
from fluidedge.instances.errors import FreezerBusy, WrongState
from fluidedge.instances.manager import Manager
from fluidedge.instances.models import InstanceView, Resources, Timing
from fluidedge.instances.writer import Writer


def _view(state: str) -> InstanceView:
    return InstanceView(
        name="a",
        id="fe-a",
        template="idle",
        state=state,
        pid=42,
        path="warm",
        cpus=[0],
        resources=Resources(),
        interfaces=[],
        labels={},
        timing=Timing(),
        created_at=0.0,
        op_ms=0.1,
    )


class SlowFreezer:
    """Settles only if allowed to wait ``settle`` seconds or more; records who called it."""

    def __init__(self, settle: float) -> None:
        self.settle = settle
        self.calls: list[tuple[str, float, int]] = []
        self.writer = Writer()  # the routes kick its follow-ups once they have answered
        self.followed: list[str] = []  # follow-ups run by the route once it has answered

    def _op(
        self, op: str, name: str, timeout: float, state: str, after: list[Callable[[], None]]
    ) -> InstanceView:
        self.calls.append((op, timeout, threading.get_ident()))
        if name != "a":
            raise WrongState(f"instance {name} is running, not paused")
        if timeout < self.settle:
            raise FreezerBusy("freezer fe-a: stuck in FREEZING (wanted FROZEN)")
        after.append(lambda: self.followed.append(op))
        return _view(state)

    def pause(
        self, name: str, *, timeout: float = 2.0, after_answer: list[Callable[[], None]]
    ) -> InstanceView:
        return self._op("pause", name, timeout, "paused", after_answer)

    def resume(
        self, name: str, *, timeout: float = 2.0, after_answer: list[Callable[[], None]]
    ) -> InstanceView:
        return self._op("resume", name, timeout, "running", after_answer)


def _client(fake: SlowFreezer) -> TestClient:
    app = FastAPI()
    app.include_router(api.build_router(cast(Manager, fake)))
    return TestClient(app)


def test_fast_freezer_is_handled_inline_with_a_bounded_wait() -> None:
    fake = SlowFreezer(settle=0.0)
    with _client(fake) as client:
        body = client.post("/v1/instances/a/pause").json()
        assert body["state"] == "paused"
        assert body["op_ms"] == 0.1
        assert client.post("/v1/instances/a/resume").json()["state"] == "running"
    assert [(op, timeout) for op, timeout, _ in fake.calls] == [
        ("pause", api.INLINE_FREEZER_WAIT),
        ("resume", api.INLINE_FREEZER_WAIT),
    ]
    assert fake.followed == ["pause", "resume"]  # each answer ran its call's follow-ups


def test_slow_freezer_finishes_in_the_thread_pool_with_the_full_wait() -> None:
    fake = SlowFreezer(settle=1.0)
    with _client(fake) as client:
        response = client.post("/v1/instances/a/pause")
        assert response.status_code == 200
        assert response.json()["state"] == "paused"
        assert client.post("/v1/instances/a/resume").json()["state"] == "running"
    assert fake.followed == ["pause", "resume"]  # once each, from the thread pool's run too
    pause_calls = [c for c in fake.calls if c[0] == "pause"]
    assert [timeout for _, timeout, _ in pause_calls] == [api.INLINE_FREEZER_WAIT, 2.0]
    # The long wait ran off the event loop's thread (the first, bounded try ran on it).
    assert pause_calls[0][2] != pause_calls[1][2]


def test_other_errors_are_not_retried() -> None:
    fake = SlowFreezer(settle=0.0)
    with _client(fake) as client, pytest.raises(WrongState):
        client.post("/v1/instances/b/pause")
    assert len(fake.calls) == 1


def test_the_answer_releases_the_follow_up_write() -> None:
    """The manager defers a pause's row update to its store writer, which holds it back until
    the answer is out: the route kicks it once it has answered (not after the writer's delay,
    here an hour)."""
    fake = SlowFreezer(settle=0.0)
    fake.writer = Writer(delay=3600)
    written = threading.Event()
    pause = fake.pause

    def pause_and_defer(
        name: str, *, timeout: float = 2.0, after_answer: list[Callable[[], None]]
    ) -> InstanceView:
        view = pause(name, timeout=timeout, after_answer=after_answer)
        fake.writer.defer(written.set)
        return view

    fake.pause = pause_and_defer  # type: ignore[method-assign]
    with _client(fake) as client:
        assert client.post("/v1/instances/a/pause").status_code == 200
        assert written.wait(scaled(5))
    fake.writer.close()
