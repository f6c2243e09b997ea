"""Per-UE overrides of a service's rate limit (``[tof.ratelimit.services.NAME.ues."UE"]``),
with real traffic on both backends: UE1 gets the service's limit, UE2 its own (twice the
service's uplink, no downlink limit), both offered three times the service's limit."""

from __future__ import annotations

import ipaddress

import pytest

from fluidedge.tof.config import TofConfig

from . import test_rate_limit as rl
from .scenario import UE1, UE2, config
from .test_rate_limit import BURST, RATE, SIZE, _delivered
from .topo import Topo, topology

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
    with topology(f"ro{kind[0]}") as t, rl.two_ues(t, kind, _config(t)) as two:
        backend = two.backend
        sent = rl._paced(two.uplink)
        app = t.collect(0.5)["app"]
        got = {ue: _delivered(app, 14, ue, src=True) for ue in (UE1, UE2)}
        r1 = _rate(got[UE1], sent[UE1][1], RATE)
        r2 = _rate(got[UE2], sent[UE2][1], 2 * RATE)
        assert 0.9 * RATE <= r1 <= 1.1 * RATE, (r1, got, sent)
        assert 0.9 * 2 * RATE <= r2 <= 1.1 * 2 * RATE, (r2, got, sent)

        sent = rl._paced(two.downlink)
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
