"""The whole lab, end to end, in bridge mode: UEs reach the PDN through their tunnels, and what
crosses the S1 segment (read back with the project's GTP-U codec) is what the issue promises:
G-PDUs both ways with colliding TEIDs, a PDU Session Container where configured, echo, error
indication, and non-GTP traffic."""

from __future__ import annotations

import json
import socket
import subprocess
from collections.abc import Callable
from ipaddress import IPv4Address

import pytest
from rich.console import Console

from fluidedge.codec.gtpu import encode_gpdu
from fluidedge.codec.net.ethernet import ETHERTYPE_ARP
from fluidedge.lab.capture import Capture
from fluidedge.lab.config import LabConfig, load
from fluidedge.lab.lab import Lab
from fluidedge.lab.live import live_table, render
from fluidedge.lab.packets import S1Frame, dissect_pcap
from fluidedge.linux.netns import call_in_netns
from tests.fixtures.lab import LabFactory
from tests.fixtures.wait import wait_until

pytestmark = pytest.mark.root

ECHO_INTERVAL = 0.3
PSC_UE = "ue4"


@pytest.fixture(scope="module")
def lab(module_lab_factory: LabFactory) -> Lab:
    raw = load().model_dump(mode="json")
    raw["gtpu"]["echo_interval"] = ECHO_INTERVAL
    for ue in raw["ue"]:
        if ue["name"] == PSC_UE:
            ue["pdu_session_container"] = True
    return module_lab_factory(LabConfig.model_validate(raw), mode="bridge")


def _ping(lab: Lab, ue: str, dst: IPv4Address, count: int = 1) -> None:
    result = lab.run(ue, ["ping", "-c", str(count), "-i", "0.2", "-W", "2", str(dst)])
    assert result.returncode == 0, f"{ue} -> {dst}: {result.stdout}{result.stderr}"


def _stats(lab: Lab, node: str) -> dict[str, int]:
    doc = json.loads((lab.run_dir / f"{node}.stats.json").read_text())
    return dict(doc["counters"])


def test_every_ue_reaches_the_pdn(lab: Lab) -> None:
    for ue, address in lab.ues.items():
        _ping(lab, ue, lab.pdn_address)
        page = lab.run(ue, ["curl", "-s", "-m", "5", f"http://{lab.pdn_address}/{ue}"])
        assert page.returncode == 0, page.stderr
        assert page.stdout.startswith(f"pdn {lab.pdn_address} client {address} path /{ue}")

        def udp_echo() -> socket.socket:
            return socket.socket(socket.AF_INET, socket.SOCK_DGRAM)

        sock = call_in_netns(lab.ns(ue), udp_echo)
        with sock:
            sock.settimeout(3)
            sock.sendto(f"hello from {ue}".encode(), (str(lab.pdn_address), lab.pdn_udp_echo_port))
            data, _ = sock.recvfrom(100)
        assert data == f"hello from {ue}".encode()


def test_edge_app_answers_differently_on_the_apps_network(lab: Lab) -> None:
    (name, address), *_ = lab.apps.items()
    page = lab.run("host", ["curl", "-s", "-m", "5", f"http://{address}/"])
    assert page.returncode == 0
    assert page.stdout.startswith(f"edge-app {name} {address} client {lab.apps_gateway}")
    # no UE reaches the apps network without a TOF: the S1 segment is only bridged
    assert lab.run("ue1", ["curl", "-s", "-m", "1", f"http://{address}/"]).returncode != 0


def _capture_pings(lab: Lab, cap: Capture) -> list[S1Frame]:
    with cap:
        for ue in lab.ues:
            _ping(lab, ue, lab.pdn_address)
    return dissect_pcap(cap.path)


@pytest.mark.parametrize("side", ["enb", "sgw"])
def test_gpdus_both_ways_with_colliding_teids(
    lab: Lab, s1_capture: Callable[..., Capture], side: str
) -> None:
    frames = [
        f for f in _capture_pings(lab, s1_capture(lab, side, ["udp", "port", "2152"])) if f.is_gpdu
    ]
    for b in lab.bearers:
        up = [f for f in frames if f.inner_src == b.ue_address and f.inner_dst == lab.pdn_address]
        down = [f for f in frames if f.inner_dst == b.ue_address and f.inner_src == lab.pdn_address]
        assert up, f"no uplink G-PDU of {b.ue}"
        assert down, f"no downlink G-PDU of {b.ue}"
        assert {(f.src, f.dst, f.teid) for f in up} == {(b.enb_address, b.sgw_address, b.ul_teid)}
        assert {(f.src, f.dst, f.teid) for f in down} == {(b.sgw_address, b.enb_address, b.dl_teid)}
    # the same TEID value carries different UEs' traffic on different tunnels
    by_ul_teid: dict[int, set[IPv4Address | None]] = {}
    for f in frames:
        if f.dst in lab.sgws.values():
            by_ul_teid.setdefault(f.teid or 0, set()).add(f.inner_src)
    assert any(len(sources) >= 2 for sources in by_ul_teid.values())
    by_dl_teid: dict[int, set[IPv4Address | None]] = {}
    for f in frames:
        if f.dst in lab.enbs.values():
            by_dl_teid.setdefault(f.teid or 0, set()).add(f.inner_dst)
    assert any(len(dests) >= 2 for dests in by_dl_teid.values())


