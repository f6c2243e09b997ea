"""The TOF in the lab's S1 segment, with real UE traffic (issue 4's proof list)."""

from __future__ import annotations

import ipaddress
import socket
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from fluidedge.codec import gtpu
from fluidedge.lab.capture import Capture
from fluidedge.lab.packets import dissect, read_pcap
from fluidedge.linux.netns import call_in_netns
from fluidedge.tof.fuzz import malformed_frames
from fluidedge.tof.pipeline import PINGER_ID, PINGER_MAGIC
from tests.e2e.tof.conftest import SERVICE_IP, TofEnv, TofEnvFactory
from tests.fixtures.captures import gpdus, settled
from tests.fixtures.prom import sample
from tests.fixtures.wait import wait_until

pytestmark = [pytest.mark.root, pytest.mark.slow]

UES = ("ue1", "ue2", "ue3", "ue4")


def _frames(path: Path) -> list[bytes]:
    return [frame for _, frame in read_pcap(path)]


def _post(env: TofEnv, name: str, service_ip: str, app: str) -> None:
    body = {"name": name, "serviceIP": service_ip, "applicationIP": app}
    assert env.client().post("/service", body) == body


def _listening(env: TofEnv, port: str) -> bool:
    out = env.lab.run("pdn", ["ss", "-Hltn", f"sport = :{port}"]).stdout
    return bool(out.strip())


def _pinger_done(env: TofEnv, ue: str) -> bool:
    tunnel = next((t for t in env.tunnels() if t["ue"] == ue), None)
    return bool(tunnel and tunnel["downlinkTEID"] is not None and not tunnel["pinger"]["active"])


def _pinger_requests(frames: list[bytes]) -> int:
    n = 0
    for frame in frames:
        if PINGER_MAGIC in frame and frame.find(PINGER_ID.to_bytes(2, "big")) > 0:
            s1 = dissect(frame)
            if s1.is_gpdu and s1.inner_dst is not None and str(s1.inner_dst) == "198.18.200.10":
                n += 1
    return n


