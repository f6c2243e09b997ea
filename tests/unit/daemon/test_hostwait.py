"""fluidedge.core.hostwait: a deferred start that waits for the host, looks again, says each
distinct reason once, retries a failing start, and stops promptly."""

from __future__ import annotations

import asyncio
import logging

import pytest

from fluidedge.core.hostwait import HostWait
from fluidedge.errors import SystemFailure


def test_it_waits_says_each_reason_once_retries_a_failed_start_then_starts(
    caplog: pytest.LogCaptureFixture,
) -> None:
    looks = iter(["ns gone", "ns gone", "if gone", None, None])

    def look() -> str | None:
        if len(starts) == 0 and next(broken, False):
            raise OSError("EMFILE")
        return next(looks)

    broken = iter([False, False, True])
    starts: list[int] = []

    async def start() -> None:
        starts.append(1)
        if len(starts) == 1:
            raise SystemFailure("device busy")

    async def scene() -> HostWait:
        wait = HostWait(logging.getLogger("test.hostwait"), "tof", "the data plane", "tof", 0.01)
        wait.begin("ns gone", look, start)
        for _ in range(500):
            if wait.reason is None:
                break
            await asyncio.sleep(0.01)
        await wait.stop()
        return wait

    with caplog.at_level(logging.WARNING, logger="test.hostwait"):
        wait = asyncio.run(scene())
    assert wait.reason is None
    assert len(starts) == 2  # the failed one, then the one that held
    said = [(getattr(r, "event", None), r.getMessage()) for r in caplog.records]
    assert [event for event, _ in said] == ["tof_waiting"] * 4 + ["tof_started"]
    assert "waits for the host: ns gone;" in said[0][1]
    # a look that raises is a reason like another (the wait goes on)
    assert "waits for the host: the look failed: OSError('EMFILE');" in said[1][1]
    assert "waits for the host: if gone;" in said[2][1]
    assert "waits for the host: its start failed: device busy;" in said[3][1]
    assert said[4][1] == "tof: the data plane started"


def test_a_stop_ends_the_wait_at_once_and_starts_nothing() -> None:
    started: list[int] = []

    async def start() -> None:
        started.append(1)

    async def scene() -> float:
        wait = HostWait(logging.getLogger("test.hostwait"), "mec", "the DNS responder", "x", 60)
        wait.begin("gone", lambda: None, start)
        loop = asyncio.get_running_loop()
        before = loop.time()
        await wait.stop()
        return loop.time() - before

    assert asyncio.run(scene()) < 5  # not the 60 s interval
    assert started == []