def test_pdu_session_container_on_uplink(lab: Lab, s1_capture: Callable[..., Capture]) -> None:
    frames = _capture_pings(lab, s1_capture(lab, "enb", ["udp", "port", "2152"]))
    psc = lab.bearer(PSC_UE)
    mine = [f for f in frames if f.is_gpdu and f.inner_src == psc.ue_address]
    assert mine
    assert {f.qfi for f in mine} == {psc.qfi}
    others = [f for f in frames if f.is_gpdu and f.inner_src != psc.ue_address]
    assert others
    assert {f.qfi for f in others} == {None}


def test_echo_request_and_response(lab: Lab, s1_capture: Callable[..., Capture]) -> None:
    cap = s1_capture(lab, "sgw", ["udp", "port", "2152"])
    pairs = [(enb, sgw) for enb in lab.enbs.values() for sgw in lab.sgws.values()]

    def echoed() -> bool:
        frames = dissect_pcap(cap.path)  # tcpdump -U: written as captured
        return all(
            any(f.gtp_type == 1 and (f.src, f.dst) == pair for f in frames)
            and any(f.gtp_type == 2 and (f.src, f.dst) == pair[::-1] for f in frames)
            for pair in pairs
        )

    def counted() -> bool:  # the nodes write their counters to a file now and then
        return (
            _stats(lab, "enb1")["echo_response_rx"] > 0
            and _stats(lab, "sgw2")["echo_request_rx"] > 0
        )

    with cap:
        wait_until(lambda: echoed() and counted(), timeout=20 * ECHO_INTERVAL)
    frames = dissect_pcap(cap.path)
    for enb in lab.enbs.values():
        for sgw in lab.sgws.values():
            assert any(f.gtp_type == 1 and (f.src, f.dst) == (enb, sgw) for f in frames)
            assert any(f.gtp_type == 2 and (f.src, f.dst) == (sgw, enb) for f in frames)
    assert _stats(lab, "enb1")["echo_response_rx"] > 0
    assert _stats(lab, "sgw2")["echo_request_rx"] > 0


@pytest.mark.parametrize(("sender", "receiver"), [("enb1", "sgw1"), ("sgw2", "enb2")])
def test_unknown_teid_gets_an_error_indication(
    lab: Lab, s1_capture: Callable[..., Capture], sender: str, receiver: str
) -> None:
    own = {**lab.enbs, **lab.sgws}
    bogus = 0xDEADBEEF
    before = _stats(lab, sender)["error_indication_rx"]

    def sock_in_sender() -> socket.socket:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((str(own[sender]), 0))
        return s

    cap = s1_capture(lab, "enb", ["udp", "port", "2152"])
    with cap:
        sock = call_in_netns(lab.ns(sender), sock_in_sender)
        with sock:
            inner = bytes(28)
            sock.sendto(encode_gpdu(bogus, inner), (str(own[receiver]), 2152))
        # the indication goes to port 2152 of the sender's address: its emulator counts it
        assert wait_until(lambda: _stats(lab, sender)["error_indication_rx"] > before)
    frames = dissect_pcap(cap.path)
    indications = [f for f in frames if f.gtp_type == 26]
    assert [(f.src, f.dst, f.error_teid) for f in indications] == [
        (own[receiver], own[sender], bogus)
    ]
    assert indications[0].dport == 2152