def test_pass_through_is_transparent(tof_env: TofEnvFactory, tmp_path: Path) -> None:
    env = tof_env()
    enb_pcap, sgw_pcap = tmp_path / "enb.pcap", tmp_path / "sgw.pcap"
    host = env.lab.host_ns
    with Capture(host, "s1enb", enb_pcap), Capture(host, "s1sgw", sgw_pcap):
        for ue in UES:
            assert env.ping(ue, str(env.lab.pdn_address)), ue
            assert "pdn 198.18.200.10" in env.http(ue, str(env.lab.pdn_address)), ue
        # TCP's last ACKs and FINs are still in flight when curl returns: wait until both
        # captures (tcpdump -U: written per packet) agree and stay unchanged for one period.
        wait_until(settled(enb_pcap, sgw_pcap), timeout=15, period=0.3)
    enb_side, sgw_side = gpdus(enb_pcap), gpdus(sgw_pcap)
    assert sum(enb_side.values()) >= 4 * (2 + 2) * 2  # pings and HTTP, both directions
    assert enb_side == sgw_side, (enb_side - sgw_side, sgw_side - enb_side)  # byte-identical
    tunnels = env.tunnels()
    assert {t["ue"] for t in tunnels} == {str(a) for a in env.lab.ues.values()}
    uplink_teids = [t["uplinkTEID"] for t in tunnels]
    assert len(set(uplink_teids)) < len(uplink_teids)  # colliding TEIDs, told apart by peers
    # A 50 MB TCP transfer from every UE through the TOF.
    for n, ue in enumerate(UES):
        port = str(5300 + n)
        server = subprocess.Popen(
            env.lab.argv("pdn", ["iperf3", "-s", "-1", "-p", port]),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            assert wait_until(lambda p=port: _listening(env, p), timeout=10), "iperf3 -s not up"
            code, out = env.run(
                ue, "iperf3", "-c", "198.18.200.10", "-p", port, "-n", "50M", timeout=90
            )
            assert code == 0, out
            assert "receiver" in out
        finally:
            server.kill()
            server.wait()
    assert env.daemon.process is not None
    assert env.daemon.process.poll() is None


def test_offload_update_delete_many_ues(tof_env: TofEnvFactory, tmp_path: Path) -> None:
    env = tof_env()
    pdn = str(env.lab.pdn_address)
    assert "pdn" in env.http("ue1", SERVICE_IP)
    _post(env, "web", SERVICE_IP, "198.19.0.10")
    enb_pcap = tmp_path / "enb.pcap"

    def both(ue: str) -> tuple[str, str, str]:
        return ue, env.http(ue, SERVICE_IP), env.http(ue, pdn)

    with Capture(env.lab.host_ns, "s1enb", enb_pcap), ThreadPoolExecutor(4) as pool:
        results = list(pool.map(both, UES))
    for ue, edge, core in results:
        address = str(env.lab.ues[ue])
        assert f"edge-app app1 198.19.0.10 client {address}" in edge, (ue, edge)
        assert "pdn 198.18.200.10" in core, (ue, core)
    replies = [dissect(f) for f in _frames(enb_pcap)]
    down = [
        s
        for s in replies
        if s.is_gpdu and s.src is not None and str(s.src).startswith("198.18.0.2")
    ]
    sources = {str(s.inner_src) for s in down}
    assert SERVICE_IP in sources  # the app's replies carry the service IP...
    assert "198.19.0.10" not in sources  # ...never the app's own address
    stats = env.stats()
    web = stats["services"]["web"]
    assert web["upPackets"] >= 4 * 3
    assert web["downPackets"] >= 4 * 3
    tunnels = {t["ue"]: t for t in env.tunnels()}
    assert all(t["offloaded"]["up"] > 0 for t in tunnels.values())
    assert tunnels["198.18.100.4"]["offloaded"]["down"] > 0  # the 5G UE (extension header)
    metrics = httpx.get(f"{env.daemon.url}/metrics").text
    offloaded = sample(
        metrics, "fluidedge_tof_service_packets_total", service="web", direction="up"
    )
    assert offloaded is not None
    assert offloaded >= 4 * 3
    # PUT moves the service to another app.
    moved = {"name": "web", "serviceIP": SERVICE_IP, "applicationIP": "198.19.0.11"}
    assert env.client().put("/service/web", moved) == moved
    assert "edge-app app2 198.19.0.11" in env.http("ue2", SERVICE_IP)
    # DELETE by name, then by service IP: the PDN answers again.
    env.client().delete("/service/web")
    assert "pdn 198.18.200.10" in env.http("ue2", SERVICE_IP)
    _post(env, "web2", SERVICE_IP, "198.19.0.10")
    assert "edge-app app1" in env.http("ue3", SERVICE_IP)
    env.client().delete(f"/service/{SERVICE_IP}")
    assert "pdn 198.18.200.10" in env.http("ue3", SERVICE_IP)
    assert env.client().get("/service") == []


def test_pinger_reveals_downlink_teid_then_stops(tof_env: TofEnvFactory, tmp_path: Path) -> None:
    env = tof_env(pinger_interval=0.2)
    _post(env, "web", "198.18.50.1", "198.19.0.10")
    sgw_pcap, enb_pcap = tmp_path / "sgw.pcap", tmp_path / "enb.pcap"
    host = env.lab.host_ns
    with Capture(host, "s1sgw", sgw_pcap), Capture(host, "s1enb", enb_pcap):
        # ue3's only traffic goes to the service: no core traffic reveals its downlink TEID.
        assert "edge-app app1 198.19.0.10 client 198.18.100.3" in env.http("ue3", "198.18.50.1")
        assert wait_until(lambda: _pinger_done(env, "198.18.100.3"), timeout=10)
        mark = time.time()  # the Pinger had stopped: nothing it sends may be captured after
        # An observation window of several Pinger intervals (0.2 s), not a synchronisation:
        # a slow machine can only make it see less, never fail it.
        time.sleep(1.5)
    (tunnel,) = [t for t in env.tunnels() if t["ue"] == "198.18.100.3"]
    assert tunnel["downlinkTEID"] is not None
    assert tunnel["pinger"]["active"] is False
    assert tunnel["pinger"]["sent"] >= 1
    sgw_frames = list(read_pcap(sgw_pcap))
    sent = _pinger_requests([f for _, f in sgw_frames])
    assert 1 <= sent <= tunnel["pinger"]["sent"]
    assert _pinger_requests([f for t, f in sgw_frames if t >= mark]) == 0  # it stopped
    # Its echo replies never reached the eNB.
    for frame in _frames(enb_pcap):
        assert PINGER_MAGIC not in frame
    stats = env.stats()
    assert stats["counters"]["pinger_replies_swallowed"] >= 1
    assert stats["drops"].get("queue_timeout", 0) == 0  # queued SYN-ACK was delivered


def test_purge_relearn_end_marker_echo(tof_env: TofEnvFactory, tmp_path: Path) -> None:
    env = tof_env(idle_timeout=1.0)
    pdn = str(env.lab.pdn_address)
    assert env.ping("ue1", pdn)
    assert any(t["ue"] == "198.18.100.1" for t in env.tunnels())
    assert wait_until(lambda: env.tunnels() == [], timeout=30)  # idle purge
    assert env.ping("ue1", pdn, count=1)
    (t,) = env.tunnels()
    assert t["downlinkTEID"] is not None  # re-learned from traffic
    # End Marker on the downlink tunnel: passed through, and the TOF forgets that tunnel.
    enb, teid = t["enb"], t["downlinkTEID"]
    marker = gtpu.end_marker(teid)

    def send_marker() -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind((t["sgw"], 0))
            sock.sendto(marker, (enb, 2152))

    enb_pcap = tmp_path / "enb.pcap"
    with Capture(env.lab.host_ns, "s1enb", enb_pcap, ["udp", "port", "2152"]):
        call_in_netns(env.lab.ns("sgw1"), send_marker)
        assert wait_until(lambda: all(x["downlinkTEID"] is None for x in env.tunnels()), timeout=30)
    assert any(dissect(f).gtp_type == 254 for f in _frames(enb_pcap))
    # Echo request/response between eNBs and SGWs crossed untouched.
    counters = env.stats()["counters"]
    assert wait_until(lambda: env.stats()["counters"].get("gtpu_type_2", 0) > 0, timeout=30)
    assert counters.get("gtpu_type_254", 0) == 1


def test_restart_and_kill9_restore_services(tof_env: TofEnvFactory) -> None:
    env = tof_env()
    _post(env, "web", "198.18.50.1", "198.19.0.10")
    assert "edge-app app1" in env.http("ue1", "198.18.50.1")
    for crash in (False, True):
        if crash:
            env.daemon.kill9()
            env.daemon.start()
        else:
            env.daemon.restart()
        # Services are back in the data plane before the API answers; the first request
        # re-learns the tunnels (the Pinger finds the downlink TEID) and is answered, within
        # curl's own deadline, without a retry.
        assert "edge-app app1" in env.http("ue2" if crash else "ue1", "198.18.50.1")
        assert [s["name"] for s in env.client().get("/service")] == ["web"]


def test_live_fuzz_keeps_the_data_plane_up(tof_env: TofEnvFactory) -> None:
    env = tof_env()
    lab = env.lab
    _post(env, "web", "198.18.50.1", "198.19.0.10")
    enb = lab.enbs["enb1"].packed
    sgw = lab.sgws["sgw1"].packed

    def blast() -> int:
        with socket.socket(socket.AF_PACKET, socket.SOCK_RAW) as sock:
            sock.bind((lab.gen_if, 0))
            sent = 0
            for frame in malformed_frames(
                2000,
                enb=enb,
                sgw=sgw,
                ue=ipaddress.IPv4Address("198.18.100.1").packed,
                target=ipaddress.IPv4Address("198.18.50.1").packed,
                src_mac=bytes.fromhex("02aa00000001"),
            ):
                sock.send(frame)
                sent += 1
            return sent

    assert call_in_netns(lab.ran_ns, blast) == 2000
    assert wait_until(lambda: sum(env.stats()["malformed"].values()) > 100, timeout=30)
    assert env.daemon.process is not None
    assert env.daemon.process.poll() is None
    assert [p.name for p in lab.processes() if not p.alive] == []
    assert env.stats()["dataplane"] == "running"
    assert not [k for k in env.stats()["io"] if k.startswith("pipeline_error")]
    assert env.ping("ue1", str(lab.pdn_address)), (env.stats(), env.tunnels())
    assert "edge-app app1" in env.http("ue1", "198.18.50.1")
