"""Per-UE rate limits with real traffic, on both backends: a UE sending above its service's
limit gets the limit (measured delivered rate within 10%), its drops are counted per UE, and
another UE of the same service below the limit loses nothing (docs/accounting.md)."""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from fluidedge.codec.net import ipv4, udp
from fluidedge.linux.netns import call_in_netns
from fluidedge.tof.config import TofConfig
from fluidedge.tof.fastpath.backend import FastPathBackend
from fluidedge.tof.models import Service
from fluidedge.tof.userspace import UserspaceBackend

from .scenario import APP, APP_PORT, ENB1, ENB2, PDN, SVC, UE1, UE2, P, config, down, inner_udp, up
from .topo import APP_IP, Topo, topology

pytestmark = pytest.mark.root

RATE = 200_000  # bytes/s per UE and direction (1.6 Mbit/s)
BURST = 0.25  # s of the rate: 50 kB, more than a loaded machine's stall of the sender
SIZE = 1000  # inner IP bytes per packet
FAST_PPS, SLOW_PPS = 600, 50  # UE1 at 3x the limit, UE2 at a quarter of it
DURATION = 2.0
PORTS = {UE1: 41000, UE2: 42000}


def _config(t: Topo) -> TofConfig:
    limit = {"uplink": RATE * 8, "downlink": RATE * 8, "burst": BURST}
    return TofConfig.model_validate(
        {**config(t).model_dump(), "ratelimit": {"services": {"web": limit}}}
    )


def _paced(send: dict[bytes, Callable[[], object]]) -> dict[bytes, tuple[int, float]]:
    """Send for ``DURATION`` s, UE1 at FAST_PPS and UE2 at SLOW_PPS, on a schedule (a late
    sender catches up, so the offered rate holds); per UE: packets sent, its sending window."""
    rates = {UE1: FAST_PPS, UE2: SLOW_PPS}
    sent = dict.fromkeys(rates, 0)
    start = time.monotonic()
    first: dict[bytes, float] = {}
    last: dict[bytes, float] = {}
    while (now := time.monotonic()) - start < DURATION:
        for ue, pps in rates.items():
            while sent[ue] < (now - start) * pps + 1:
                send[ue]()
                sent[ue] += 1
                first.setdefault(ue, time.monotonic())
                last[ue] = time.monotonic()
        time.sleep(0.001)  # pacing the sender, not a synchronisation
    return {ue: (sent[ue], last[ue] - first[ue]) for ue in rates}


def _delivered(frames: list[bytes], at: int, ue: bytes, src: bool) -> tuple[int, int]:
    """Packets and inner bytes of ``ue`` among captured ``frames`` (inner IPv4 at ``at``)."""
    field = at + (12 if src else 16)
    mine = [f for f in frames if f[12:14] == b"\x08\x00" and f[field : field + 4] == ue]
    return len(mine), sum(int.from_bytes(f[at + 2 : at + 4], "big") for f in mine)


def _check(
    backend: UserspaceBackend | FastPathBackend,
    sent: dict[bytes, tuple[int, float]],
    got: dict[bytes, tuple[int, int]],
    direction: str,
) -> None:
    burst = RATE * BURST
    n1, window = sent[UE1]
    packets1, bytes1 = got[UE1]
    assert packets1 < n1  # over its limit: some packets dropped
    rate = (bytes1 - burst) / window  # what passed beyond the initial burst, per second
    assert 0.9 * RATE <= rate <= 1.1 * RATE, (rate, bytes1, window)
    assert got[UE2] == (sent[UE2][0], sent[UE2][0] * SIZE)  # below its limit: untouched
    rows = {r["ue"]: r for r in backend.rate_limited(None, None) or []}
    ue1: dict[str, Any] = rows[str(ipaddress.ip_address(UE1))]
    assert ue1["service"] == "web"
    assert ue1[direction] == {
        "droppedPackets": n1 - packets1,
        "droppedBytes": (n1 - packets1) * SIZE,
    }
    ue2: dict[str, Any] | None = rows.get(str(ipaddress.ip_address(UE2)))
    assert ue2 is None or ue2[direction]["droppedPackets"] == 0
    totals = backend.stats()["rateLimited"]
    assert isinstance(totals, dict)
    key = "up" if direction == "uplink" else "down"
    assert totals["web"][f"{key}Packets"] == n1 - packets1  # /metrics' totals


