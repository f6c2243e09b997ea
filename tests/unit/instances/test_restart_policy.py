"""The restart policy's pure parts: the back-off, the restarter's bookkeeping (with a fake
``restart`` call behind the seam the functional tests exercise for real on runc), and the
stored request an instance row carries."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from fluidedge.instances import restart
from fluidedge.instances.models import InstanceRequest, Resources, TemplateSpec
from fluidedge.instances.records import Instance
from fluidedge.instances.restart import Restarter, delay


def test_the_back_off_doubles_from_one_second_to_five_minutes() -> None:
    assert [delay(n) for n in range(6)] == [0.0, 1.0, 2.0, 4.0, 8.0, 16.0]
    assert delay(9) == 256.0
    assert delay(10) == delay(1000) == restart.MAX_S == 300.0
    assert delay(-1) == 0.0


class Calls:
    """A fake ``restart``: records the calls, fails while ``failing``."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        self.failing = False
        self.event = threading.Event()

    def __call__(self, name: str, container_id: str) -> bool:
        self.calls.append((name, container_id))
        self.event.set()
        if self.failing:
            raise RuntimeError("network gone")
        return True


@pytest.fixture
def fast(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(restart, "BASE_S", 0.05)


def test_found_gone_at_start_is_made_again_at_once() -> None:
    calls = Calls()
    restarter = Restarter(calls)
    try:
        assert restarter.schedule("a", "fe0000000001", ran_for=None) == 0.0
        assert calls.event.wait(5)
        assert calls.calls == [("a", "fe0000000001")]
        assert restarter.pending() == {}
    finally:
        restarter.close()


def test_a_quick_exit_is_a_failure_and_a_long_run_starts_the_count_again() -> None:
    restarter = Restarter(lambda name, cid: True)
    try:
        assert restarter.schedule("a", "id", ran_for=0.5) == 1.0
        assert restarter.schedule("a", "id", ran_for=0.5) == 2.0
        assert restarter.schedule("a", "id", ran_for=3.0) == 4.0
        assert restarter.schedule("a", "id", ran_for=restart.STABLE_S) == 0.0
    finally:
        restarter.close()


def test_a_failed_restart_is_tried_again_after_the_back_off(fast: None) -> None:
    calls = Calls()
    calls.failing = True
    restarter = Restarter(calls)
    try:
        restarter.schedule("a", "id", ran_for=None)
        deadline = time.monotonic() + 5
        while len(calls.calls) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(calls.calls) >= 3  # at once, then 0.05 s, then 0.1 s later
        calls.failing = False
        deadline = time.monotonic() + 5
        while "a" in restarter.pending() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert restarter.pending() == {}
    finally:
        restarter.close()


def test_a_cancelled_instance_is_not_made_again() -> None:
    calls = Calls()
    restarter = Restarter(calls)
    try:
        restarter.schedule("a", "id", ran_for=0.1)  # 1 s away
        assert set(restarter.pending()) == {"a"}
        restarter.cancel("a")
        assert restarter.pending() == {}
        time.sleep(1.2)
        assert calls.calls == []
    finally:
        restarter.close()


def _instance(request: dict[str, Any] | None) -> Instance:
    return Instance(
        name="w1",
        id="fe0123456789",
        template="web",
        state="running",
        pid=42,
        path="warm",
        cpus=(0,),
        resources=Resources(),
        interfaces=[],
        labels={},
        timing={},
        created_at=1.0,
        directory=Path("/var/lib/fluidedge/instances/shells/fe0123456789"),
        request=request,
        restarts=2,
    )


def test_the_stored_request_round_trips_and_a_damaged_one_is_refused() -> None:
    request = {
        **InstanceRequest(name="w1", template="web", env={"K": "v"}).model_dump(mode="json"),
        "restart": "always",
    }
    again = Instance.from_record(_instance(request).record())
    assert again.request == request
    assert again.restarts == 2
    assert again.view().restart == "always"
    assert Instance.from_record(_instance(None).record()).view().restart == "no"
    for damaged, error in (
        ({**request, "name": "other"}, ValueError),  # another instance's
        ({**request, "restart": "no"}, ValueError),
        ({**request, "env": {"1bad": "x"}}, ValueError),  # not a request the API takes
        (["not", "an", "object"], TypeError),
    ):
        record = _instance(None).record()
        record["request"] = damaged
        with pytest.raises(error):
            Instance.from_record(record)
    record = _instance(None).record()
    record["restarts"] = "2"
    with pytest.raises(ValueError, match="not a non-negative integer"):
        Instance.from_record(record)


def test_a_template_says_no_unless_told() -> None:
    assert TemplateSpec(name="t").restart == "no"
    assert InstanceRequest(name="i", template="t").restart is None
    with pytest.raises(ValueError, match="restart"):
        InstanceRequest.model_validate({"name": "i", "template": "t", "restart": "sometimes"})
