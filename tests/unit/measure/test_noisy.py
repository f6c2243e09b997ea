"""The noisy-neighbour bench's pure parts: % change with propagated CIs, summaries, frames."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from fluidedge.measure.errors import MeasureInputError
from fluidedge.measure.noisy import (
    Trial,
    chart,
    latency_stats,
    pct_change,
    scenarios_for,
    summarise,
    table_lines,
)
from fluidedge.measure.noisyrig import udp_frame
from fluidedge.measure.stats import summarize


def _trial(scenario: str, rnd: int, kpps: float, lat: float) -> Trial:
    return Trial("vfw", scenario, rnd, kpps, lat, lat * 2, lat * 3, 10, 10)


def test_pct_change_and_its_propagated_ci() -> None:
    base = summarize([100.0, 110.0, 90.0])
    worse = summarize([150.0, 165.0, 135.0])
    change, ci = pct_change(worse, base)
    assert change == pytest.approx(50.0)
    rel = math.hypot(worse.ci_half_width / 150.0, base.ci_half_width / 100.0)
    assert ci == pytest.approx(150.0 * rel)
    assert pct_change(summarize([5.0]), summarize([10.0])) == (-50.0, None)
    with pytest.raises(MeasureInputError):
        pct_change(worse, summarize([0.0, 0.0]))


def test_summarise_against_the_same_invocations_baseline(tmp_path: Path) -> None:
    lost = Trial("vfw", "pinned", 1, 80, None, None, None, 0, 10)  # every probe lost
    trials = [
        lost,
        _trial("baseline", 0, 100, 50),
        _trial("baseline", 1, 100, 70),
        _trial("neighbour", 0, 50, 120),
        _trial("neighbour", 1, 70, 120),
        _trial("pinned", 0, 90, 60),
    ]
    cells = {(c.scenario, c.metric): c for c in summarise(trials, scenarios_for(["11-1"], False))}
    assert cells[("baseline", "throughput_kpps")].change_pct == 0
    assert cells[("neighbour", "throughput_kpps")].change_pct == pytest.approx(-40.0)
    assert cells[("neighbour", "lat_avg_us")].change_pct == pytest.approx(100.0)
    assert cells[("pinned", "lat_max_us")].change_ci_pct is None  # one sample: no CI
    assert cells[("pinned", "throughput_kpps")].summary.n == 2
    assert cells[("pinned", "lat_avg_us")].summary.n == 1  # the lost trial has no latency
    lines = table_lines(list(cells.values()))
    assert lines[1].startswith("vfw      baseline")
    assert "-40.0%" in lines[2]
    png = chart(list(cells.values()), ["baseline", "neighbour", "pinned"], tmp_path / "n.png", "t")
    assert png.stat().st_size > 10_000


def test_scenarios_and_latency_stats() -> None:
    assert scenarios_for(["4-4-4"], True) == ["baseline", "neighbour", "pinned", "cat-4-4-4"]
    assert scenarios_for(["4-4-4"], False) == ["baseline", "neighbour", "pinned"]
    avg, p99, worst = latency_stats([10.0] * 99 + [1000.0])
    assert (avg, worst) == (pytest.approx(19.9), 1000.0)
    assert 10.0 < p99 <= 1000.0
    assert latency_stats([]) is None


def test_udp_frame_is_64_bytes_with_a_valid_ipv4_checksum() -> None:
    frame = udp_frame(
        dst_mac=b"\x02" * 6,
        src_mac=b"\x04" * 6,
        src="10.77.1.2",
        dst="10.77.2.2",
        dport=9,
        ident=40001,
    )
    assert len(frame) + 4 == 64  # RFC 2544 sizes count the FCS
    header = frame[14:34]
    total = sum(int.from_bytes(header[i : i + 2], "big") for i in range(0, 20, 2))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    assert total == 0xFFFF
    assert int.from_bytes(frame[18:20], "big") == 40001
