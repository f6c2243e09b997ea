"""Usage records of real offloaded UE traffic reach a real IPFIX collector (Debian's nfdump:
nfcapd), whose per-UE totals equal the bytes counted on captures of the offload's outputs; records
made while the collector is down arrive after it returns; a kill -9 marks the open records as
lost in the next records, a graceful restart reports them (issue 22)."""

from __future__ import annotations

import csv
import json
import os
import signal
import socket
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from fluidedge.codec.stack import IpGpdu, classify
from fluidedge.lab.capture import Capture
from fluidedge.lab.lab import Lab
from fluidedge.lab.packets import read_pcap
from fluidedge.tof.launch import s1_pairs, wait_s1_ready
from tests.e2e.tof.conftest import TofEnv, lab_config, start_tof, tear_down, tof_section
from tests.fixtures.daemon import DaemonFactory
from tests.fixtures.wait import wait_until

pytestmark = [pytest.mark.root, pytest.mark.slow]

SERVICE = {"name": "web", "serviceIP": "198.18.50.1", "applicationIP": "198.19.0.10"}
UES = ("ue1", "ue2", "ue3", "ue4")


class Nfcapd:
    """nfcapd on a loopback port of the root namespace, writing into ``directory``."""

    def __init__(self, directory: Path, port: int) -> None:
        self.dir, self.port = directory, port
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["nfcapd", "-b", "127.0.0.1", "-p", str(self.port), "-w", str(self.dir), "-t", "3600"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        assert wait_until(self.listening, timeout=30), "nfcapd does not listen"

    def listening(self) -> bool:
        out = subprocess.run(
            ["ss", "-Hlun", f"sport = :{self.port}"], capture_output=True, text=True, check=False
        ).stdout
        return bool(out.strip())

    def stop(self) -> None:
        """SIGTERM: nfcapd writes its file out and exits."""
        if self.process is not None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=30)
            self.process = None

    def per_ue(self) -> Counter[tuple[str, str]]:
        """Bytes per (UE, direction) as nfdump decodes the stored flows."""
        out = subprocess.run(
            ["nfdump", "-R", str(self.dir), "-o", "csv"], capture_output=True, text=True, check=True
        ).stdout
        lines = []
        for line in out.splitlines():
            if not line.strip() or line.startswith("Summary"):
                break
            lines.append(line)
        totals: Counter[tuple[str, str]] = Counter()
        for row in csv.DictReader(lines):
            if row["dir"] == "0":
                totals[(row["sa"], "up")] += int(row["ibyt"])
            else:
                totals[(row["da"], "down")] += int(row["ibyt"])
        return totals


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def captured_per_ue(
    apps_pcap: Path, enb_pcap: Path, ues: set[str], service_ip: str
) -> Counter[tuple[str, str]]:
    """Bytes per (UE, direction) the offload delivered, from captures of its two outputs:
    uplink, the packets it wrote into the apps TUN (raw IP, source = the UE); downlink, the
    G-PDUs it sent toward the eNBs whose inner source is the service IP (inner IP length)."""
    totals: Counter[tuple[str, str]] = Counter()
    for _, packet in read_pcap(apps_pcap):
        if len(packet) >= 20 and packet[0] >> 4 == 4:
            src = socket.inet_ntoa(packet[12:16])
            if src in ues:
                totals[(src, "up")] += len(packet)
    service = socket.inet_aton(service_ip)
    for _, frame in read_pcap(enb_pcap):
        c = classify(frame)
        if isinstance(c, IpGpdu) and c.inner_src == service:
            ue = socket.inet_ntoa(c.inner_dst)
            if ue in ues:
                totals[(ue, "down")] += c.inner_end - c.inner_offset
    return totals


@pytest.fixture
def lab_and_daemon(
    daemon_factory: DaemonFactory, tmp_path: Path
) -> Iterator[tuple[TofEnv, Nfcapd]]:
    collector = Nfcapd(tmp_path / "flows", free_udp_port())
    collector.dir.mkdir()
    lab = Lab.up(lab_config(), prefix=f"acct{os.getpid() % 100000}", mode="tof")
    envs: list[TofEnv] = []
    try:
        accounting = {
            "enabled": True,
            "period": 2,
            "ipfix": {"collector": f"127.0.0.1:{collector.port}"},
            "jsonl": {},
            "checkpoint_interval": 0.5,
        }
        envs.append(start_tof(lab, daemon_factory, tof_section(lab, accounting=accounting)))
        assert wait_s1_ready(envs[0].client(), s1_pairs(lab)), "no echo crossed the TOF"
        yield envs[0], collector
    finally:
        collector.stop()
        tear_down(envs, [lab])


def usage(env: TofEnv) -> dict[str, Any]:
    result: dict[str, Any] = env.client().get("/usage")
    return result


def all_reported(env: TofEnv) -> bool:
    """Every counted byte is in a closed record and every closed record went to the collector."""
    u = usage(env)
    closed = sum(u["totals"]["records"].values())
    sent = u["export"]["ipfix"].get("records", 0)
    return not u["open"] and u["totals"]["pending"] == 0 and sent == closed > 0


