"""The record builders: ``record`` (one go, for --json), the per-field getters and the
``--fields`` cells say the same for every frame, whatever its shape or damage."""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.unit.codec.test_stack import gpdu_frame, mutated

from fluidedge.codec import pcap
from fluidedge.codec.stack import classify
from fluidedge.codec.summary import FIELDS, FrameContext, cell, record, tsv_value

FIXTURES = Path(__file__).parents[2] / "fixtures" / "net"


def check(index: int, ts: int | None, data: bytes) -> dict[str, object]:
    c = classify(data)
    x = FrameContext(index, ts, data, c)
    got = record(x)
    assert list(got) == list(FIELDS)
    assert got == {name: get(FrameContext(index, ts, data, c)) for name, get in FIELDS.items()}
    for name in FIELDS:
        assert cell(name)(index, ts, data, c) == tsv_value(got[name]), name
    return got


def test_fixture_frames() -> None:
    records = [
        check(i, r.timestamp_ns, bytes(r.data))
        for i, r in enumerate(pcap.read_packets((FIXTURES / "frames.pcap").read_bytes()), 1)
    ]
    assert {r["kind"] for r in records} == {
        "GTP_GPDU", "FRAGMENT", "NON_IP", "NON_GTP", "GTP_OTHER", "MALFORMED"
    }  # fmt: skip
    assert [r["vlans"] for r in records if r["vlans"]] == [[100], [10, 20]]


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(gpdu_frame(), mutated(), st.binary(max_size=80)), st.integers(1, 10**6))
def test_any_frame(data: bytes, index: int) -> None:
    check(index, None, data)
