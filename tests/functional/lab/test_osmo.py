"""The osmo flavour on the real kernel: osmo-ggsn + sgsnemu come up, UEs reach the PDN, a UE
re-attaches both ways, and ``down`` leaves nothing (also after the osmo processes crashed)."""

from __future__ import annotations

import os
import signal

import pytest

from fluidedge.lab import build
from fluidedge.lab.lab import Lab
from fluidedge.lab.state import process_alive
from tests.fixtures.lab import lab_leftovers, unique_prefix
from tests.fixtures.wait import wait_until

pytestmark = pytest.mark.root


def _ping(lab: Lab, ue: str) -> bool:
    return lab.run(ue, ["ping", "-c", "1", "-W", "2", str(lab.pdn_address)]).returncode == 0


def _osmo_pids(prefix: str) -> list[int]:
    """The osmo-ggsn / sgsnemu processes (children of the supervisors) of lab ``prefix``."""
    pids = []
    for path in (build.run_dir(prefix)).glob("*/child.pid"):
        pid = int(path.read_text())
        if process_alive(pid, None):
            pids.append(pid)
    return pids


def test_up_reattach_down_leaves_nothing_behind() -> None:
    prefix = unique_prefix()
    lab = Lab.up(prefix=prefix, flavour="osmo")
    try:
        assert lab.flavour == "osmo"
        assert all(p.alive for p in lab.processes())
        assert len(_osmo_pids(prefix)) == 5  # one GGSN, four sgsnemu
        # The GGSN's pool hands out addresses in attach order.
        assert {u: str(a) for u, a in lab.ues.items()} == {
            f"ue{n}": f"198.18.100.{n}" for n in range(1, 5)
        }
        for ue in lab.ues:
            assert _ping(lab, ue), ue
        pdn = lab.run("ue3", ["curl", "-s", "-m", "3", f"http://{lab.pdn_address}/"]).stdout
        assert "client 198.18.100.3" in pdn
        # Clean detach (Delete PDP Context) and radio loss: a new address each time, and the
        # re-attached UE works; the others are untouched.
        first = lab.reattach("ue1", delete=True)
        second = lab.reattach("ue2", delete=False)
        assert {str(first), str(second)}.isdisjoint({f"198.18.100.{n}" for n in range(1, 5)})
        assert Lab.attach(prefix).ues["ue1"] == first
        for ue in lab.ues:
            assert _ping(lab, ue), ue
        assert len(_osmo_pids(prefix)) == 5
    finally:
        lab.down()
    assert lab_leftovers(prefix) == []


def test_down_after_osmo_processes_crashed() -> None:
    prefix = unique_prefix()
    lab = Lab.up(prefix=prefix, flavour="osmo")
    try:
        children = _osmo_pids(prefix)
        supervisors = [p.pid for p in lab.processes() if p.name in ("ggsn", "sgsn1")]
        for pid in [*supervisors, *children[:2]]:
            os.kill(pid, signal.SIGKILL)
        # A supervisor's child dies with it (PR_SET_PDEATHSIG), whatever killed it.
        assert wait_until(lambda: len(_osmo_pids(prefix)) <= 3, timeout=30)
    finally:
        lab.down()
    assert lab_leftovers(prefix) == []
    assert build.down(prefix) == []


def test_osmo_tof_mode_cuts_s1_after_attaching() -> None:
    """In tof mode the UEs attach across a temporary bridge; then S1 is left to a TOF."""
    prefix = unique_prefix()
    lab = Lab.up(prefix=prefix, flavour="osmo", mode="tof")
    try:
        links = lab.run("host", ["ip", "-o", "link", "show", "type", "bridge"]).stdout
        assert " br0:" not in links
        assert all(str(a).startswith("198.18.100.") for a in lab.ues.values())
        assert not _ping(lab, "ue1")  # no TOF, no forwarding
    finally:
        lab.down()
    assert lab_leftovers(prefix) == []
