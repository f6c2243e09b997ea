"""rtnetlink encoding/decoding and the timing histograms (pure)."""

from __future__ import annotations

import struct

import pytest

from fluidedge.instances import nl
from fluidedge.instances.timing import Histograms, PhaseTimer
from fluidedge.linux.netlink import NLM_F_ACK, NLMSG_ERROR, NetlinkDecodeError


def test_add_address_message_layout() -> None:
    msg = nl.encode_add_address(7, 3, "198.18.1.2/24")
    length, kind, flags, seq, _pid = struct.unpack_from("=IHHII", msg)
    assert length == len(msg)
    assert kind == nl.RTM_NEWADDR
    assert seq == 7
    assert flags & NLM_F_ACK
    family, prefix, _f, _scope, index = struct.unpack_from("=BBBBI", msg, 16)
    assert (family, prefix, index) == (2, 24, 3)
    assert bytes([198, 18, 1, 2]) in msg[24:]


def test_ipv6_address_skips_dad() -> None:
    msg = nl.encode_add_address(1, 2, "2001:db8::5/64")
    family, prefix, flags, _scope, _index = struct.unpack_from("=BBBBI", msg, 16)
    assert (family, prefix) == (10, 64)
    assert flags & nl.IFA_F_NODAD


def test_decode_ack_and_error() -> None:
    ack = struct.pack("=IHHII", 36, NLMSG_ERROR, 0, 5, 0) + struct.pack("=i", 0) + b"\0" * 16
    assert nl.decode_reply(ack, 5) == (0, None)
    err = struct.pack("=IHHII", 36, NLMSG_ERROR, 0, 6, 0) + struct.pack("=i", -17) + b"\0" * 16
    assert nl.decode_reply(err, 6) == (17, None)
    assert nl.decode_reply(ack, 99) is None  # an earlier request's answer: not ours


@pytest.mark.parametrize(
    "data",
    [
        struct.pack("=IHHII", 36, NLMSG_ERROR, 0, 5, 0),  # longer than the receive
        struct.pack("=IHHII", 16, NLMSG_ERROR, 0, 5, 0),  # an error without its code
        struct.pack("=IHHII", 20, nl.RTM_NEWLINK, 0, 5, 0) + bytes(4),  # no whole ifinfomsg
    ],
    ids=["truncated", "no-errno", "short-link"],
)
def test_malformed_replies_say_where(data: bytes) -> None:
    with pytest.raises(NetlinkDecodeError, match="at offset 0"):
        nl.decode_reply(data, 5)


def test_decode_link_reply_gives_index() -> None:
    body = struct.pack("=BxHiII", 0, 1, 42, 0, 0)
    msg = struct.pack("=IHHII", 16 + len(body), nl.RTM_NEWLINK, 0, 9, 0) + body
    assert nl.decode_reply(msg, 9) == (0, 42)


def test_phase_timer_sums_to_total() -> None:
    timer = PhaseTimer()
    for phase in ("accept", "placement", "shell"):
        timer.mark(phase)
    out = timer.milliseconds()
    assert out["total"] == pytest.approx(sum(v for k, v in out.items() if k != "total"), abs=0.01)
    assert out["ready"] == 0.0


def test_histogram_text_is_cumulative() -> None:
    hist = Histograms()
    hist.declare("m_seconds", "help")
    hist.observe("m_seconds", 0.0003, phase="start")
    hist.observe("m_seconds", 0.002, phase="start")
    text = hist.render()
    assert "# TYPE m_seconds histogram" in text
    assert 'm_seconds_bucket{le="0.00025",phase="start"} 0.0' in text
    assert 'm_seconds_bucket{le="0.0005",phase="start"} 1.0' in text
    assert 'm_seconds_bucket{le="0.0025",phase="start"} 2.0' in text
    assert 'm_seconds_bucket{le="+Inf",phase="start"} 2.0' in text
    assert 'm_seconds_count{phase="start"} 2.0' in text


def test_histogram_children_are_reused_whatever_the_label_order() -> None:
    """The labelled children are cached by (metric, labels as given): the same labels in
    another order still land in the one series prometheus_client keeps for them."""
    hist = Histograms()
    hist.observe("c_seconds", 0.001, phase="start", path="warm")
    hist.observe("c_seconds", 0.001, path="warm", phase="start")
    hist.observe("c_seconds", 0.001, phase="start", path="warm")
    hist.observe("c_seconds", 0.001, phase="ready", path="warm")
    text = hist.render()
    assert 'c_seconds_count{path="warm",phase="start"} 3.0' in text
    assert 'c_seconds_count{path="warm",phase="ready"} 1.0' in text
