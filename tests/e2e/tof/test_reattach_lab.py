"""Re-attach with TEID reuse in the emulated lab, on both backends, with real UE traffic.

Two UEs on one eNB/SGW pair use a service (offloaded) and the PDN. Then the core "re-attaches"
them as real ones do: the eNB and SGW nodes re-read their bearers (SIGHUP) where ue5 now has
ue1's old uplink *and* downlink TEIDs (variant 2: both re-used, another UE) and ue1 a fresh
uplink TEID with ue5's old downlink TEID (variant 1: new UL, re-used DL). Offload and the PDN
must work again for both, the TOF must show each UE with its new TEIDs, and the events must
say which bearer was retired and why.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from typing import Any

import pytest

from fluidedge.lab.config import default_text, loads
from fluidedge.lab.lab import Lab
from fluidedge.tof.launch import s1_pairs, wait_s1_ready
from tests.e2e.tof.conftest import SERVICE_IP, TofEnv, start_tof, tof_section
from tests.fixtures.daemon import DaemonFactory
from tests.fixtures.wait import wait_until

pytestmark = pytest.mark.root

UE5 = """
[[ue]]
name = "ue5"
address = "198.18.100.5"
enb = "enb1"
sgw = "sgw1"
"""
APP1 = "198.19.0.10"
FRESH_UL = 0x7E001


@pytest.fixture(params=["userspace", "fastpath"])
def env(daemon_factory: DaemonFactory, request: pytest.FixtureRequest) -> Iterator[TofEnv]:
    prefix = f"tra{os.getpid() % 100000}{str(request.param)[0]}"
    lab = Lab.up(loads(default_text() + UE5), prefix=prefix, mode="tof")
    made: TofEnv | None = None
    try:
        made = start_tof(lab, daemon_factory, tof_section(lab, str(request.param)))
        assert wait_s1_ready(made.client(), s1_pairs(lab)), "no echo crossed the TOF"
        yield made
    finally:
        if made is not None:
            made.close()
            made.daemon.stop()
        lab.down()


def reattach(lab: Lab, teids: dict[str, tuple[int, int]]) -> None:
    """Give UEs new (uplink, downlink) TEIDs on enb1 and sgw1, as a core re-attaching them."""
    pids = {p.name: p.pid for p in lab.state.processes}
    for node in ("enb1", "sgw1"):
        path = lab.run_dir / f"{node}.spec.json"
        spec = json.loads(path.read_text())
        for bearer in spec["bearers"]:
            if bearer["ue"] in teids:
                bearer["ul_teid"], bearer["dl_teid"] = teids[bearer["ue"]]
        path.write_text(json.dumps(spec))
        before = _reloads(lab, node)
        os.kill(pids[node], signal.SIGHUP)
        assert wait_until(lambda n=node, b=before: _reloads(lab, n) > b, timeout=10), node


def _reloads(lab: Lab, node: str) -> int:
    try:
        doc: dict[str, Any] = json.loads((lab.run_dir / f"{node}.stats.json").read_text())
    except (OSError, ValueError):
        return -1
    return int(doc.get("reloads", 0))


def served(env: TofEnv, ue: str) -> bool:
    address = str(env.lab.ues[ue])
    return f"edge-app app1 {APP1} client {address}" in env.http(ue, SERVICE_IP, timeout=2.0)


def test_reattach_with_teid_reuse_in_the_lab(env: TofEnv) -> None:
    lab = env.lab
    pdn = str(lab.pdn_address)
    body = {"name": "web", "serviceIP": SERVICE_IP, "applicationIP": APP1}
    assert env.client().post("/service", body) == body
    for ue in ("ue1", "ue5"):
        assert served(env, ue), ue
        assert env.ping(ue, pdn), ue
    old = {b.ue: (b.ul_teid, b.dl_teid) for b in lab.bearers if b.ue in ("ue1", "ue5")}
    rows = {t["ue"]: t for t in env.tunnels()}
    assert (rows["198.18.100.1"]["uplinkTEID"], rows["198.18.100.1"]["downlinkTEID"]) == old["ue1"]

    new = {"ue5": old["ue1"], "ue1": (FRESH_UL, old["ue5"][1])}
    reattach(lab, new)
    start = time.monotonic()
    # ue5 first: its traffic arrives on ue1's old keys (variant 2).
    assert wait_until(lambda: served(env, "ue5"), timeout=15, period=0.2)
    took5 = time.monotonic() - start
    start = time.monotonic()
    assert wait_until(lambda: served(env, "ue1"), timeout=15, period=0.2)  # variant 1
    took1 = time.monotonic() - start
    for ue in ("ue1", "ue5"):
        assert env.ping(ue, pdn), ue
    rows = {t["ue"]: t for t in env.tunnels()}
    for ue, address in (("ue1", "198.18.100.1"), ("ue5", "198.18.100.5")):
        assert (rows[address]["uplinkTEID"], rows[address]["downlinkTEID"]) == new[ue], ue
    events: list[dict[str, Any]] = env.client().get("/tunnels/events")
    retired = {(e["reason"], e["ue"]) for e in events if e["event"] == "retired"}
    assert ("uplink_teid_reused", "198.18.100.1") in retired or (
        "downlink_teid_reused",
        "198.18.100.1",
    ) in retired
    assert any(e["ue"] == "198.18.100.5" for e in events if e["event"] == "retired")
    stats = env.stats()
    assert sum(stats["bearerEvents"]["retired"].values()) >= 2
    pinger = rows["198.18.100.1"]["pinger"]
    print(
        f"\n{stats['backend']}: offload back for ue5 (both TEIDs re-used) after {took5:.2f} s,"
        f" ue1 (new UL, re-used DL) after {took1:.2f} s; ue1 Pinger {pinger};"
        f" retired {sorted(retired)}"
    )
