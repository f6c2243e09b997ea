"""Bearer identity across re-attach and TEID reuse (issue 10 §1), on hand-built frames.

A tunnel key seen with another inner UE than its bearer's is a new bearer (the old one is
retired, with an event and a reason); a downlink TEID completes only the bearer of the UE its
inner destination names; Pinger replies complete only the bearer whose Pinger sent them and
never keep anything alive.
"""

from __future__ import annotations

import ipaddress

from tests.unit.tof.bearer_frames import (
    down_to,
    echo_reply,
    pinger_seq_of,
    rows,
    up_from,
)
from tests.unit.tof.test_pipeline import (
    APP,
    ENB1,
    ENB2,
    MAC_ENB,
    MAC_SGW,
    PDN,
    SERVICE,
    SGW1,
    SVC_IP,
    UE1,
    UE2,
    gpdu,
    inner_of,
    pipeline,
    udp_packet,
)

from fluidedge.codec.gtpu import UnknownExtension
from fluidedge.codec.stack import classify, encapsulate_gpdu, ethernet_frame
from fluidedge.tof.pipeline import APPS, ENB, SGW, Pipeline

UE1_6 = ipaddress.IPv6Address("2001:db8:100::1").packed


def attached(p: Pipeline, ue: bytes, ul: int, dl: int, now: float = 1.0) -> None:
    """UE ``ue`` attached on ENB1/SGW1 with uplink TEID ``ul`` and downlink TEID ``dl``."""
    p.from_s1(up_from(ENB1, SGW1, ul, ue), ENB, now)
    p.from_s1(down_to(SGW1, ENB1, dl, ue), SGW, now)


def events(p: Pipeline, event: str | None = None) -> list[dict[str, object]]:
    return [e for e in p.bearer_events() if event is None or e["event"] == event]


def service_pipeline(**kw: object) -> Pipeline:
    p = pipeline(pinger_interval=0.5, **kw)
    p.set_services({"web": SERVICE})
    return p


def test_reattach_new_ue_new_uplink_teid_reused_downlink_teid() -> None:
    """Variant 1 of the issue: UE1 (UL 2, DL 1) detaches; UE2 gets UL 3 and the reused DL 1."""
    p = service_pipeline()
    attached(p, UE1, ul=2, dl=1)
    # UE2 talks only to the service: offloaded, the Pinger starts through UL 3.
    out = p.from_s1(up_from(ENB1, SGW1, 3, UE2, dst=SVC_IP), ENB, 10.0)
    assert [port for port, _ in out] == [APPS, SGW]
    ping = out[1][1]
    assert inner_of(ping)[0][12:16] == UE2
    assert inner_of(ping)[1] == 3
    assert p.from_apps(udp_packet(APP, UE2, 8080, 4000, b"edge"), 10.05) == []  # queued
    # The GGSN answers the Pinger to UE2 through the reused DL TEID 1, which UE1's bearer held.
    reply = gpdu(SGW1, ENB1, 1, echo_reply(UE2, pinger_seq_of(ping)), uplink=False)
    out = p.from_s1(reply, SGW, 10.1)
    assert [port for port, _ in out] == [ENB]  # the queued app reply, not the echo reply
    inner, teid = inner_of(out[0][1])
    assert teid == 1
    assert inner[12:16] == SVC_IP
    assert inner[16:20] == UE2
    table = rows(p)
    assert set(table) == {"198.18.100.2"}
    assert (table["198.18.100.2"]["uplinkTEID"], table["198.18.100.2"]["downlinkTEID"]) == (3, 1)
    retired = events(p, "retired")
    assert len(retired) == 1
    assert retired[0]["reason"] == "downlink_teid_reused"
    assert retired[0]["ue"] == "198.18.100.1"
    assert retired[0]["replacedBy"] == "198.18.100.2"
    assert p.counters["bearers_retired_downlink_teid_reused"] == 1
    assert p.stats()["bearerEvents"]["retired"] == {"downlink_teid_reused": 1}  # type: ignore[index]
    # Offload works again at once: the next reply goes straight out, no Pinger.
    out = p.from_apps(udp_packet(APP, UE2, 8080, 4000, b"more"), 10.2)
    assert [port for port, _ in out] == [ENB]
    assert p.tick(11.0) == []


