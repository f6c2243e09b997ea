"""The message analyzer on a capture this test records itself (tcpdump on lo, daemon's port).

The bound is one a wrong breakdown cannot meet, not a speed: for every request after the first
one the daemon serves, the wire's server time (last request byte -> first response byte) minus
the daemon's own total is at least -0.5 ms (the daemon never counts more than the wire saw),
and on each path (warm, cold) the smallest one is below the smallest cold ``shell`` phase of
this same run. A daemon that left a phase out of its breakdown (a cold shell alone is 40-150 ms)
fails it, since a missing phase shows in every request of its path; one request that a loaded
machine stalled outside the handler (GIL, event loop, GC: seen at 74 ms in CI) does not. How
small the difference is (typically 1-2 ms: HTTP parsing, validation, JSON encoding, thread
hand-off) is a figure, printed with ``-s``, not something this test promises.
"""

from __future__ import annotations

import io
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from rich.console import Console

from fluidedge.measure import analyze, analyzer, capture
from fluidedge.measure.errors import CaptureError
from tests.fixtures.daemon import DaemonHandle, wait_pools
from tests.fixtures.wait import wait_until

pytestmark = pytest.mark.root


def _start_tcpdump(port: int, path: Path) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [
            "tcpdump",
            "-i",
            "lo",
            "-U",
            "-B",
            "8192",
            "-s",
            "0",
            "-n",
            "-w",
            str(path),
            f"tcp port {port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None
    line = process.stderr.readline()  # "listening on lo, ..." once the capture is armed
    assert "listening" in line, line
    return process


def _wait_for_answers(path: Path, port: int, expected: int, timeout: float) -> bool:
    """Whether the capture file held ``expected`` answered requests within ``timeout``."""

    def answers() -> bool:
        try:
            packets = capture.read_capture(path.read_bytes())
        except (OSError, CaptureError):  # not flushed yet, or cut mid-record
            return False
        exchanges = analyzer.exchanges(
            analyzer.reassemble(capture.tcp_segments(packets, port), port)
        )
        answered = [e for e in exchanges if e.status is not None]
        return len(analyzer.instantiations(answered)) >= expected

    return wait_until(answers, timeout, period=0.2)


def test_analyzer_agrees_with_daemon(instances_daemon: DaemonHandle, tmp_path: Path) -> None:
    pcap_path = tmp_path / "api.pcap"
    warmup = instances_daemon.client()
    # Warm-up, not captured: the daemon's first POST pays ~25 ms of lazy initialisation before
    # its timer starts (seen by this very analyzer); the tolerance is for steady state.
    warmup.post("/v1/instances", {"name": "an-warmup", "template": "idle"})
    warmup.delete("/v1/instances/an-warmup")
    warmup.close()
    tcpdump = _start_tcpdump(instances_daemon.port, pcap_path)
    client = instances_daemon.client()  # a fresh connection: the capture sees its SYN
    created: list[tuple[str, dict[str, object], float]] = []
    try:
        for index, cold in enumerate([False, False, False, True, True]):
            name = f"an{index}-{'c' if cold else 'w'}"
            started = time.perf_counter()
            view = client.post("/v1/instances", {"name": name, "template": "idle", "cold": cold})
            created.append((name, view, (time.perf_counter() - started) * 1000))
            client.delete(f"/v1/instances/{name}")
            # the pool refilled (the next warm request finds a shell; requests stay apart)
            wait_pools(lambda: list(client.get("/v1/pools")), 60)
    finally:
        client.close()
        # tcpdump may lag behind on a loaded machine, and drops what it has not read when
        # interrupted: stop it only once the file holds every answer (or after 15 s; the
        # asserts below then say what is missing, with tcpdump's report).
        _wait_for_answers(pcap_path, instances_daemon.port, len(created), timeout=15.0)
        tcpdump.send_signal(signal.SIGINT)
        try:
            tcpdump.wait(timeout=10)
        except subprocess.TimeoutExpired:
            tcpdump.kill()
            tcpdump.wait()
        tcpdump_report = tcpdump.stderr.read() if tcpdump.stderr is not None else ""
        if tcpdump.stderr is not None:
            tcpdump.stderr.close()

    # A missing phase would be at least this big (the smallest cold shell of this run).
    bound = min(float(view["timing"]["shell"]) for _, view, _ in created if view["path"] == "cold")
    items, check = analyze.run_analyze(
        pcap_path,
        api_port=instances_daemon.port,
        tolerance_ms=bound,
        console=Console(file=io.StringIO(), width=150),
    )
    seen = [(i.name, i.status, i.wire_ms) for i in items]
    assert [i.name for i in items] == [name for name, _, _ in created], (seen, tcpdump_report)
    assert [i.status for i in items] == [201] * 5, (seen, tcpdump_report)
    assert [i.path for i in items] == ["warm"] * 3 + ["cold"] * 2
    for item, (_, view, client_ms) in zip(items, created, strict=True):
        timing = view["timing"]
        assert isinstance(timing, dict)
        assert item.daemon_total_ms == timing["total"]
        assert item.daemon_phases_ms["shell"] == timing["shell"]
        assert item.wire_ms is not None
        assert item.server_ms is not None
        # the wire sees less than the client (which adds its own stack) and more than the daemon
        assert item.server_ms <= item.wire_ms <= client_ms + 1.0
        assert item.difference_ms is not None
        assert item.difference_ms >= -0.5, (item, bound)
    for path in ("warm", "cold"):
        smallest = min(i.difference_ms or 0.0 for i in items if i.path == path)
        assert smallest <= bound, (path, smallest, bound, items)
    differences = sorted(i.difference_ms for i in items if i.difference_ms is not None)
    over = sum(1 for d in differences if d > bound)
    assert check.compared == 5
    assert check.within == 5 - over, (check, differences, bound)
    print(f"wire - daemon differences (ms): {differences}; bound {bound:.1f} ms")  # -s: figures
    tolerance = max(bound, differences[-1] + 1.0)  # the CLI's verdict on the same capture

    # the CLI: same verdict, exit 0 with --strict, and a run directory with one row per request
    result = subprocess.run(
        [sys.executable, "-m", "fluidedge", "analyze", str(pcap_path),
         "--api-port", str(instances_daemon.port), "--tolerance-ms", str(tolerance),
         "--strict", "--save", "--runs-dir", str(tmp_path / "runs")],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "agree on 5/5" in result.stdout
    (run_dir,) = (tmp_path / "runs").iterdir()
    results = json.loads((run_dir / "results.json").read_text())
    assert len(results["requests"]) == 5
    assert results["cross_check"]["agrees"] is True