def spooled(env: TofEnv) -> bool:
    u = usage(env)
    return not u["open"] and u["totals"]["pending"] == 0 and u["export"]["spool"]["bytes"] > 0


def traffic(env: TofEnv, rounds: int) -> None:
    for _ in range(rounds):
        for ue in UES:
            assert "edge-app app1" in env.http(ue, SERVICE["serviceIP"]), ue


def test_collector_totals_equal_captured_bytes_and_survive_an_outage(
    lab_and_daemon: tuple[TofEnv, Nfcapd], tmp_path: Path
) -> None:
    env, collector = lab_and_daemon
    assert env.client().post("/service", SERVICE) == SERVICE
    ues = {str(env.lab.ues[ue]) for ue in UES}
    apps_pcap, enb_pcap = tmp_path / "apps.pcap", tmp_path / "enb.pcap"
    collector.start()
    host = env.lab.host_ns
    with Capture(host, "tofapps", apps_pcap), Capture(host, env.lab.enb_side_if, enb_pcap):
        traffic(env, 2)
        assert wait_until(lambda: all_reported(env), timeout=60), usage(env)
        collector.stop()  # the collector goes away ...
        traffic(env, 2)
        assert wait_until(lambda: spooled(env), timeout=60), usage(env)  # ... records wait
        collector.start()  # ... and comes back: the spool drains into it
        assert wait_until(lambda: all_reported(env), timeout=60), usage(env)
        assert usage(env)["export"]["spool"]["bytes"] == 0
        captured = captured_per_ue(apps_pcap, enb_pcap, ues, SERVICE["serviceIP"])
    collector.stop()
    received = collector.per_ue()
    assert captured  # real traffic crossed the offload, both ways
    assert {ue for ue, _ in captured} == ues
    assert received == captured, (received - captured, captured - received)
    # The daemon's own totals agree too (GET /usage, Prometheus source).
    web = usage(env)["totals"]["services"]["web"]
    assert web["upBytes"] == sum(v for (_, d), v in captured.items() if d == "up")
    assert web["downBytes"] == sum(v for (_, d), v in captured.items() if d == "down")


def jsonl(env: TofEnv) -> list[dict[str, Any]]:
    path = env.daemon.state_dir / "accounting" / "records" / "usage.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def marker_lists(env: TofEnv, ue: str) -> bool:
    path = env.daemon.state_dir / "accounting" / "open.json"
    try:
        return any(row["ue"] == ue for row in json.loads(path.read_text())["open"])
    except (OSError, ValueError):
        return False


def test_kill9_marks_open_records_lost_and_a_restart_reports_them(
    lab_and_daemon: tuple[TofEnv, Nfcapd],
) -> None:
    env, collector = lab_and_daemon
    collector.start()
    assert env.client().post("/service", SERVICE) == SERVICE
    ue1 = str(env.lab.ues["ue1"])
    ping = subprocess.Popen(
        env.lab.argv("ue1", ["ping", "-i", "0.2", "-s", "200", SERVICE["serviceIP"]]),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        # ue1's record is open and the marker says so: kill -9 now loses its counters.
        assert wait_until(lambda: marker_lists(env, ue1), timeout=30)
        env.daemon.kill9()
        started = time.time()
        env.daemon.start()
        assert wait_until(
            lambda: any(r["trigger"] == "lost" and r["ue"] == ue1 for r in jsonl(env)), timeout=30
        ), jsonl(env)
        lost = [r for r in jsonl(env) if r["trigger"] == "lost"]
        assert all(r["lost"] and r["uplink_bytes"] == 0 for r in lost)
        assert any(r["ue"] == "" for r in lost)  # the node-wide record for the unlisted window
        assert wait_until(lambda: bool(usage(env)["open"]), timeout=30)  # ue1 counts again
    finally:
        ping.kill()
        ping.wait()
    # A graceful restart reports everything this process counted (closed or still open at
    # the stop, then closed as "shutdown"): the records written since its start add up to its
    # totals, and no record is marked lost.
    assert wait_until(stable_totals(env), timeout=30, period=0.5)
    services = usage(env)["totals"]["services"]
    counted = sum(services["web"][k] for k in ("upBytes", "downBytes"))
    env.daemon.restart()
    rows = [r for r in jsonl(env) if r["closed"] >= started and r["trigger"] != "lost"]
    assert counted > 0
    assert sum(r["uplink_bytes"] + r["downlink_bytes"] for r in rows) == counted, rows
    assert [r for r in jsonl(env) if r["trigger"] == "lost"] == lost  # no new lost records


def stable_totals(env: TofEnv) -> Callable[[], bool]:
    """True once ``/usage`` totals are the same as at the previous call (traffic over)."""
    last: list[object] = []

    def check() -> bool:
        now = usage(env)["totals"]["services"]
        same = last == [now]
        last[:] = [now]
        return same

    return check
