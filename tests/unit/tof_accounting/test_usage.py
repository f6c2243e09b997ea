"""Per-UE usage records in the pure pipeline: counted per bearer and service, closed by the
triggers and by bearer events, with the bytes the offload actually carried."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
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

from fluidedge.tof.accounting import policy, readout
from fluidedge.tof.accounting.config import AccountingConfig, Triggers
from fluidedge.tof.accounting.usage import Accountant, UsageRecord
from fluidedge.tof.config import TofConfig, parse_tof_config
from fluidedge.tof.models import Service
from fluidedge.tof.pipeline import APPS, ENB, SGW, Bearer, Pipeline

SINK: dict[str, object] = {"jsonl": {}}


def open_rows(
    p: Pipeline, ue: str | None = None, service: str | None = None
) -> list[dict[str, object]]:
    """``GET /usage``'s open rows of ``p``'s accountant (its read-out, holds run inline)."""
    accountant = p.accounting
    assert accountant is not None
    packed = ipaddress.ip_address(ue).packed if ue is not None else None
    view = readout.usage_view(lambda call: call(accountant), packed, service)[0]
    assert view is not None
    rows = view["open"]
    assert isinstance(rows, list)
    return rows


def acct_pipeline(tof: dict[str, object] | None = None, **acct: object) -> Pipeline:
    accounting = {"enabled": True, **SINK, **acct}
    config = TofConfig(backend="none", accounting=accounting, **(tof or {}))  # type: ignore[arg-type]
    p = Pipeline(config)
    p.set_services({"web": SERVICE, "video": Service("video", "198.18.50.2", "198.19.0.11")})
    return p


def bearer_up(p: Pipeline, ue: bytes = UE1, teid: int = 0x100, now: float = 1.0) -> None:
    """Learn both directions of ``ue``'s bearer (a downlink G-PDU from the PDN, no Pinger)."""
    p.from_s1(gpdu(SGW1, ENB1, teid + 0x100, udp_packet(PDN, ue, 53, 1), uplink=False), SGW, now)


def send_up(p: Pipeline, body: bytes, now: float, ue: bytes = UE1, teid: int = 0x100) -> int:
    out = p.from_s1(gpdu(ENB1, SGW1, teid, udp_packet(ue, SVC_IP, 40000, 8080, body)), ENB, now)
    assert out[0][0] == APPS
    return len(out[0][1])


def reply(p: Pipeline, body: bytes, now: float, ue: bytes = UE1) -> int:
    packet = udp_packet(APP, ue, 8080, 40000, body)
    out = p.from_apps(packet, now)
    assert [port for port, _ in out] == [ENB]
    return len(packet)


def records(p: Pipeline) -> list[UsageRecord]:
    assert p.accounting is not None
    return p.accounting.drain()


def test_off_by_default_and_nothing_counted() -> None:
    p = Pipeline(TofConfig(backend="none"))
    assert p.accounting is None


def test_counts_up_and_down_bytes_per_bearer_and_service_and_closes_at_bearer_end() -> None:
    p = acct_pipeline(period=None)
    bearer_up(p)
    up = send_up(p, b"x" * 100, 2.0) + send_up(p, b"y" * 7, 2.5)
    down = reply(p, b"z" * 1000, 3.0)
    assert p.accounting is not None
    rows = open_rows(p)
    assert len(rows) == 1
    assert rows[0]["uplink"] == {"packets": 2, "bytes": up}
    assert rows[0]["downlink"] == {"packets": 1, "bytes": down}
    assert open_rows(p, ue="198.18.100.2") == []
    assert open_rows(p, service="video") == []
    # Nothing is reported before a trigger; the bearer's end closes the record.
    p.tick(4.0)
    assert records(p) == []
    p.purge_all(5.0)
    (rec,) = records(p)
    assert (rec.ue, rec.enb, rec.sgw) == ("198.18.100.1", "198.18.0.11", "198.18.0.21")
    assert (rec.uplink_teid, rec.downlink_teid) == (0x100, 0x200)
    assert (rec.service, rec.service_ip) == ("web", "198.18.50.1")
    assert (rec.uplink_packets, rec.uplink_bytes) == (2, up)
    assert (rec.downlink_packets, rec.downlink_bytes) == (1, down)
    assert (rec.first, rec.last, rec.closed) == (2.0, 3.0, 5.0)
    assert (rec.trigger, rec.reason) == (policy.BEARER_END, "purged")
    assert open_rows(p) == []


