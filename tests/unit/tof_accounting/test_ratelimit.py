"""Per-UE rate limits in the pure pipeline: the bucket's arithmetic, the config's bounds, and
the pipeline dropping (and counting per UE) what exceeds a UE's rate, other UEs untouched."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.unit.tof.test_pipeline import (
    APP,
    ENB1,
    PDN,
    SERVICE,
    SGW1,
    SVC_IP,
    UE1,
    UE2,
    gpdu,
    udp_packet,
)

from fluidedge.tof.accounting.ratelimit import BURST_MIN, Bucket, RateLimitConfig, ServiceLimit
from fluidedge.tof.config import parse_tof_config
from fluidedge.tof.errors import TofConfigError
from fluidedge.tof.metrics import render
from fluidedge.tof.pipeline import APPS, ENB, SGW, Pipeline

RATE = 100_000  # bytes/s


def limited(**limit: object) -> Pipeline:
    config = parse_tof_config(
        {"backend": "none", "ratelimit": {"services": {"web": {"burst": 0.1, **limit}}}}
    )
    p = Pipeline(config)
    p.set_services({"web": SERVICE})
    return p


def learn(p: Pipeline, ue: bytes, teid: int) -> None:
    p.from_s1(gpdu(SGW1, ENB1, teid + 0x100, udp_packet(PDN, ue, 53, 1), uplink=False), SGW, 0.5)


def up(p: Pipeline, ue: bytes, teid: int, now: float, size: int = 1000) -> bool:
    packet = udp_packet(ue, SVC_IP, 40000, 8080, bytes(size - 28))
    out = p.from_s1(gpdu(ENB1, SGW1, teid, packet), ENB, now)
    return [port for port, _ in out] == [APPS]


def test_bucket_passes_burst_then_rate_and_refuses_without_taking() -> None:
    b = Bucket(10_000, now=0.0)
    assert sum(b.take(1000, 0.0, RATE, 10_000) for _ in range(20)) == 10
    assert not b.take(1000, 0.005, RATE, 10_000)  # 500 bytes there: refused, nothing taken
    assert b.take(1000, 0.010, RATE, 10_000)  # 1000 now
    assert b.take(1000, 1e9, RATE, 10_000)  # idle for years: full, not more
    assert b.tokens == 9000
    assert b.take(1000, 0.5, RATE, 10_000)  # the clock going back refills nothing
    assert b.tokens == 8000


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 0.05), st.integers(40, 1500)), max_size=300))
def test_bucket_never_passes_more_than_burst_plus_rate_times_time(
    steps: list[tuple[float, int]],
) -> None:
    b = Bucket(5000, now=0.0)
    now, passed = 0.0, 0
    for gap, size in steps:
        now += gap
        passed += size if b.take(size, now, RATE, 5000) else 0
    assert passed <= 5000 + RATE * now + 1e-6


def test_limits_in_bytes_and_the_burst_floor() -> None:
    lim = ServiceLimit(uplink=8_000_000, burst=0.5)
    assert (lim.rate_bytes("uplink"), lim.burst_bytes("uplink")) == (1_000_000, 500_000)
    assert (lim.rate_bytes("downlink"), lim.burst_bytes("downlink")) == (0, 0)
    assert ServiceLimit(downlink=8_000, burst=0.01).burst_bytes("downlink") == BURST_MIN


@pytest.mark.parametrize(
    ("table", "why"),
    [
        ({"services": {"web": {"uplink": 100}}}, "greater than or equal"),  # below 8 kbit/s
        ({"services": {"web": {"uplink": 8 * 2**32}}}, "less than or equal"),  # u32 bytes/s
        ({"services": {"web": {"burst": 0}}}, "greater than"),
        ({"services": {"bad name": {"uplink": 10_000}}}, "invalid service name"),
        ({"services": {"web": {"uplnk": 10_000}}}, "Extra inputs"),
    ],
)
def test_bad_tables_are_refused_with_the_reason(table: dict[str, object], why: str) -> None:
    with pytest.raises(TofConfigError, match=why):
        parse_tof_config({"backend": "none", "ratelimit": table})


def test_no_limit_costs_nothing() -> None:
    assert Pipeline(parse_tof_config({"backend": "none"})).ratelimit is None
    assert RateLimitConfig(services={"web": ServiceLimit()}).services  # declared, no rate
    p = Pipeline(
        parse_tof_config({"backend": "none", "ratelimit": {"services": {"web": {"burst": 1}}}})
    )
    assert p.ratelimit is None  # no direction limited: no per-packet test


def test_uplink_over_the_rate_is_dropped_and_counted_per_ue() -> None:
    p = limited(uplink=RATE * 8)  # burst 0.1 s = 10 kB
    learn(p, UE1, 0x100)
    learn(p, UE2, 0x300)
    # 1 s at 100 packets of 1000 bytes every 10 ms for UE1 (1x the rate + the burst), and
    # UE2 a packet every 20 ms: UE1 gets burst + rate, UE2 everything.
    passed = {UE1: 0, UE2: 0}
    for i in range(300):
        now = 1.0 + i * 0.005  # UE1 at 200 kB/s: twice its rate
        passed[UE1] += up(p, UE1, 0x100, now)
        if i % 4 == 0:
            passed[UE2] += up(p, UE2, 0x300, now)
    elapsed = 299 * 0.005
    assert passed[UE2] == 75
    assert 10 + int(RATE * elapsed / 1000) - 1 <= passed[UE1] <= 10 + int(RATE * elapsed / 1000)
    dropped = 300 - passed[UE1]
    assert p.drops["rate_limited_uplink"] == dropped
    rows = p.ratelimit.rows() if p.ratelimit else []
    assert rows == [
        {
            "ue": "198.18.100.1",
            "service": "web",
            "uplink": {"droppedPackets": dropped, "droppedBytes": dropped * 1000},
            "downlink": {"droppedPackets": 0, "droppedBytes": 0},
        }
    ]
    assert p.ratelimit is not None
    assert p.ratelimit.rows(UE2) == []
    # Dropped packets were not offloaded: the service counters and the bearer say so.
    assert p.service_counters["web"].up_packets == passed[UE1] + passed[UE2]
    stats = p.stats()
    assert stats["rateLimited"] == {
        "web": {"upPackets": dropped, "upBytes": dropped * 1000, "downPackets": 0, "downBytes": 0}
    }
    text = render(stats, [])
    assert (
        f'fluidedge_tof_rate_limited_packets_total{{service="web",direction="up"}} {dropped}'
        in text
    )


def test_downlink_is_limited_per_ue_and_uplink_left_alone() -> None:
    p = limited(downlink=RATE * 8)
    learn(p, UE1, 0x100)
    assert up(p, UE1, 0x100, 1.0)  # the flow; the uplink is not limited
    sent = 0
    for i in range(40):  # 40 kB at once: the 10 kB burst passes
        out = p.from_apps(udp_packet(APP, UE1, 8080, 40000, bytes(1000 - 28)), 1.0 + i * 1e-6)
        sent += [port for port, _ in out] == [ENB]
    assert sent == 10
    assert p.drops["rate_limited_downlink"] == 30
    assert all(up(p, UE1, 0x100, 1.0) for _ in range(50))
    # Half a second later, 50 kB more are allowed (the bucket holds at most 10 kB).
    out = p.from_apps(udp_packet(APP, UE1, 8080, 40000, bytes(1000 - 28)), 1.5)
    assert [port for port, _ in out] == [ENB]


def test_a_purge_refills_the_buckets_and_keeps_the_drop_counts() -> None:
    p = limited(uplink=RATE * 8)
    learn(p, UE1, 0x100)
    results = [up(p, UE1, 0x100, 1.0) for _ in range(15)]
    assert results.count(False) == 5
    p.purge_all(1.0)
    learn(p, UE1, 0x100)
    assert all(up(p, UE1, 0x100, 1.0) for _ in range(10))  # a fresh, full bucket
    assert p.ratelimit is not None
    assert p.ratelimit.rows()[0]["uplink"] == {"droppedPackets": 5, "droppedBytes": 5000}


def test_a_ues_own_limits_override_the_services() -> None:
    """``ues`` overrides: keys left out are the service's, 0 is "not limited"; a UE of a
    service without a limit of its own can still be limited."""
    lim = ServiceLimit(
        uplink=RATE * 8,
        downlink=RATE * 8,
        ues={"198.18.100.2": {"uplink": 2 * RATE * 8, "downlink": 0, "burst": 0.2}},  # type: ignore[dict-item]
    )
    own = lim.for_ue("198.18.100.2")
    assert (own.rate_bytes("uplink"), own.burst_bytes("uplink")) == (2 * RATE, 2 * RATE // 5)
    assert own.rate_bytes("downlink") == 0
    assert lim.for_ue("198.18.100.1") is lim
    p = limited(uplink=RATE * 8, ues={"198.18.100.2": {"uplink": 2 * RATE * 8}})
    learn(p, UE1, 0x100)
    learn(p, UE2, 0x300)
    passed = {UE1: 0, UE2: 0}
    for i in range(200):  # 1 s, each UE at 200 kB/s
        now = 1.0 + i * 0.005
        passed[UE1] += up(p, UE1, 0x100, now)
        passed[UE2] += up(p, UE2, 0x300, now)
    assert 105 <= passed[UE1] <= 110  # burst 10 kB + 100 kB/s
    assert passed[UE2] == 200  # its own 200 kB/s: everything
    only = limited(ues={"198.18.100.1": {"uplink": RATE * 8}})  # no service-wide limit
    learn(only, UE1, 0x100)
    learn(only, UE2, 0x300)
    got = {UE1: 0, UE2: 0}
    for i in range(200):
        now = 1.0 + i * 0.005
        got[UE1] += up(only, UE1, 0x100, now)
        got[UE2] += up(only, UE2, 0x300, now)
    assert 105 <= got[UE1] <= 110
    assert got[UE2] == 200


@pytest.mark.parametrize(
    ("ues", "why"),
    [
        ({"198.18.100.01": {}}, "not a UE address"),
        ({"198.18.100.1": {"uplink": 100}}, "0 \\(not limited\\) or"),
        ({"198.18.100.1": {"burst": 0}}, "greater than"),
        ({"198.18.100.1": {"up": 8000}}, "Extra inputs"),
        ({"fd00::1": {}, "fd00:0::1": {}}, "given twice"),
    ],
)
def test_bad_ue_overrides_are_refused(ues: dict[str, object], why: str) -> None:
    table = {"services": {"web": {"uplink": 10_000, "ues": ues}}}
    with pytest.raises(TofConfigError, match=why):
        parse_tof_config({"backend": "none", "ratelimit": table})
