"""The parts' periodic checks: a failure logged once per distinct message, then once when the
check works again (not every second)."""

from __future__ import annotations

import asyncio
import logging

import pytest

from fluidedge.core.periodic import every


def test_a_failing_check_is_logged_once_per_failure_then_once_when_it_works(
    caplog: pytest.LogCaptureFixture,
) -> None:
    outcomes: list[Exception | None] = [
        OSError("nft: no such netns"),
        OSError("nft: no such netns"),
    ]
    outcomes += [None, None, RuntimeError("other"), None]
    calls = 0

    def check() -> dict[str, str]:
        nonlocal calls
        calls += 1
        outcome = outcomes.pop(0) if outcomes else None
        if outcome is not None:
            raise outcome
        return {}

    log = logging.getLogger("fluidedge.test-periodic")

    async def scenario() -> None:
        task = asyncio.create_task(every(0.001, check, log, "the check of X", "x_failed"))
        for _ in range(1000):  # until the outcomes are spent and the last one logged
            await asyncio.sleep(0.01)
            if not outcomes and len(caplog.records) >= 4:
                break
        await asyncio.sleep(0.05)  # a few more checks: nothing more to say
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    with caplog.at_level(logging.INFO, logger="fluidedge.test-periodic"):
        asyncio.run(scenario())
    said = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert [level for level, _ in said] == ["ERROR", "INFO", "ERROR", "INFO"], said
    assert said[0][1] == (
        "the check of X failed (tried again every 0.001 s): OSError: nft: no such netns"
    )
    assert said[1][1] == "the check of X works again"
    assert "RuntimeError: other" in said[2][1]
    assert caplog.records[0].event == "x_failed"  # type: ignore[attr-defined]
    assert calls > len(said) + 2  # it kept running after the outcomes were spent


def test_the_first_run_may_come_before_the_interval() -> None:
    calls: list[float] = []
    log = logging.getLogger("fluidedge.test-periodic")

    async def scenario(first: float | None) -> None:
        task = asyncio.create_task(
            every(30.0, lambda: calls.append(1.0), log, "x", "x_failed", first=first)
        )
        await asyncio.sleep(0.3)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(scenario(None))
    assert calls == []  # the default: after one interval
    asyncio.run(scenario(0.0))
    assert calls == [1.0]  # at once, then after each interval