def test_reattach_both_teids_reused_new_ue() -> None:
    """Variant 2: UE2 gets both of UE1's TEIDs. UE2 is visible and credited, UE1 retired."""
    p = service_pipeline()
    attached(p, UE1, ul=2, dl=1)
    up2 = up_from(ENB1, SGW1, 2, UE2)
    out = p.from_s1(up2, ENB, 5.0)
    assert out == [(SGW, up2)]
    assert out[0][1] is up2
    [retired] = events(p, "retired")
    assert (retired["reason"], retired["ue"], retired["uplinkTEID"]) == (
        "uplink_teid_reused",
        "198.18.100.1",
        2,
    )
    p.from_s1(down_to(SGW1, ENB1, 1, UE2), SGW, 5.1)
    table = rows(p)
    assert set(table) == {"198.18.100.2"}
    row = table["198.18.100.2"]
    assert (row["uplinkTEID"], row["downlinkTEID"]) == (2, 1)
    assert row["uplink"] == {"packets": 1, "bytes": len(udp_packet(UE2, PDN, 4000, 53))}
    assert row["downlink"]["packets"] == 1  # type: ignore[index]
    # Offloaded traffic of UE2 is UE2's: NAT state names UE2's bearer, replies reach UE2.
    out = p.from_s1(up_from(ENB1, SGW1, 2, UE2, dst=SVC_IP), ENB, 5.2)
    assert [port for port, _ in out] == [APPS]
    out = p.from_apps(udp_packet(APP, UE2, 8080, 4000), 5.3)
    assert inner_of(out[0][1])[0][16:20] == UE2


def test_uplink_key_reused_by_new_ue_on_other_direction_first() -> None:
    """The downlink key is reused first: UE1 is retired from the downlink side."""
    p = pipeline()
    attached(p, UE1, ul=2, dl=1)
    p.from_s1(down_to(SGW1, ENB1, 1, UE2), SGW, 3.0)
    assert set(rows(p)) == {"198.18.100.2"}
    assert rows(p)["198.18.100.2"]["uplinkTEID"] is None
    assert [e["reason"] for e in events(p, "retired")] == ["downlink_teid_reused"]
    p.from_s1(up_from(ENB1, SGW1, 2, UE2), ENB, 3.1)
    assert rows(p)["198.18.100.2"]["uplinkTEID"] == 2
    assert len(events(p, "retired")) == 1  # UL 2 had no owner any more: nothing else retired


def test_same_ue_same_keys_is_not_an_event() -> None:
    p = pipeline()
    attached(p, UE1, ul=2, dl=1)
    for t in range(10):
        attached(p, UE1, ul=2, dl=1, now=2.0 + t)
    assert events(p, "retired") == []
    assert [e["reason"] for e in events(p, "learned")] == ["user_plane"]
    assert rows(p)["198.18.100.1"]["uplink"]["packets"] == 11  # type: ignore[index]


def test_teids_of_other_peers_are_independent() -> None:
    """The same TEIDs between other peers with another UE retire nothing (colliding TEIDs)."""
    p = pipeline()
    attached(p, UE1, ul=2, dl=1)
    p.from_s1(up_from(ENB2, SGW1, 2, UE2), ENB, 2.0)
    p.from_s1(down_to(SGW1, ENB2, 1, UE2), SGW, 2.0)
    assert set(rows(p)) == {"198.18.100.1", "198.18.100.2"}
    assert events(p, "retired") == []


def test_dual_stack_bearer_is_not_a_ue_change() -> None:
    """IPv4v6: both families on one TEID are two bearers, neither retires the other."""
    p = pipeline()
    attached(p, UE1, ul=2, dl=1)
    v6 = gpdu(ENB1, SGW1, 2, _udp6(UE1_6))
    for now in (2.0, 3.0):
        p.from_s1(v6, ENB, now)
        p.from_s1(up_from(ENB1, SGW1, 2, UE1), ENB, now)
    assert events(p, "retired") == []
    assert set(rows(p)) == {"198.18.100.1", "2001:db8:100::1"}


def _udp6(src: bytes) -> bytes:
    from fluidedge.codec.net import ipv6, udp

    dst = ipaddress.IPv6Address("2001:db8:200::10").packed
    return ipv6.encode(src, dst, 17, udp.encode(src, dst, 4000, 53, b"six"))


def pinging(p: Pipeline, ue: bytes, ul: int, now: float) -> bytes:
    """Offload from ``ue`` (uplink only): returns the first Pinger request frame."""
    out = p.from_s1(up_from(ENB1, SGW1, ul, ue, dst=SVC_IP), ENB, now)
    assert [port for port, _ in out] == [APPS, SGW]
    return out[1][1]


