"""The backends' shared guards around the pipeline: a pipeline error is counted, the frame is
passed through (S1) or dropped (apps), timers skip one tick, and the data plane keeps going.

The pipeline is made to fail on purpose here; both backends' loops call these same guards."""

from __future__ import annotations

import pytest

from fluidedge.tof.config import TofConfig
from fluidedge.tof.dataplane_common import DataPlaneBase
from fluidedge.tof.pipeline import ENB, SGW


def _boom(*_args: object) -> list[tuple[int, bytes]]:
    raise RuntimeError("pipeline bug")


@pytest.fixture
def plane(monkeypatch: pytest.MonkeyPatch) -> DataPlaneBase:
    base = DataPlaneBase(TofConfig(backend="none"))
    for name in ("from_s1", "from_apps", "tick"):
        monkeypatch.setattr(base.pipeline, name, _boom)
    return base


def test_s1_frames_pass_through_to_the_other_side(plane: DataPlaneBase) -> None:
    assert plane._from_s1(b"up", ENB, 1.0) == [(SGW, b"up")]
    assert plane._from_s1(b"down", SGW, 1.0) == [(ENB, b"down")]
    assert plane.io["pipeline_error_passed_through"] == 2


def test_app_packets_are_dropped_and_ticks_skipped(plane: DataPlaneBase) -> None:
    assert plane._from_apps(b"reply", 1.0) == []
    assert plane._tick(1.0) == []
    assert plane.io["pipeline_error_apps_dropped"] == 1
    assert plane.io["pipeline_error_tick"] == 1


def test_without_errors_the_pipeline_answers() -> None:
    base = DataPlaneBase(TofConfig(backend="none"))
    frame = bytes(60)  # not IP: a switch passes it through unchanged
    assert base._from_s1(frame, ENB, 1.0) == base.pipeline.from_s1(frame, ENB, 1.0)
    assert not [k for k in base.io if k.startswith("pipeline_error")]
