"""Lawful intercept on the lab, through the daemon's API, both TOF backends (issue 22): ue1,
ue2 and ue3 fetch the offloaded service over HTTP while ue1 is intercepted to a pcap file; the
pcap holds exactly ue1's offloaded packets, both directions (compared with an independent
capture of the S1 segment on the eNB side: every G-PDU of ue1 to and from the service), and
none of the others'; after the DELETE nothing more is written while ue1's traffic goes on."""

from __future__ import annotations

import os
import socket
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from fluidedge.codec.stack import IpGpdu, classify
from fluidedge.lab.capture import Capture
from fluidedge.lab.lab import Lab
from fluidedge.lab.packets import read_pcap as read_capture
from fluidedge.tof.intercept.model import read_pcap
from fluidedge.tof.launch import s1_pairs, wait_s1_ready
from tests.e2e.tof.conftest import TofEnv, lab_config, start_tof, tear_down, tof_section
from tests.fixtures.daemon import DaemonFactory

pytestmark = [pytest.mark.root, pytest.mark.slow]

SERVICE = {"name": "web", "serviceIP": "198.18.50.1", "applicationIP": "198.19.0.10"}


def key(packet: bytes) -> tuple[int, int, bytes]:
    """What NAT and MSS clamping leave alone: length, protocol, TCP sequence/ack/flags."""
    l4 = packet[(packet[0] & 15) * 4 :]
    return len(packet), packet[9], l4[4:14] if packet[9] == 6 else l4[4:8]


@pytest.fixture(params=["userspace", "fastpath"])
def env(request: pytest.FixtureRequest, daemon_factory: DaemonFactory) -> Iterator[TofEnv]:
    lab = Lab.up(lab_config(), prefix=f"li{os.getpid() % 100000}", mode="tof")
    envs: list[TofEnv] = []
    try:
        envs.append(start_tof(lab, daemon_factory, tof_section(lab, backend=request.param)))
        assert wait_s1_ready(envs[0].client(), s1_pairs(lab)), "no echo crossed the TOF"
        yield envs[0]
    finally:
        tear_down(envs, [lab])


def test_the_pcap_holds_exactly_ue1s_offloaded_packets(env: TofEnv, tmp_path: Path) -> None:
    client = env.client()
    assert client.post("/service", SERVICE) == SERVICE
    ue1 = socket.inet_aton(str(env.lab.ues["ue1"]))
    service = socket.inet_aton(SERVICE["serviceIP"])
    body = {
        "name": "case-1",
        "target": {"ue": str(env.lab.ues["ue1"])},
        "destination": {"pcap": "case-1.pcap"},
    }
    created = client.post("/v1/intercepts", body)
    pcap = Path(created["destination"]["pcap"])
    s1 = tmp_path / "s1.pcap"
    with Capture(env.lab.host_ns, env.lab.enb_side_if, s1):
        for _ in range(3):
            for ue in ("ue1", "ue2", "ue3"):
                assert "edge-app app1" in env.http(ue, SERVICE["serviceIP"]), ue
        row = client.get("/v1/intercepts/case-1")
        assert row["stats"]["dropped"] == 0
        client.delete("/v1/intercepts/case-1")
    size = pcap.stat().st_size
    assert "edge-app app1" in env.http("ue1", SERVICE["serviceIP"])  # the target goes on
    assert pcap.stat().st_size == size  # nothing after the stop
    expected: Counter[tuple[str, tuple[int, int, bytes]]] = Counter()
    for _, frame in read_capture(s1):
        c = classify(frame)
        if not isinstance(c, IpGpdu):
            continue
        inner = frame[c.inner_offset : c.inner_end]
        if c.inner_src == ue1 and c.inner_dst == service:
            expected[("up", key(inner))] += 1
        elif c.inner_src == service and c.inner_dst == ue1:
            expected[("down", key(inner))] += 1
    copied: Counter[tuple[str, tuple[int, int, bytes]]] = Counter()
    for _, packet in read_pcap(pcap.read_bytes()):
        if packet[12:16] == ue1:
            copied[("up", key(packet))] += 1
        else:
            assert packet[16:20] == ue1, packet[12:20].hex()  # nothing of another UE
            copied[("down", key(packet))] += 1
    assert sum(expected.values()) >= 3 * 8  # three TCP exchanges, both directions
    assert copied == expected, (copied - expected, expected - copied)
