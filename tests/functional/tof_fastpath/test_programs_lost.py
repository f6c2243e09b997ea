"""The TOF's tc programs taken off its devices from outside come back, on both backends.

``tc qdisc del dev X clsact`` (by hand, or a tool that rebuilds a device's qdiscs) takes every
filter of the device with it. On the fast path the S1 side whose ``s1_ingress`` went is cut:
its frames are switched by nothing (real frames show it); without ``apps_egress`` no app reply
reaches a UE. On the userspace backend the agent's sockets go on forwarding, but the guard that
fails S1 open when the agent dies is gone. ``heal()`` (the daemon calls it every
``program_check_interval``) names what it found missing and puts it back.
"""

from __future__ import annotations

import logging

import pytest

from fluidedge.codec.stack import classify
from fluidedge.linux.proc import run
from fluidedge.tof.failopen import s1_program_attached

from .scenario import ENB1, PDN, Backend, inner_udp, up
from .topo import Topo

pytestmark = pytest.mark.root

UE = bytes((198, 18, 100, 21))


def _crosses(t: Topo, teid: int) -> bool:
    """Does an uplink G-PDU sent by the eNB reach the SGW side (retried: a few frames)?"""
    frame = up(ENB1, teid, inner_udp(UE, PDN, 4000, 53, b"pdn"))
    for _ in range(3):
        t.send("enb", frame)
        got = t.collect(0.3)
        if any(classify(f).teid == teid for f in got["sgw"]):
            return True
    return False


def _take_off(t: Topo, dev: str) -> None:
    run(["tc", "-n", t.host, "qdisc", "del", "dev", dev, "clsact"])


def test_programs_taken_off_from_outside_come_back(
    running: tuple[Topo, Backend, str], caplog: pytest.LogCaptureFixture
) -> None:
    t, backend, kind = running
    heal = backend.heal  # type: ignore[attr-defined]
    assert _crosses(t, 0x301)
    assert heal() == []  # all in place: nothing done
    assert backend.stats()["io"].get("programs_reattached", 0) == 0  # type: ignore[union-attr]

    _take_off(t, "s1enb")
    assert not s1_program_attached(t.host, "s1enb")
    if kind == "fastpath":
        _take_off(t, backend.config.apps_tun)  # type: ignore[attr-defined]
        assert not _crosses(t, 0x302)  # the eNB side is cut: nothing switches its frames
        wanted = [
            f"apps_egress on {backend.config.apps_tun} egress",  # type: ignore[attr-defined]
            "s1_ingress on s1enb ingress",
        ]
    else:
        wanted = ["s1_guard on s1enb ingress"]

    with caplog.at_level(logging.ERROR, logger="fluidedge.tof"):
        assert heal() == wanted
    assert s1_program_attached(t.host, "s1enb")
    assert _crosses(t, 0x303)
    assert heal() == []
    io = backend.stats()["io"]
    assert io["programs_reattached"] == len(wanted)  # type: ignore[index]
    said = [r.getMessage() for r in caplog.records]
    assert any("taken off from outside; re-attached" in m and wanted[-1] in m for m in said)