def test_non_gtp_traffic_crosses_s1(lab: Lab, s1_capture: Callable[..., Capture]) -> None:
    cap = s1_capture(lab, "sgw")
    with cap:
        lab.run("enb1", ["ip", "neigh", "flush", "dev", "s1"], check=True)
        _ping(lab, "ue1", lab.pdn_address)  # needs ARP for the SGW again
        assert wait_until(lambda: _stats(lab, "enb2")["mme_rx"] > 0)
        before = _stats(lab, "enb2")["mme_rx"]
        assert wait_until(lambda: _stats(lab, "enb2")["mme_rx"] > before, timeout=30)
        # the node counts before tcpdump writes: wait for the capture itself (tcpdump -U)
        peers = {lab.enbs["enb2"], lab.mmes["mme2"]}
        wait_until(lambda: _mme_sources(dissect_pcap(cap.path)) >= peers, timeout=10)
    frames = dissect_pcap(cap.path)
    assert any(f.ethertype == ETHERTYPE_ARP for f in frames)
    assert _mme_sources(frames) >= {lab.enbs["enb2"], lab.mmes["mme2"]}


def _mme_sources(frames: list[S1Frame]) -> set[IPv4Address | None]:
    """Sources of the S1-AP-like TCP segments (port 36412) in ``frames``."""
    return {f.src for f in frames if f.proto == 6 and 36412 in (f.sport, f.dport)}


def test_status_tables_render(lab: Lab) -> None:
    console = Console(record=True, width=160)
    console.print(render(lab))
    console.print(live_table(lab))
    text = console.export_text()
    for b in lab.bearers:
        assert b.ue in text
    assert f"{lab.bearer('ue1').ul_teid:#x}" in text
    assert "s1enb" in text
    assert "QFI 9" in text


def test_full_size_packets_cross_unfragmented(lab: Lab, s1_capture: Callable[..., Capture]) -> None:
    payload = lab.config.ue_pool.mtu - 28  # ICMP + IPv4 headers
    cap = s1_capture(lab, "enb", ["udp", "port", "2152"])
    with cap:
        for ue in ("ue1", "ue4"):  # ue4 also carries a PDU Session Container
            result = lab.run(
                ue,
                [
                    "ping",
                    "-c",
                    "1",
                    "-W",
                    "2",
                    "-M",
                    "do",
                    "-s",
                    str(payload),
                    str(lab.pdn_address),
                ],
            )
            assert result.returncode == 0, result.stdout + result.stderr
    frames = dissect_pcap(cap.path)
    assert len([f for f in frames if f.is_gpdu]) >= 4  # both ways, both UEs: all decode whole


def test_ordinary_tools_work_from_a_ue(lab: Lab) -> None:
    server = subprocess.Popen(
        lab.argv("pdn", ["iperf3", "-s", "-1", "-p", "5201"]),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        listening = ["ss", "-Hltn", "sport = :5201"]
        assert wait_until(lambda: bool(lab.run("pdn", listening).stdout.strip()), timeout=10)
        result = lab.run("ue3", ["iperf3", "-c", str(lab.pdn_address), "-t", "1", "-J"], timeout=20)
        assert result.returncode == 0, result.stdout[-500:]
        received = json.loads(result.stdout)["end"]["sum_received"]["bytes"]
        assert received > 100_000
    finally:
        if server.poll() is None:
            server.kill()
        server.wait()


def test_dual_stack_ues_reach_the_pdn_over_ipv6(
    lab: Lab, s1_capture: Callable[..., Capture]
) -> None:
    pdn6 = lab.pdn_address6
    assert pdn6 is not None
    assert len(lab.ues6) == len(lab.ues)
    cap = s1_capture(lab, "enb", ["udp", "port", "2152"])
    with cap:
        for ue, six in lab.ues6.items():
            ping = lab.run(ue, ["ping", "-6", "-c", "1", "-W", "2", str(pdn6)])
            assert ping.returncode == 0, ping.stdout + ping.stderr
            page = lab.run(ue, ["curl", "-s", "-m", "5", f"http://[{pdn6}]/{ue}"])
            assert f"client {six} path /{ue}" in page.stdout
    frames = [f for f in dissect_pcap(cap.path) if f.is_gpdu]
    for b in lab.bearers:
        up = [f for f in frames if f.inner_src == b.ue_address6 and f.inner_dst == pdn6]
        down = [f for f in frames if f.inner_dst == b.ue_address6 and f.inner_src == pdn6]
        assert {(f.src, f.dst, f.teid) for f in up} == {(b.enb_address, b.sgw_address, b.ul_teid)}
        assert {(f.src, f.dst, f.teid) for f in down} == {(b.sgw_address, b.enb_address, b.dl_teid)}
    # the S1 segment itself carries no IPv6 (outer headers are IPv4)
    everything = s1_capture(lab, "sgw", ["ip6"])
    with everything:
        lab.run("ue2", ["ping", "-6", "-c", "1", "-W", "2", str(pdn6)])
    assert dissect_pcap(everything.path) == []