def test_two_services_two_records_and_non_offloaded_traffic_not_counted() -> None:
    p = acct_pipeline(period=None)
    bearer_up(p)
    send_up(p, b"a", 1.0)
    video = gpdu(ENB1, SGW1, 0x100, udp_packet(UE1, bytes([198, 18, 50, 2]), 1, 2, b"bb"))
    assert p.from_s1(video, ENB, 1.0)[0][0] == APPS
    to_pdn = gpdu(ENB1, SGW1, 0x100, udp_packet(UE1, PDN, 1, 53, b"not offloaded"))
    assert p.from_s1(to_pdn, ENB, 1.0)[0][0] == SGW
    p.purge_all(2.0)
    recs = records(p)
    assert sorted(r.service for r in recs) == ["video", "web"]
    assert all(r.uplink_packets == 1 for r in recs)


def test_volume_threshold_and_per_service_override() -> None:
    p = acct_pipeline(
        period=None, volume_threshold=10_000, services={"web": {"volume_threshold": 500}}
    )
    bearer_up(p)
    size = send_up(p, b"x" * 300, 1.0)
    p.tick(1.0)
    assert records(p) == []
    size += send_up(p, b"x" * 300, 1.5)
    p.tick(2.0)
    (rec,) = records(p)
    assert rec.trigger == policy.VOLUME
    assert rec.uplink_bytes == size
    # The next packet opens a new record with fresh counters.
    send_up(p, b"x", 3.0)
    assert p.accounting is not None
    assert open_rows(p)[0]["uplink"] == {"packets": 1, "bytes": 29}


def test_time_threshold() -> None:
    p = acct_pipeline(period=None, time_threshold=10)
    bearer_up(p)
    send_up(p, b"x", 100.0)
    p.tick(109.0)
    assert records(p) == []
    p.tick(110.5)
    (rec,) = records(p)
    assert rec.trigger == policy.TIME


def test_teid_replaced_closes_the_record_with_the_old_teids() -> None:
    p = acct_pipeline(period=None)
    bearer_up(p)
    send_up(p, b"x", 1.0)
    send_up(p, b"x", 2.0, teid=0x555)  # the SGW gave the bearer a new uplink TEID
    (rec,) = records(p)
    assert (rec.trigger, rec.uplink_teid, rec.uplink_packets) == (policy.TEID_REPLACED, 0x100, 1)
    p.purge_all(3.0)
    (rec,) = records(p)
    assert (rec.uplink_teid, rec.uplink_packets) == (0x555, 1)


def test_reused_teid_retires_the_old_ue_record() -> None:
    p = acct_pipeline(period=None)
    bearer_up(p)
    send_up(p, b"x", 1.0)
    send_up(p, b"x", 2.0, ue=UE2)  # TEID 0x100 re-used for another UE
    (rec,) = records(p)
    assert (rec.ue, rec.trigger, rec.reason) == (
        "198.18.100.1",
        policy.BEARER_END,
        "uplink_teid_reused",
    )


def test_idle_purge_closes_the_record() -> None:
    p = acct_pipeline(period=None)
    bearer_up(p)
    send_up(p, b"x", 1.0)
    p.tick(1.0)
    p.tick(400.0)
    (rec,) = records(p)
    assert (rec.trigger, rec.reason) == (policy.BEARER_END, "idle")


def test_queued_reply_is_counted_when_sent_not_when_dropped() -> None:
    p = acct_pipeline({"queue_timeout": 1.0}, period=None)
    send_up(p, b"x", 1.0)  # no downlink TEID yet: replies wait for the Pinger
    assert p.from_apps(udp_packet(APP, UE1, 8080, 40000, b"late"), 1.0) == []
    p.tick(5.0)  # timed out: never delivered
    assert p.accounting is not None
    assert open_rows(p)[0]["downlink"] == {"packets": 0, "bytes": 0}


def test_shutdown_closes_everything() -> None:
    p = acct_pipeline(period=None)
    bearer_up(p)
    bearer_up(p, UE2, 0x101)
    send_up(p, b"x", 1.0)
    send_up(p, b"x", 1.0, ue=UE2, teid=0x101)
    assert p.accounting is not None
    p.accounting.shutdown(2.0)
    assert sorted(r.ue for r in records(p)) == ["198.18.100.1", "198.18.100.2"]
    totals = readout.totals(lambda call: call(p.accounting))
    assert totals is not None
    assert totals["records"] == {policy.SHUTDOWN: 2}


