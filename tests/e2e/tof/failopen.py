"""Fail-open under traffic (issue 10 §3), shared by the emulated and the osmo lab's e2e suites.

kill -9 of the daemon while UEs use the PDN and an offloaded service: while it is dead, every
G-PDU crosses the host unchanged (asserted on captures of both S1 interfaces), pings keep being
answered, the offloaded service falls back to the core path (the PDN answers its address), and
after a restart offload resumes.
"""

from __future__ import annotations

import re
import subprocess
import time
from collections import Counter
from pathlib import Path

from fluidedge.lab.capture import Capture
from fluidedge.lab.packets import dissect, read_pcap
from tests.e2e.tof.conftest import SERVICE_IP, TofEnv
from tests.fixtures.wait import wait_until

_REPLY = re.compile(r"^\[(\d+\.\d+)\] \d+ bytes from .* icmp_seq=(\d+)")


def _window(path: Path, start: float, end: float) -> Counter[bytes]:
    return Counter(f for t, f in read_pcap(path) if start <= t <= end and dissect(f).is_gpdu)


def _gpdus_since(path: Path, start: float) -> int:
    return sum(_window(path, start, time.time()).values())


def kill9_under_traffic(env: TofEnv, tmp_path: Path, ping_ue: str, service_ue: str) -> None:
    lab = env.lab
    pdn = str(lab.pdn_address)
    body = {"name": "web", "serviceIP": SERVICE_IP, "applicationIP": "198.19.0.10"}
    assert env.client().post("/service", body) == body
    assert "edge-app app1" in env.http(service_ue, SERVICE_IP)
    enb_pcap, sgw_pcap = tmp_path / "enb.pcap", tmp_path / "sgw.pcap"
    margin = 0.1  # frames in flight at the kill
    bpf = ["udp", "port", "2152"]
    with Capture(lab.host_ns, "s1enb", enb_pcap, bpf), Capture(lab.host_ns, "s1sgw", sgw_pcap, bpf):
        pinger = subprocess.Popen(
            lab.argv(ping_ue, ["ping", "-D", "-n", "-i", "0.05", "-w", "6", pdn]),
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        try:
            # the background ping is flowing through the TOF (tcpdump -U writes per packet)
            wait_until(lambda: _gpdus_since(enb_pcap, 0.0) >= 10, timeout=10)
            env.daemon.kill9()
            killed = time.time()
            # Dead daemon: the offloaded service falls back to the core path (the PDN answers
            # its address), and the PDN is reachable from every UE.
            answer = env.http(service_ue, SERVICE_IP)
            assert "pdn 198.18.200.10" in answer, answer
            for ue in lab.ues:
                assert env.ping(ue, pdn, count=2), ue
            # enough traffic crossed while dead (about 30 ping round trips), or ping has ended
            wait_until(
                lambda: _gpdus_since(enb_pcap, killed + margin) >= 60 or pinger.poll() is not None,
                timeout=10,
            )
            dead_until = time.time()
            env.daemon.start()
            assert wait_until(
                lambda: "edge-app app1" in env.http(service_ue, SERVICE_IP), timeout=10
            ), "offload did not resume after the restart"
            out, _ = pinger.communicate(timeout=30)
        finally:
            if pinger.poll() is None:
                pinger.kill()
                pinger.wait()
    # Every G-PDU seen on one side while the daemon was dead crossed to the other, unchanged.
    enb_side = _window(enb_pcap, killed + margin, dead_until)
    sgw_side = _window(sgw_pcap, killed + margin, dead_until)
    assert sum(enb_side.values()) >= 20, "too little traffic in the dead window"
    at_sgw, at_enb = _all(sgw_pcap), _all(enb_pcap)
    missing_up = [f for f in enb_side if f not in at_sgw]
    missing_down = [f for f in sgw_side if f not in at_enb]
    assert not missing_up, f"{len(missing_up)} uplink G-PDUs did not cross"
    assert not missing_down, f"{len(missing_down)} downlink G-PDUs did not cross"
    # The background ping was answered while the daemon was dead.
    replies = [float(m.group(1)) for m in map(_REPLY.match, out.splitlines()) if m]
    dead_replies = [t for t in replies if killed + margin <= t <= dead_until]
    assert len(dead_replies) >= 10, out[-500:]
    sent = int(re.search(r"(\d+) packets transmitted", out).group(1))  # type: ignore[union-attr]
    print(
        f"fail-open: {len(replies)}/{sent} pings answered ({sent - len(replies)} lost), "
        f"{len(dead_replies)} while dead ({dead_until - killed:.1f} s); "
        f"{sum(enb_side.values())} G-PDUs crossed while dead"
    )


def _all(path: Path) -> set[bytes]:
    return {f for _, f in read_pcap(path)}
