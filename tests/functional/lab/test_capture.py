"""The lab's tcpdump capture says why it could not start, in tcpdump's own words (on a stock
Debian host its AppArmor profile refuses files not named like captures; here, an interface
that does not exist)."""

from __future__ import annotations

from pathlib import Path

import pytest

from fluidedge.lab.capture import Capture
from fluidedge.lab.errors import LabSystemError
from tests.fixtures.netns import scratch_netns

pytestmark = pytest.mark.root


def test_a_capture_that_cannot_start_says_why(tmp_path: Path) -> None:
    with scratch_netns("cap") as ns:
        capture = Capture(ns, "nosuchif0", tmp_path / "x.pcap")
        with pytest.raises(LabSystemError, match=r"nosuchif0 exited \(\d+\): .*nosuchif0"):
            capture.start()


def test_a_capture_records_what_crosses_its_interface(tmp_path: Path) -> None:
    path = tmp_path / "lo.pcap"
    with scratch_netns("cap", loopback=True) as ns, Capture(ns, "lo", path):
        pass
    assert path.read_bytes()[:4] in (b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4")  # pcap magic
