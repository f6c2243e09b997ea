"""Fail-open on both backends (docs/tof.md "Fail-open"): with the agent killed -9, stopped or
restarting, every S1 frame crosses unchanged, exactly once; offloaded flows fall back to the
core side instead of a hole; a new agent takes over without duplicating frames."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator

import pytest

from fluidedge.linux.proc import run
from fluidedge.tof.backend import create_backend
from fluidedge.tof.config import TofConfig
from fluidedge.tof.models import Service

from .scenario import ENB1, PDN, SVC, UE1, config, down, inner_udp, learn_bearer, up
from .topo import APP_IP, Topo, topology

pytestmark = pytest.mark.root

BACKENDS = ("userspace", "fastpath")


def _config(t: Topo, backend: str, **changes: object) -> TofConfig:
    return config(t).model_copy(update={"backend": backend, **changes})


def _filters(t: Topo, dev: str) -> int:
    out = run(["ip", "netns", "exec", t.host, "tc", "filter", "show", "dev", dev, "ingress"])
    return sum(1 for line in out.stdout.splitlines() if " bpf " in line and " handle " in line)


def _crossings(t: Topo, frames: dict[str, list[bytes]]) -> dict[str, int]:
    """Send each side's frames; count how many arrive unchanged on the other side."""
    for side, batch in frames.items():
        for frame in batch:
            t.send(side, frame)
    got = t.collect(0.3)
    other = {"enb": "sgw", "sgw": "enb"}
    return {
        side: sum(got[other[side]].count(f) for f in set(batch)) for side, batch in frames.items()
    }


def _mixed() -> dict[str, list[bytes]]:
    """Unknown tunnels both ways, a learned one, and a datagram to the service."""
    return {
        "enb": [
            up(ENB1, 0x100, inner_udp(UE1, PDN, 40000, 53, b"known")),
            up(ENB1, 0x5555, inner_udp(UE1, PDN, 40001, 53, b"unknown")),
            up(ENB1, 0x100, inner_udp(UE1, bytes([198, 18, 50, 1]), 41000, 7000, b"svc")),
        ],
        "sgw": [
            down(ENB1, 0x200, inner_udp(PDN, UE1, 53, 40000, b"known")),
            down(ENB1, 0x6666, inner_udp(PDN, UE1, 53, 40001, b"unknown")),
        ],
    }


@pytest.fixture
def agent() -> Iterator[object]:
    procs: list[subprocess.Popen[str]] = []

    def start(t: Topo, backend: str) -> subprocess.Popen[str]:
        code = textwrap.dedent(
            f"""
            import time
            from fluidedge.tof.backend import create_backend
            from fluidedge.tof.config import TofConfig
            from fluidedge.tof.models import Service
            b = create_backend(TofConfig(backend={backend!r}, netns={t.host!r},
                                         pinger_target="198.18.200.10"))
            b.start()
            b.apply({{"web": Service("web", {SVC!r}, {APP_IP!r})}})
            print("ready", flush=True)
            time.sleep(300)  # alive until the test kills it (-9): not a synchronisation
            """
        )
        proc = subprocess.Popen(
            [sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=dict(os.environ)
        )
        procs.append(proc)
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()


@pytest.mark.parametrize("backend", BACKENDS)
def test_kill_9_fails_open_and_a_new_agent_takes_over(agent: object, backend: str) -> None:
    with topology(f"o{backend[0]}") as t:
        proc = agent(t, backend)  # type: ignore[operator]
        learn_bearer(t)
        # The service datagram is offloaded while the agent lives: it never reaches the SGW.
        assert _crossings(t, _mixed()) == {"enb": 2, "sgw": 2}
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        # Dead agent: everything crosses once, the service datagram to the core side.
        assert _crossings(t, _mixed()) == {"enb": 3, "sgw": 2}
        assert _crossings(t, _mixed()) == {"enb": 3, "sgw": 2}
        # A new agent replaces the program (not stacked) and forwards without duplicates.
        new = create_backend(_config(t, backend))
        new.start()
        try:
            assert _filters(t, "s1enb") == 1
            assert _filters(t, "s1sgw") == 1
            new.apply({"web": Service("web", SVC, APP_IP)})
            learn_bearer(t)
            assert _crossings(t, _mixed()) == {"enb": 2, "sgw": 2}  # offloaded again
        finally:
            new.stop()
        # Stopped (fail_open default): the wire still works, the agent's ports are gone.
        assert _crossings(t, _mixed()) == {"enb": 3, "sgw": 2}
        links = run(["ip", "-n", t.host, "-o", "link", "show"]).stdout
        assert "tofapps" not in links


@pytest.mark.parametrize("backend", BACKENDS)
def test_fail_open_false_cuts_s1_after_stop(backend: str) -> None:
    with topology(f"c{backend[0]}") as t:
        b = create_backend(_config(t, backend, fail_open=False))
        b.start()
        try:
            assert _crossings(t, _mixed())["sgw"] == 2
        finally:
            b.stop()
        assert _filters(t, "s1enb") == 0
        assert _crossings(t, _mixed()) == {"enb": 0, "sgw": 0}


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
@pytest.mark.parametrize("backend", BACKENDS)
def test_dead_data_plane_thread_fails_open(backend: str) -> None:
    """A data-plane thread that dies (here: a BaseException the per-frame guards do not catch)
    closes the TUN, and the kernel program takes the wire."""
    with topology(f"t{backend[0]}") as t:
        b = create_backend(_config(t, backend))
        b.start()
        try:

            class Boom(BaseException):
                pass

            def explode(*_: object) -> list[object]:
                raise Boom

            b.pipeline.from_s1 = explode  # type: ignore[attr-defined,method-assign]
            t.send("enb", up(ENB1, 0x9999, inner_udp(UE1, PDN, 1, 2, b"boom")))
            t.collect(0.3)
            assert "Boom" in str(b.stats()["dataplane"])
            assert _crossings(t, _mixed()) == {"enb": 3, "sgw": 2}
        finally:
            b.stop()
