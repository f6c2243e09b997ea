"""The TOF between a real GTP stack (sgsnemu UEs, osmo-ggsn) on both backends (issue 10 §2):
pass-through, offload, Pinger, purge/relearn, restart and kill -9, and re-attach with TEID
reuse, with offload working again within one Pinger round."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from fluidedge.lab.capture import Capture
from fluidedge.lab.packets import read_pcap
from fluidedge.tof.pipeline import PINGER_MAGIC
from tests.e2e.tof.conftest import TofEnv
from tests.e2e.tof_osmo.conftest import OsmoEnvFactory
from tests.fixtures.captures import gpdus, settled
from tests.fixtures.wait import wait_until

pytestmark = [pytest.mark.root, pytest.mark.slow]

UES = ("ue1", "ue2", "ue3", "ue4")
EDGE = "198.18.50.1"  # a service IP only the edge app answers


def _frames(path: Path) -> list[bytes]:
    return [frame for _, frame in read_pcap(path)]


def _post(env: TofEnv, name: str, service_ip: str, app: str) -> None:
    body = {"name": name, "serviceIP": service_ip, "applicationIP": app}
    assert env.client().post("/service", body) == body


def _tunnel(env: TofEnv, address: str) -> dict[str, Any] | None:
    return next((t for t in env.tunnels() if t["ue"] == address), None)


def _gpdu_flags(frame: bytes) -> int:
    return frame[14 + 20 + 8]


def test_pass_through_is_byte_identical(osmo_env: OsmoEnvFactory, tmp_path: Path) -> None:
    env = osmo_env()
    pdn = str(env.lab.pdn_address)
    enb_pcap, sgw_pcap = tmp_path / "enb.pcap", tmp_path / "sgw.pcap"
    host = env.lab.host_ns
    with Capture(host, "s1enb", enb_pcap), Capture(host, "s1sgw", sgw_pcap):
        for ue in UES:
            assert env.ping(ue, pdn), ue
            assert "pdn 198.18.200.10" in env.http(ue, pdn), ue
        # TCP's last ACKs and FINs are still in flight when curl returns: wait until both
        # captures agree and stay unchanged for one period.
        wait_until(settled(enb_pcap, sgw_pcap), timeout=15, period=0.3)
    enb_side, sgw_side = gpdus(enb_pcap), gpdus(sgw_pcap)
    assert sum(enb_side.values()) >= 4 * (2 + 2) * 2
    assert enb_side == sgw_side, (enb_side - sgw_side, sgw_side - enb_side)
    # Real osmo G-PDUs: every one carries a sequence number (S flag).
    assert all(_gpdu_flags(f) & 0x02 for f in enb_side)
    tunnels = env.tunnels()
    assert {t["ue"] for t in tunnels} == {str(a) for a in env.lab.ues.values()}
    # Every sgsnemu allocates downlink TEID 1: the same TEID from four peers, told apart.
    assert [t["downlinkTEID"] for t in tunnels] == [1, 1, 1, 1]
    assert len({t["uplinkTEID"] for t in tunnels}) == 4


def test_offload_pinger_purge_relearn(osmo_env: OsmoEnvFactory, tmp_path: Path) -> None:
    env = osmo_env(pinger_interval=0.2, idle_timeout=2.0)
    _post(env, "web", EDGE, "198.19.0.10")
    for ue in UES:
        address = str(env.lab.ues[ue])
        assert f"edge-app app1 198.19.0.10 client {address}" in env.http(ue, EDGE), ue
    # Idle purge, then ue3 only talks to the service: the Pinger finds its downlink TEID.
    assert wait_until(lambda: env.tunnels() == [], timeout=10)
    enb_pcap = tmp_path / "enb.pcap"
    ue3 = str(env.lab.ues["ue3"])
    with Capture(env.lab.host_ns, "s1enb", enb_pcap):
        assert f"client {ue3}" in env.http("ue3", EDGE)
        # the Pinger found the downlink TEID and stopped (its reply is in the capture)
        wait_until(lambda: bool((t := _tunnel(env, ue3)) and not t["pinger"]["active"]))
    tunnel = _tunnel(env, ue3)
    assert tunnel is not None
    assert tunnel["downlinkTEID"] == 1
    assert tunnel["pinger"]["sent"] >= 1
    assert tunnel["pinger"]["active"] is False
    assert env.stats()["counters"]["pinger_replies_swallowed"] >= 1
    assert not any(PINGER_MAGIC in f for f in _frames(enb_pcap))  # replies never reach the UE
    # Relearned from plain traffic after the purge.
    assert env.ping("ue1", str(env.lab.pdn_address))
    assert _tunnel(env, str(env.lab.ues["ue1"])) is not None


def test_restart_and_kill9(osmo_env: OsmoEnvFactory) -> None:
    env = osmo_env()
    _post(env, "web", EDGE, "198.19.0.10")
    assert "edge-app app1" in env.http("ue1", EDGE)
    env.daemon.restart()
    assert "edge-app app1" in env.http("ue2", EDGE)
    env.daemon.kill9()
    env.daemon.start()
    assert "edge-app app1" in env.http("ue3", EDGE)
    assert env.ping("ue4", str(env.lab.pdn_address))
    assert [s["name"] for s in env.client().get("/service")] == ["web"]


def _reattach_and_check(env: TofEnv, ue: str, *, delete: bool) -> dict[str, Any]:
    """Re-attach ``ue``; offload must work at the first request, within one Pinger round."""
    old_address = str(env.lab.ues[ue])
    old = _tunnel(env, old_address)
    started = time.monotonic()
    new_address = str(env.lab.reattach(ue, delete=delete))
    attached = time.monotonic()
    assert new_address != old_address
    answer = env.http(ue, EDGE, timeout=3.0)
    answered = time.monotonic()
    assert f"edge-app app1 198.19.0.10 client {new_address}" in answer, (answer, env.tunnels())
    new = _tunnel(env, new_address)
    assert new is not None, env.tunnels()
    assert new["pinger"]["sent"] <= 1  # at most one Pinger round
    addresses = {t["ue"] for t in env.tunnels()}
    assert old_address not in addresses  # the old bearer is retired, not credited
    print(
        f"{ue} re-attach ({'delete' if delete else 'crash'}): {old_address} -> {new_address}, "
        f"TEIDs {old and (old['uplinkTEID'], old['downlinkTEID'])} -> "
        f"{(new['uplinkTEID'], new['downlinkTEID'])}, attach {attached - started:.2f} s, "
        f"first offloaded answer {answered - attached:.3f} s, pinger sent {new['pinger']['sent']}"
    )
    return {"old": old, "new": new}


# GTP-C on: the TOF learns the new bearer from Create PDP Context as it crosses; off: from the
# user plane alone (the Pinger finds the reused downlink TEID).
LEARNING = pytest.mark.parametrize("gtpc", [True, False], ids=["gtpc", "user-plane"])


@LEARNING
def test_reattach_new_address_new_uplink_teid_same_downlink_teid(
    osmo_env: OsmoEnvFactory, gtpc: bool
) -> None:
    env = osmo_env(pinger_interval=1.0, gtpc=gtpc)
    _post(env, "web", EDGE, "198.19.0.10")
    assert "edge-app app1" in env.http("ue1", EDGE)
    old_address = str(env.lab.ues["ue1"])
    result = _reattach_and_check(env, "ue1", delete=False)
    old, new = result["old"], result["new"]
    assert old is not None
    assert new["uplinkTEID"] != old["uplinkTEID"]
    assert new["downlinkTEID"] == old["downlinkTEID"] == 1
    events = env.client().get("/tunnels/events")
    assert any(e["event"] == "retired" and e.get("ue") == old_address for e in events), events


@LEARNING
def test_reattach_both_teids_reused_new_address(osmo_env: OsmoEnvFactory, gtpc: bool) -> None:
    env = osmo_env(pinger_interval=1.0, gtpc=gtpc)
    _post(env, "web", EDGE, "198.19.0.10")
    assert "edge-app app1" in env.http("ue2", EDGE)
    result = _reattach_and_check(env, "ue2", delete=True)
    old, new = result["old"], result["new"]
    assert old is not None
    assert (new["uplinkTEID"], new["downlinkTEID"]) == (old["uplinkTEID"], old["downlinkTEID"])
    # Pass-through keeps working for the new address too.
    assert env.ping("ue2", str(env.lab.pdn_address))


def test_many_ues_reattach_in_a_loop(osmo_env: OsmoEnvFactory) -> None:
    """User-plane learning only (the harder case: every re-attach needs the Pinger)."""
    env = osmo_env(pinger_interval=1.0, gtpc=False)
    _post(env, "web", EDGE, "198.19.0.10")
    for ue in UES:
        assert "edge-app app1" in env.http(ue, EDGE)
    for round_ in range(3):
        for n, ue in enumerate(UES):
            _reattach_and_check(env, ue, delete=(n + round_) % 2 == 0)
        current = {str(a) for a in env.lab.ues.values()}
        assert {t["ue"] for t in env.tunnels()} == current