def test_pinger_reply_completes_only_the_bearer_that_pinged() -> None:
    p = service_pipeline()
    ping1 = pinging(p, UE1, 11, 1.0)
    p.from_s1(up_from(ENB1, SGW1, 12, UE2), ENB, 1.0)  # UE2: uplink only, no Pinger
    seq = pinger_seq_of(ping1)
    # A Pinger-looking reply to UE2 (it never pinged): passed on, not learned, not credited.
    to_ue2 = gpdu(SGW1, ENB1, 22, echo_reply(UE2, seq), uplink=False)
    out = p.from_s1(to_ue2, SGW, 2.0)
    assert out == [(ENB, to_ue2)]
    assert rows(p)["198.18.100.2"]["downlinkTEID"] is None
    assert rows(p)["198.18.100.2"]["lastSeen"] == 1.0
    # A reply to UE1 with a sequence number UE1's Pinger never sent: passed on too.
    stray = gpdu(SGW1, ENB1, 21, echo_reply(UE1, (seq + 1000) & 0xFFFF), uplink=False)
    assert p.from_s1(stray, SGW, 2.0) == [(ENB, stray)]
    assert rows(p)["198.18.100.1"]["downlinkTEID"] is None
    assert p.counters["pinger_reply_not_ours_passed"] == 2
    # The real one: swallowed, completes UE1 only, and is not user traffic.
    real = gpdu(SGW1, ENB1, 21, echo_reply(UE1, seq), uplink=False)
    assert p.from_s1(real, SGW, 2.5) == []
    row = rows(p)["198.18.100.1"]
    assert row["downlinkTEID"] == 21
    assert row["lastSeen"] == 1.0
    assert row["downlink"] == {"packets": 0, "bytes": 0}
    assert row["pinger"] == {"active": False, "sent": 1, "replies": 1}
    assert rows(p)["198.18.100.2"]["downlinkTEID"] is None
    assert p.counters["pinger_replies_swallowed"] == 1


def test_pinger_reply_on_another_ues_downlink_key_retires_it() -> None:
    """The Pinger's answer arrives on a DL key UE2 holds: UE2 is retired, UE1 completed."""
    p = service_pipeline()
    p.from_s1(down_to(SGW1, ENB1, 21, UE2), SGW, 0.5)
    ping = pinging(p, UE1, 11, 1.0)
    reply = gpdu(SGW1, ENB1, 21, echo_reply(UE1, pinger_seq_of(ping)), uplink=False)
    assert p.from_s1(reply, SGW, 1.5) == []
    assert set(rows(p)) == {"198.18.100.1"}
    assert [(e["reason"], e["ue"]) for e in events(p, "retired")] == [
        ("downlink_teid_reused", "198.18.100.2")
    ]


def test_idle_purge_is_not_refreshed_by_the_pinger() -> None:
    """The Pinger and its replies keep nothing alive; only user G-PDUs do."""
    p = service_pipeline(idle_timeout=5.0, pinger_give_up=1000.0)
    ping = pinging(p, UE1, 11, 0.0)
    seq = pinger_seq_of(ping)
    sent = 0
    for step in range(1, 45):
        now = step * 0.1
        for _port, frame in p.tick(now):
            sent += 1
            seq = pinger_seq_of(frame)
        # The app keeps answering (queued, restarting nothing) and stray replies come back.
        p.from_apps(udp_packet(APP, UE1, 8080, 4000), now)
    assert sent > 5
    assert p.bearers  # still within idle_timeout of the one user packet
    assert rows(p)["198.18.100.1"]["pinger"]["active"] is True  # type: ignore[index]
    p.from_s1(gpdu(SGW1, ENB1, 21, echo_reply(UE1, seq), uplink=False), SGW, 5.5)
    assert rows(p)["198.18.100.1"]["lastSeen"] == 0.0
    p.tick(6.5)  # idle > 5 s since the last user packet: retired, Pinger or not
    assert p.bearers == {}
    [retired] = events(p, "retired")
    assert retired["reason"] == "idle"
    assert p.counters["bearers_retired_idle"] == 1
    assert p.tick(7.0) == []  # and its Pinger is gone with it


def test_idle_purge_with_active_pinger_and_no_reply() -> None:
    p = service_pipeline(idle_timeout=2.0, pinger_give_up=1000.0)
    pinging(p, UE1, 11, 0.0)
    for step in range(1, 40):
        p.tick(step * 0.1)
    assert p.bearers == {}
    assert p.counters["bearers_retired_idle"] == 1


