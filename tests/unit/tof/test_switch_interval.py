"""The data plane runs with ``[tof] switch_interval`` as the interpreter's GIL switch interval
and gives the previous one back when it stops (docs/superfluid.md, "Resume latency")."""

from __future__ import annotations

import sys
import threading

import pytest
from pydantic import ValidationError

from fluidedge.tof.config import TofConfig
from fluidedge.tof.dataplane_common import DataPlaneBase


class _Plane(DataPlaneBase):
    def __init__(self, config: TofConfig) -> None:
        super().__init__(config)
        self.seen: list[float] = []
        self.looped = threading.Event()

    def _loop(self) -> None:
        self.seen.append(sys.getswitchinterval())
        self.looped.set()


def test_the_data_plane_thread_runs_with_the_configured_interval() -> None:
    before = sys.getswitchinterval()
    plane = _Plane(TofConfig(backend="none", switch_interval=0.0007))
    plane._start_thread()
    try:
        assert plane.looped.wait(5)
        assert plane.seen == [pytest.approx(0.0007)]
        assert sys.getswitchinterval() == pytest.approx(0.0007)
    finally:
        plane._stop_thread()
        plane._close_tun_and_wake()
    assert sys.getswitchinterval() == before


def test_the_default_is_half_a_millisecond_and_bounds_are_checked() -> None:
    assert TofConfig(backend="none").switch_interval == 0.0005
    for bad in (0.0, 0.00001, 1.0):
        with pytest.raises(ValidationError, match="switch_interval"):
            TofConfig(backend="none", switch_interval=bad)
