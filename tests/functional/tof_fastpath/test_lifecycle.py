"""Start/stop leave nothing behind (fail_open = false); a restart after kill -9 replaces the old
program cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest

from fluidedge.linux.proc import run
from fluidedge.tof.fastpath.backend import FastPathBackend
from fluidedge.tof.models import Service

from .scenario import ENB1, PDN, SVC, UE1, config, inner_udp, up
from .topo import APP_IP, Topo, topology

pytestmark = pytest.mark.root


def _filters(t: Topo, dev: str) -> list[str]:
    out = run(["ip", "netns", "exec", t.host, "tc", "filter", "show", "dev", dev, "ingress"])
    return [line for line in out.stdout.splitlines() if " bpf " in line and " handle " in line]


def _links(t: Topo) -> set[str]:
    out = run(["ip", "-n", t.host, "-o", "link", "show"]).stdout
    return {line.split(":")[1].strip().split("@")[0] for line in out.splitlines()}


def _passes_uplink(t: Topo, teid: int) -> int:
    frame = up(ENB1, teid, inner_udp(UE1, PDN, 40000, 53, b"q"))
    for _ in range(3):
        t.send("enb", frame)
    return sum(1 for f in t.collect(0.3)["sgw"] if f == frame)


def test_stop_removes_programs_punt_ports_and_tun() -> None:
    with topology("l") as t:
        backend = FastPathBackend(config(t).model_copy(update={"fail_open": False}))
        backend.start()
        try:
            assert len(_filters(t, "s1enb")) == 1
            assert {"tofappspu0", "tofappspu1", "tofapps"} <= _links(t)
            assert _passes_uplink(t, 0x100) == 3
        finally:
            backend.stop()
        assert _filters(t, "s1enb") == []
        assert _filters(t, "s1sgw") == []
        assert not {"tofappspu0", "tofappspu1", "tofapps"} & _links(t)


def test_restart_after_kill_9_replaces_program_and_maps() -> None:
    with topology("k") as t:
        code = textwrap.dedent(
            f"""
            import time
            from fluidedge.tof.config import TofConfig
            from fluidedge.tof.fastpath.backend import FastPathBackend
            b = FastPathBackend(TofConfig(netns={t.host!r}, pinger_target="198.18.200.10"))
            b.start()
            print("ready", flush=True)
            time.sleep(120)  # alive until the test kills it (-9): not a synchronisation
            """
        )
        proc = subprocess.Popen(
            [sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=dict(os.environ)
        )
        try:
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == "ready"
            assert _passes_uplink(t, 0x100) == 3  # learned by the first agent
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
            if proc.stdout is not None:
                proc.stdout.close()
        # The dead agent's program switches everything, the tunnel it had learned and others.
        assert _passes_uplink(t, 0x100) == 3
        assert _passes_uplink(t, 0x777) == 3
        backend = FastPathBackend(config(t))
        backend.start()
        try:
            assert len(_filters(t, "s1enb")) == 1  # replaced, not stacked
            assert len(_filters(t, "s1sgw")) == 1
            # Fresh maps: nothing learned yet, and the service comes from apply() (the store).
            assert backend.tunnels() == []
            backend.apply({"web": Service("web", SVC, APP_IP)})
            assert _passes_uplink(t, 0x100) == 3
            assert len(backend.tunnels()) == 1
            assert _passes_uplink(t, 0x100) == 3
            fast = backend.stats()["fastpath"]
            assert isinstance(fast, dict)
            assert fast["passthrough_uplink"] >= 1  # relearned, then forwarded in the kernel
        finally:
            backend.stop()
        assert len(_filters(t, "s1enb")) == 1  # fail-open: left attached, switching S1
        assert _passes_uplink(t, 0x777) == 3
