"""Per-UE overrides of a service's rate limit (``[tof.ratelimit.services.NAME.ues."UE"]``),
with real traffic on both backends: UE1 gets the service's limit, UE2 its own (twice the
service's uplink, no downlink limit), both offered three times the service's limit."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable

import pytest

from fluidedge.codec.net import ipv4, udp
from fluidedge.linux.netns import call_in_netns
from fluidedge.tof.config import TofConfig
from fluidedge.tof.fastpath.backend import FastPathBackend
from fluidedge.tof.models import Service
from fluidedge.tof.userspace import UserspaceBackend

from . import test_rate_limit as rl
from .scenario import APP, APP_PORT, ENB1, ENB2, PDN, SVC, UE1, UE2, P, config, down, inner_udp, up
from .test_rate_limit import BURST, PORTS, RATE, SIZE, _delivered
from .topo import APP_IP, Topo, topology

pytestmark = pytest.mark.root


def _config(t: Topo) -> TofConfig:
    limit = {
        "uplink": RATE * 8,
        "downlink": RATE * 8,
        "burst": BURST,
        "ues": {str(ipaddress.ip_address(UE2)): {"uplink": 2 * RATE * 8, "downlink": 0}},
    }
    return TofConfig.model_validate(
        {**config(t).model_dump(), "ratelimit": {"services": {"web": limit}}}
    )


def _rate(got: tuple[int, int], window: float, rate: int) -> float:
    return (got[1] - rate * BURST) / window


@pytest.mark.parametrize("kind", ["userspace", "fastpath"])
def test_a_ues_own_limit_replaces_the_services(kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rl, "SLOW_PPS", rl.FAST_PPS)  # both UEs at 3x the service's limit
    with topology(f"ro{kind[0]}") as t:
        cfg = _config(t)
        backend = FastPathBackend(cfg) if kind == "fastpath" else UserspaceBackend(cfg)
        backend.start()
        app_sock = call_in_netns(t.app, lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
        raw = call_in_netns(
            t.app, lambda: socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
        )
        try:
            app_sock.bind((APP_IP, APP_PORT))
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

            sent = rl._paced({ue: inject(f) for ue, f in frames.items()})
            app = t.collect(0.5)["app"]
            got = {ue: _delivered(app, 14, ue, src=True) for ue in (UE1, UE2)}
            r1 = _rate(got[UE1], sent[UE1][1], RATE)
            r2 = _rate(got[UE2], sent[UE2][1], 2 * RATE)
            assert 0.9 * RATE <= r1 <= 1.1 * RATE, (r1, got, sent)
            assert 0.9 * 2 * RATE <= r2 <= 1.1 * 2 * RATE, (r2, got, sent)

            def reply(ue: bytes) -> Callable[[], object]:
                datagram = udp.encode(APP, ue, APP_PORT, PORTS[ue], body)
                packet = ipv4.encode(APP, ue, 17, datagram)
                return lambda: raw.sendto(packet, (str(ipaddress.ip_address(ue)), 0))

            sent = rl._paced({ue: reply(ue) for ue in (UE1, UE2)})
            to_enb = t.collect(0.5)["enb"]
            got = {ue: _delivered(to_enb, 14 + 20 + 8 + 8, ue, src=False) for ue in (UE1, UE2)}
            r1 = _rate(got[UE1], sent[UE1][1], RATE)
            assert 0.9 * RATE <= r1 <= 1.1 * RATE, (r1, got, sent)
            assert got[UE2] == (sent[UE2][0], sent[UE2][0] * SIZE)  # 0: not limited
            if kind == "fastpath":
                fast = backend.stats()["fastpath"]
                assert isinstance(fast, dict)
                assert fast["rate_limited_uplink"] > 0  # enforced by the kernel
                assert fast["errors"] == 0
        finally:
            app_sock.close()
            raw.close()
            backend.stop()