def test_user_traffic_keeps_the_bearer() -> None:
    p = pipeline(idle_timeout=2.0)
    for step in range(50):
        now = step * 0.2
        p.from_s1(up_from(ENB1, SGW1, 11, UE1), ENB, now)
        p.tick(now)
    assert set(rows(p)) == {"198.18.100.1"}


def test_event_log_is_bounded_and_counts_stay_exact() -> None:
    p = pipeline(event_log=5)
    for i in range(20):
        ue = ipaddress.IPv4Address(f"198.18.101.{i + 1}").packed
        p.from_s1(up_from(ENB1, SGW1, 7, ue), ENB, float(i))  # TEID 7 re-used by each new UE
    log = p.bearer_events()
    assert len(log) == 5
    ids = [e["id"] for e in log]
    assert ids == sorted(ids)
    assert ids[-1] == 39  # 20 learned + 19 retired, numbered from 1
    counts = p.stats()["bearerEvents"]
    assert counts == {"learned": {"user_plane": 20}, "retired": {"uplink_teid_reused": 19}}
    assert len(p.bearers) == 1
    assert p.events.dropped == 34


def test_purge_all_is_one_event() -> None:
    p = pipeline()
    attached(p, UE1, ul=2, dl=1)
    attached(p, UE2, ul=3, dl=4)
    assert p.purge_all(9.0) == 2
    last = p.bearer_events()[-1]
    assert (last["event"], last["reason"], last["bearers"], last["at"]) == ("purged", "api", 2, 9.0)


def test_end_marker_retires_when_last_direction_goes() -> None:
    from fluidedge.codec import gtpu
    from fluidedge.codec.stack import encapsulate

    p = pipeline()
    attached(p, UE1, ul=2, dl=1)
    marker = ethernet_frame(MAC_ENB, MAC_SGW, encapsulate(SGW1, ENB1, gtpu.end_marker(1)))
    p.from_s1(marker, SGW, 2.0)
    assert events(p, "retired") == []
    marker_up = ethernet_frame(MAC_SGW, MAC_ENB, encapsulate(ENB1, SGW1, gtpu.end_marker(2)))
    p.from_s1(marker_up, ENB, 2.0)
    assert [e["reason"] for e in events(p, "retired")] == ["end_marker"]


# --------------------------------------------------------------------- unknown extensions


def ext_frame(ext_type: int, dst: bytes = SVC_IP) -> bytes:
    outer = encapsulate_gpdu(
        ENB1,
        SGW1,
        0x33,
        udp_packet(UE1, dst, 4000, 8080),
        sequence=5,
        extensions=(UnknownExtension(ext_type, b"\x00\x00"),),
        udp_checksum=False,
    )
    return ethernet_frame(MAC_SGW, MAC_ENB, outer)


def test_unknown_forwardable_extensions_pass_and_learn() -> None:
    """TS 29.281 §5.2.1: bits 00/01 (an endpoint may ignore them) are offloaded; 10 (the
    endpoint must comprehend it) passes byte for byte and is learned; 11 passes, counted
    malformed, unlearned."""
    for ext_type, offloaded in ((0x03, True), (0x43, True), (0x8F, False)):
        p = service_pipeline()
        frame = ext_frame(ext_type)
        out = p.from_s1(frame, ENB, 1.0)
        if offloaded:
            assert out[0][0] == APPS, hex(ext_type)
        else:
            assert out == [(SGW, frame)], hex(ext_type)
            assert out[0][1] is frame
        row = rows(p)["198.18.100.1"]
        assert row["uplinkTEID"] == 0x33
        assert row["uplink"]["packets"] == 1  # type: ignore[index]
        # Traffic to the PDN with such a chain: byte-identical.
        other = ext_frame(ext_type, dst=PDN)
        assert p.from_s1(other, ENB, 1.1)[0][1] is other
    p = service_pipeline()
    frame = ext_frame(0xCF)
    assert p.from_s1(frame, ENB, 1.0) == [(SGW, frame)]
    assert p.bearers == {}
    assert sum(p.malformed.values()) == 1


def test_endpoint_required_extension_is_counted_not_offloaded() -> None:
    frame = ext_frame(0x8F)
    assert classify(frame).unknown_ext == 0x8F
    p = service_pipeline()
    assert p.from_s1(frame, ENB, 1.0) == [(SGW, frame)]
    assert p.counters["offload_refused_unknown_extension"] == 1
    assert p.service_counters["web"].up_packets == 0