@settings(max_examples=50, deadline=None)
@given(
    st.lists(
        st.tuples(st.booleans(), st.integers(0, 1200), st.floats(0, 5)), min_size=1, max_size=40
    ),
    st.integers(200, 5000),
)
def test_reported_plus_open_equals_offloaded(
    steps: list[tuple[bool, int, float]], volume: int
) -> None:
    """Whatever the triggers do, every offloaded byte is in exactly one record."""
    p = acct_pipeline(period=7, volume_threshold=volume, time_threshold=11)
    bearer_up(p, now=0.0)
    now, up, down = 0.0, send_up(p, b"open the flow", 0.0), 0
    for is_up, size, dt in steps:
        now += dt
        if is_up:
            up += send_up(p, bytes(size), now)
        else:
            down += reply(p, bytes(size), now)
        p.tick(now)
    assert p.accounting is not None
    reported = records(p)
    p.accounting.shutdown(now + 1)
    reported += records(p)
    assert sum(r.uplink_bytes for r in reported) == up
    assert sum(r.downlink_bytes for r in reported) == down
    assert all(r.first <= r.last <= r.closed for r in reported)


def test_policy_due() -> None:
    t = Triggers(volume_threshold=100, time_threshold=30, period=60)
    assert policy.due(t, 0.0, 99, 10.0) is None
    assert policy.due(t, 0.0, 100, 10.0) == policy.VOLUME
    assert policy.due(t, 0.0, 0, 30.0) == policy.TIME
    assert policy.due(Triggers(period=60), 59.0, 0, 60.0) == policy.PERIODIC  # a boundary
    assert policy.due(Triggers(period=60), 60.0, 0, 119.9) is None
    assert policy.due(Triggers(), 0.0, 10**12, 10**9) is None


def test_config_validation_and_merge() -> None:
    c = AccountingConfig(volume_threshold=5, period=60, services={"web": Triggers(period=10)})
    assert c.triggers_for("web").model_dump() == {
        "volume_threshold": 5,
        "time_threshold": None,
        "period": 10,
    }
    assert c.triggers_for("other").period == 60
    c2 = AccountingConfig(period=60, services={"web": Triggers(period=None)})
    assert c2.triggers_for("web").period is None  # a service may turn a global trigger off
    bads: list[dict[str, object]] = [
        {"enabled": True},  # no sink
        {"volume_threshold": 0},
        {"services": {"bad name!": {}}},
        {"ipfix": {"collector": "localhost:4739"}},  # names do not resolve here
        {"ipfix": {"collector": "127.0.0.1:0"}},
        {"ipfix": {"collector": "127.0.0.1:4739", "transport": "sctp"}},
        {"unknown": 1},
    ]
    for bad in bads:
        with pytest.raises(ValidationError):
            AccountingConfig.model_validate(bad)
    # Both backends account (the fast path's kernel counts per bearer and service).
    fast = parse_tof_config({"backend": "fastpath", "accounting": {"enabled": True, "jsonl": {}}})
    assert fast.accounting.enabled
    ipfix = AccountingConfig.model_validate({"ipfix": {"collector": "[::1]:4739"}}).ipfix
    assert ipfix is not None
    assert ipfix.address == ("::1", 4739)


def test_a_period_boundary_is_spread_over_ticks() -> None:
    acct = Accountant(AccountingConfig(period=60))
    acct.scan_budget, acct.close_budget = 1000, 400
    for i in range(2500):
        acct.open(Bearer(ENB1, SGW1, i.to_bytes(4, "big"), ul_teid=i), "web", SVC_IP, 1.0)
    ticks = 0
    while True:  # a round over every open record, 1000 a tick: nothing due
        assert acct.check(30.0 + ticks * 0.05) == 0
        ticks += 1
        if acct.next_check > 30.0 + ticks * 0.05:
            break
    assert ticks == 3
    assert acct.next_check == pytest.approx(30.1 + 1.0)
    closed = []
    now = 61.0
    while sum(closed) < 2500:
        n = acct.check(now)
        assert n <= 400
        closed.append(n)
        now += 0.05
    assert len(closed) == 7  # 2500 / 400, every tick closing what its budget allows
    assert len(acct.drain(limit=10**6)) == 2500
    assert not acct.active