@dataclass
class TwoUes:
    """A started backend with two UEs of service ``web`` learned both ways: senders of each
    UE's uplink datagram to the service, and of the app's reply to each UE."""

    backend: UserspaceBackend | FastPathBackend
    uplink: dict[bytes, Callable[[], object]]
    downlink: dict[bytes, Callable[[], object]]


@contextlib.contextmanager
def two_ues(t: Topo, kind: str, cfg: TofConfig) -> Iterator[TwoUes]:
    backend = FastPathBackend(cfg) if kind == "fastpath" else UserspaceBackend(cfg)
    backend.start()
    app_sock = call_in_netns(t.app, lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
    raw = call_in_netns(
        t.app, lambda: socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    )
    try:
        app_sock.bind((APP_IP, APP_PORT))
        # Two UEs of one service, each bearer learned both ways (downlink TEID known).
        for ue, enb, ul, dl in ((UE1, ENB1, 0x100, 0x200), (UE2, ENB2, 0x301, 0x302)):
            t.send("enb", up(enb, ul, inner_udp(ue, PDN, 40000, 53, b"learn")))
            t.send("sgw", down(enb, dl, inner_udp(PDN, ue, 53, 40000, b"learn")))
        backend.apply({"web": Service("web", SVC, APP_IP)})
        t.collect(0.3)
        body = bytes(SIZE - 28)
        frames = {
            UE1: up(ENB1, 0x100, inner_udp(UE1, P(SVC), PORTS[UE1], APP_PORT, body)),
            UE2: up(ENB2, 0x301, inner_udp(UE2, P(SVC), PORTS[UE2], APP_PORT, body)),
        }

        def inject(frame: bytes) -> Callable[[], object]:
            return lambda: t.send("enb", frame)

        def reply(ue: bytes) -> Callable[[], object]:  # the app answers the UE's flow
            datagram = udp.encode(APP, ue, APP_PORT, PORTS[ue], body)
            packet = ipv4.encode(APP, ue, 17, datagram)
            return lambda: raw.sendto(packet, (str(ipaddress.ip_address(ue)), 0))

        yield TwoUes(
            backend,
            {ue: inject(f) for ue, f in frames.items()},
            {ue: reply(ue) for ue in (UE1, UE2)},
        )
    finally:
        app_sock.close()
        raw.close()
        backend.stop()


@pytest.mark.parametrize("kind", ["userspace", "fastpath"])
def test_a_ue_over_its_limit_gets_the_limit_and_another_is_unaffected(kind: str) -> None:
    with topology(f"rl{kind[0]}") as t, two_ues(t, kind, _config(t)) as two:
        backend = two.backend
        sent = _paced(two.uplink)
        app = t.collect(0.5)["app"]
        got = {ue: _delivered(app, 14, ue, src=True) for ue in (UE1, UE2)}
        _check(backend, sent, got, "uplink")

        # Downlink: the app answers both UEs' flows above / below the limit.
        sent = _paced(two.downlink)
        to_enb = t.collect(0.5)["enb"]
        got = {ue: _delivered(to_enb, 14 + 20 + 8 + 8, ue, src=False) for ue in (UE1, UE2)}
        _check(backend, sent, got, "downlink")
        if kind == "fastpath":
            fast = backend.stats()["fastpath"]
            assert isinstance(fast, dict)
            # The kernel enforced them (not the agent): its drop counters moved.
            assert fast["rate_limited_uplink"] > 0
            assert fast["rate_limited_downlink"] > 0
            assert fast["errors"] == 0
