"""Bearers learned and forgotten from GTPv1-C (TS 29.060) crossing the TOF's wire."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from tests.unit.tof.bearer_frames import (
    create_request,
    create_response,
    delete_request,
    gtpc_frame,
    rows,
    u32,
    up_from,
)
from tests.unit.tof.test_pipeline import (
    APP,
    ENB1,
    ENB2,
    MAC_ENB,
    MAC_SGW,
    SERVICE,
    SGW1,
    SVC_IP,
    UE1,
    UE2,
    inner_of,
    pipeline,
    udp_packet,
)

from fluidedge.codec.gtpc import GtpcMessage, IEType, InformationElement, MessageType
from fluidedge.codec.stack import encapsulate, ethernet_frame
from fluidedge.tof.pipeline import APPS, ENB, SGW, Pipeline


def create(
    p: Pipeline,
    ue: bytes,
    *,
    seq: int,
    dl: int,
    ul: int,
    sgsn_c: int,
    ggsn_c: int,
    nsapi: int = 5,
    sgsn: bytes = ENB1,
    now: float = 1.0,
    cause: int = 128,
) -> None:
    req = gtpc_frame(
        sgsn,
        SGW1,
        create_request(seq, dl_teid=dl, teid_c=sgsn_c, nsapi=nsapi, sgsn=sgsn),
        uplink=True,
    )
    out = p.from_s1(req, ENB, now)
    assert out == [(SGW, req)]
    assert out[0][1] is req
    resp = create_response(
        seq, to_teid_c=sgsn_c, ul_teid=ul, teid_c=ggsn_c, ue=ue, ggsn=SGW1, cause=cause
    )
    frame = gtpc_frame(SGW1, sgsn, resp, uplink=False)
    out = p.from_s1(frame, SGW, now + 0.01)
    assert out == [(ENB, frame)]
    assert out[0][1] is frame


def test_create_learns_both_teids_at_once_and_offload_needs_no_pinger() -> None:
    p = pipeline()
    p.set_services({"web": SERVICE})
    create(p, UE1, seq=1, dl=0x11, ul=0x21, sgsn_c=0x12, ggsn_c=0x22)
    row = rows(p)["198.18.100.1"]
    assert (row["uplinkTEID"], row["downlinkTEID"], row["learnedFrom"]) == (0x21, 0x11, "gtpc")
    assert (row["enb"], row["sgw"]) == ("198.18.0.11", "198.18.0.21")
    [event] = p.bearer_events()
    assert (event["event"], event["reason"]) == ("learned", "gtpc")
    # The first uplink packet to the service is offloaded; its reply goes straight back.
    out = p.from_s1(up_from(ENB1, SGW1, 0x21, UE1, dst=SVC_IP), ENB, 2.0)
    assert [port for port, _ in out] == [APPS]
    out = p.from_apps(udp_packet(APP, UE1, 8080, 4000), 2.1)
    assert [port for port, _ in out] == [ENB]
    inner, teid = inner_of(out[0][1])
    assert (teid, inner[12:16]) == (0x11, SVC_IP)
    assert p.counters["pinger_requests_sent"] == 0
    # The user plane agrees: no new bearer, no event.
    p.from_s1(up_from(ENB1, SGW1, 0x21, UE1), ENB, 2.2)
    assert len(p.bearer_events()) == 1


def test_delete_request_retires_at_once_either_direction() -> None:
    p = pipeline()
    create(p, UE1, seq=1, dl=0x11, ul=0x21, sgsn_c=0x12, ggsn_c=0x22)
    create(p, UE2, seq=2, dl=0x13, ul=0x23, sgsn_c=0x14, ggsn_c=0x24)
    # SGSN -> GGSN: TEID = the GGSN's TEID-C of UE1's context.
    p.from_s1(
        gtpc_frame(ENB1, SGW1, delete_request(3, to_teid_c=0x22, nsapi=5), uplink=True), ENB, 3.0
    )
    assert set(rows(p)) == {"198.18.100.2"}
    # GGSN -> SGSN (network-initiated): TEID = the SGSN's TEID-C of UE2's context.
    p.from_s1(
        gtpc_frame(SGW1, ENB1, delete_request(4, to_teid_c=0x14, nsapi=5), uplink=False), SGW, 3.1
    )
    assert p.bearers == {}
    assert [(e["reason"], e["ue"]) for e in p.bearer_events() if e["event"] == "retired"] == [
        ("gtpc_delete", "198.18.100.1"),
        ("gtpc_delete", "198.18.100.2"),
    ]
    assert p.counters["bearers_retired_gtpc_delete"] == 2
    assert p.gtpc.contexts == {}
    # A delete for a context we never saw changes nothing.
    p.from_s1(
        gtpc_frame(ENB1, SGW1, delete_request(5, to_teid_c=0x99, nsapi=5), uplink=True), ENB, 3.2
    )
    assert p.counters["gtpc_delete_unknown_context"] == 1


def test_teardown_deletes_every_nsapi_of_the_context() -> None:
    p = pipeline()
    create(p, UE1, seq=1, dl=0x11, ul=0x21, sgsn_c=0x12, ggsn_c=0x22, nsapi=5)
    create(p, UE2, seq=2, dl=0x13, ul=0x23, sgsn_c=0x12, ggsn_c=0x22, nsapi=6)
    p.from_s1(
        gtpc_frame(
            ENB1, SGW1, delete_request(3, to_teid_c=0x22, nsapi=5, teardown=True), uplink=True
        ),
        ENB,
        3.0,
    )
    assert p.bearers == {}


def test_create_reusing_teids_of_a_live_bearer_replaces_it() -> None:
    """Re-attach seen on the control plane without the Delete (missed): the old UE goes."""
    p = pipeline()
    create(p, UE1, seq=1, dl=0x11, ul=0x21, sgsn_c=0x12, ggsn_c=0x22)
    create(p, UE2, seq=2, dl=0x11, ul=0x25, sgsn_c=0x14, ggsn_c=0x26)
    assert set(rows(p)) == {"198.18.100.2"}
    [retired] = [e for e in p.bearer_events() if e["event"] == "retired"]
    assert (retired["reason"], retired["ue"], retired["replacedBy"]) == (
        "gtpc_replaced",
        "198.18.100.1",
        "198.18.100.2",
    )


def test_rejected_unmatched_and_malformed_learn_nothing() -> None:
    p = pipeline()
    create(p, UE1, seq=1, dl=0x11, ul=0x21, sgsn_c=0x12, ggsn_c=0x22, cause=199)
    assert p.bearers == {}
    assert p.counters["gtpc_request_rejected"] == 1
    resp = create_response(9, to_teid_c=1, ul_teid=2, teid_c=3, ue=UE1, ggsn=SGW1)
    p.from_s1(gtpc_frame(SGW1, ENB1, resp, uplink=False), SGW, 2.0)
    assert p.counters["gtpc_response_unmatched"] == 1
    bad = bytearray(gtpc_frame(ENB1, SGW1, delete_request(3, to_teid_c=1, nsapi=5), uplink=True))
    bad[42] = 0x52  # GTPv2-C version bits
    out = p.from_s1(bytes(bad), ENB, 2.0)
    assert out[0][0] == SGW
    assert p.malformed["gtpc/MalformedError"] == 1
    assert p.bearers == {}


def test_update_moves_teids_and_peers() -> None:
    p = pipeline()
    create(p, UE1, seq=1, dl=0x11, ul=0x21, sgsn_c=0x12, ggsn_c=0x22)
    # SGSN-initiated update: new downlink TEID, same SGSN.
    ies = (
        InformationElement(IEType.TEID_DATA_I, u32(0x31)),
        InformationElement(IEType.NSAPI, b"\x05"),
        InformationElement(IEType.GSN_ADDRESS, ENB1),
        InformationElement(IEType.GSN_ADDRESS, ENB1),
    )
    req = GtpcMessage(MessageType.UPDATE_PDP_CONTEXT_REQUEST, 0x22, 7, ies)
    p.from_s1(gtpc_frame(ENB1, SGW1, req, uplink=True), ENB, 2.0)
    resp = GtpcMessage(
        MessageType.UPDATE_PDP_CONTEXT_RESPONSE,
        0x12,
        7,
        (
            InformationElement(IEType.CAUSE, b"\x80"),
            InformationElement(IEType.TEID_DATA_I, u32(0x21)),
            InformationElement(IEType.GSN_ADDRESS, SGW1),
            InformationElement(IEType.GSN_ADDRESS, SGW1),
        ),
    )
    p.from_s1(gtpc_frame(SGW1, ENB1, resp, uplink=False), SGW, 2.01)
    row = rows(p)["198.18.100.1"]
    assert (row["uplinkTEID"], row["downlinkTEID"]) == (0x21, 0x31)
    assert p.counters["gtpc_updated"] == 1
    # Inter-SGSN update: the SGSN (eNB side) address changes -> a new bearer, the old retired.
    ies2 = (
        InformationElement(IEType.TEID_DATA_I, u32(0x41)),
        InformationElement(IEType.NSAPI, b"\x05"),
        InformationElement(IEType.GSN_ADDRESS, ENB2),
        InformationElement(IEType.GSN_ADDRESS, ENB2),
    )
    req2 = GtpcMessage(MessageType.UPDATE_PDP_CONTEXT_REQUEST, 0x22, 8, ies2)
    p.from_s1(gtpc_frame(ENB2, SGW1, req2, uplink=True), ENB, 3.0)
    resp2 = GtpcMessage(MessageType.UPDATE_PDP_CONTEXT_RESPONSE, 0x12, 8, resp.ies)
    p.from_s1(gtpc_frame(SGW1, ENB2, resp2, uplink=False), SGW, 3.01)
    table = p.tunnels()
    assert [(t["enb"], t["uplinkTEID"], t["downlinkTEID"]) for t in table] == [
        ("198.18.0.12", 0x21, 0x41)
    ]
    assert [e["reason"] for e in p.bearer_events() if e["event"] == "retired"] == ["gtpc_update"]
    # The context still deletes.
    p.from_s1(
        gtpc_frame(ENB2, SGW1, delete_request(9, to_teid_c=0x22, nsapi=5), uplink=True), ENB, 4.0
    )
    assert p.bearers == {}


def test_gtpc_learning_can_be_turned_off() -> None:
    p = pipeline(gtpc=False)
    create(p, UE1, seq=1, dl=0x11, ul=0x21, sgsn_c=0x12, ggsn_c=0x22)
    assert p.bearers == {}
    assert p.counters["switched_non_gtp"] == 2


def test_user_plane_alone_still_learns() -> None:
    """Without GTP-C on the wire, the same bearer is learned from its G-PDUs."""
    p = pipeline()
    p.from_s1(up_from(ENB1, SGW1, 0x21, UE1), ENB, 1.0)
    assert rows(p)["198.18.100.1"]["learnedFrom"] == "user_plane"


def test_delete_from_a_third_party_is_ignored() -> None:
    p = pipeline()
    create(p, UE1, seq=1, dl=0x11, ul=0x21, sgsn_c=0x12, ggsn_c=0x22)
    forged = gtpc_frame(ENB2, SGW1, delete_request(3, to_teid_c=0x22, nsapi=5), uplink=True)
    assert p.from_s1(forged, ENB, 2.0) == [(SGW, forged)]
    assert set(rows(p)) == {"198.18.100.1"}
    assert p.counters["gtpc_delete_wrong_sender"] == 1


def test_odd_gsn_addresses_learn_nothing_and_readouts_stay_valid() -> None:
    p = pipeline()
    odd = b"\x01\x02\x03\x04\x05"
    req = create_request(1, dl_teid=0x11, teid_c=0x12, nsapi=5, sgsn=odd)
    p.from_s1(gtpc_frame(ENB1, SGW1, req, uplink=True), ENB, 1.0)
    resp = create_response(1, to_teid_c=0x12, ul_teid=0x21, teid_c=0x22, ue=UE1, ggsn=odd)
    p.from_s1(gtpc_frame(SGW1, ENB1, resp, uplink=False), SGW, 1.0)
    assert p.bearers == {}
    assert p.counters["gtpc_not_learned_incomplete"] == 1
    assert p.tunnels() == []
    assert p.bearer_events() == []


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=120), st.sampled_from([ENB, SGW]))
def test_any_gtpc_payload_passes_through_and_never_raises(payload: bytes, port: int) -> None:
    p = pipeline()
    src, dst = (ENB1, SGW1) if port == ENB else (SGW1, ENB1)
    outer = encapsulate(src, dst, payload, src_port=2123, dst_port=2123)
    frame = ethernet_frame(
        MAC_SGW if port == ENB else MAC_ENB, MAC_ENB if port == ENB else MAC_SGW, outer
    )
    out = p.from_s1(frame, port, 1.0)
    assert len(out) == 1
    assert out[0][1] is frame
    p.tunnels()
    p.bearer_events()


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 200), st.integers(0, 255), st.integers(0, 3))
def test_corrupted_gtpc_exchanges_never_raise(at: int, value: int, which: int) -> None:
    p = pipeline()
    messages = [
        (ENB1, SGW1, create_request(1, dl_teid=0x11, teid_c=0x12, nsapi=5, sgsn=ENB1), ENB),
        (
            SGW1,
            ENB1,
            create_response(1, to_teid_c=0x12, ul_teid=0x21, teid_c=0x22, ue=UE1, ggsn=SGW1),
            SGW,
        ),
        (ENB1, SGW1, delete_request(2, to_teid_c=0x22, nsapi=5), ENB),
    ]
    for i, (src, dst, msg, port) in enumerate(messages):
        frame = bytearray(gtpc_frame(src, dst, msg, uplink=port == ENB))
        if i == which:
            frame[42 + at % (len(frame) - 42)] = value
        out = p.from_s1(bytes(frame), port, 1.0 + i)
        assert len(out) == 1
    p.tunnels()
    p.bearer_events()
