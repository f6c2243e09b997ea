"""The zero-loss search against deterministic fake devices."""

from __future__ import annotations

import pytest

from fluidedge.measure import rfc2544
from fluidedge.measure.errors import MeasureInputError
from fluidedge.measure.rfc2544 import OfferResult, SearchConfig, zero_loss_search


class FakeDevice:
    """Forwards everything up to ``capacity`` pps; above it, forwards exactly ``capacity``.

    ``generator_max`` caps what the fake generator can send, like trafgen on a small VM.
    """

    def __init__(
        self, capacity: float, generator_max: float = 1e12, tail_loss: float = 0.0
    ) -> None:
        self.capacity = capacity
        self.generator_max = generator_max
        self.tail_loss = tail_loss
        self.calls: list[float] = []

    def __call__(self, rate: float, duration: float) -> OfferResult:
        self.calls.append(rate)
        sent = int(min(rate, self.generator_max) * duration)
        ok = int(min(rate, self.capacity) * duration)
        received = min(sent, ok)
        if rate > self.capacity * 0.9:
            received = int(received * (1.0 - self.tail_loss))
        return OfferResult(sent=sent, received=received, duration_s=duration)


@pytest.mark.parametrize("capacity", [1_000.0, 123_456.0, 480_000.0, 999_999.0])
def test_finds_capacity_within_resolution(capacity: float) -> None:
    device = FakeDevice(capacity)
    config = SearchConfig(max_rate_pps=1_000_000.0, resolution=0.01, max_trials=40)
    result = zero_loss_search(device, config)
    assert result.converged
    assert result.best is not None
    assert result.best.loss_ratio == 0.0
    # Never above capacity, and within 1% of the max rate below it.
    assert result.throughput_pps <= capacity
    assert capacity - result.throughput_pps <= 0.01 * 1_000_000.0 + 1
    # Every passing trial is below every failing trial (a proper bisection).
    passing = [t.requested_pps for t in result.trials if t.passed]
    failing = [t.requested_pps for t in result.trials if not t.passed]
    assert max(passing) < min(failing)


def test_device_faster_than_max_rate_needs_one_trial() -> None:
    device = FakeDevice(capacity=5e6)
    result = zero_loss_search(device, SearchConfig(max_rate_pps=1e6))
    assert device.calls == [1e6]
    assert result.throughput_pps == pytest.approx(1e6)
    assert not result.generator_limited


def test_loss_tolerance_accepts_small_loss() -> None:
    device = FakeDevice(capacity=1e6, tail_loss=0.001)
    strict = zero_loss_search(device, SearchConfig(max_rate_pps=1e6, resolution=0.01))
    tolerant = zero_loss_search(
        FakeDevice(capacity=1e6, tail_loss=0.001),
        SearchConfig(max_rate_pps=1e6, resolution=0.01, loss_tolerance=0.002),
    )
    assert tolerant.throughput_pps == pytest.approx(1e6)
    assert strict.throughput_pps <= 0.9 * 1e6
    assert strict.throughput_pps >= 0.88 * 1e6


def test_generator_limit_is_reported() -> None:
    device = FakeDevice(capacity=1e7, generator_max=480_000.0)
    result = zero_loss_search(device, SearchConfig(max_rate_pps=2e6))
    assert result.throughput_pps == pytest.approx(480_000.0)
    assert result.generator_limited


def test_nothing_passes() -> None:
    def broken(rate: float, duration: float) -> OfferResult:
        return OfferResult(sent=int(rate * duration), received=0, duration_s=duration)

    result = zero_loss_search(broken, SearchConfig(max_rate_pps=1e6, min_rate_pps=1000))
    assert result.best is None
    assert result.throughput_pps == 0.0
    assert result.converged
    assert all(not t.passed for t in result.trials)


def test_max_trials_bounds_the_search() -> None:
    device = FakeDevice(capacity=333_333.0)
    result = zero_loss_search(device, SearchConfig(max_rate_pps=1e6, resolution=1e-6, max_trials=5))
    assert len(device.calls) == 5
    assert not result.converged
    assert result.as_dict()["trials"][0]["requested_pps"] == 1e6


@pytest.mark.parametrize(
    "config",
    [
        SearchConfig(max_rate_pps=0),
        SearchConfig(max_rate_pps=10, duration_s=0),
        SearchConfig(max_rate_pps=10, loss_tolerance=1.0),
        SearchConfig(max_rate_pps=10, resolution=0),
        SearchConfig(max_rate_pps=10, min_rate_pps=20),
    ],
)
def test_bad_config(config: SearchConfig) -> None:
    with pytest.raises(MeasureInputError):
        zero_loss_search(FakeDevice(1.0), config)


def test_frame_sizes_and_line_rate() -> None:
    assert rfc2544.frame_size_bytes("64") == 64
    assert rfc2544.frame_size_bytes("imix") == pytest.approx((7 * 64 + 4 * 594 + 1518) / 12)
    # 10 GbE line rate at 64 bytes is the well-known 14.88 Mpps.
    assert rfc2544.line_bits_per_second(14_880_952, "64") == pytest.approx(10e9, rel=1e-6)
    with pytest.raises(MeasureInputError):
        rfc2544.frame_size_bytes("jumbo")
    with pytest.raises(MeasureInputError):
        rfc2544.frame_size_bytes("32")


def test_latency_summary() -> None:
    summary = rfc2544.latency_summary([10.0, 20.0, 30.0, 40.0])
    assert summary is not None
    assert summary["avg_us"] == 25.0
    assert summary["max_us"] == 40.0
    assert summary["median_us"] == 25.0
    assert rfc2544.latency_summary([]) is None


def test_search_bisects_below_what_the_generator_really_offered() -> None:
    # The device forwards 30 kpps; the generator tops out at 70 kpps whatever is asked.
    device = FakeDevice(capacity=30_000.0, generator_max=70_000.0)
    result = zero_loss_search(
        device, SearchConfig(max_rate_pps=400_000.0, resolution=0.02, max_trials=12)
    )
    assert device.calls[1] == pytest.approx(35_000.0)  # half of 70k, not half of 400k
    assert 0.97 * 30_000 <= result.throughput_pps <= 30_000
    assert result.converged
    assert not result.generator_limited


def test_probe_identification_is_read_from_the_first_ip_header() -> None:
    from scapy.layers.inet import IP, UDP
    from scapy.layers.l2 import Ether

    from fluidedge.measure.probe import PROBE_IDENT_BASE, ipv4_ident, probe_ident

    frame = bytes(Ether() / IP(id=probe_ident(3)) / UDP())
    assert ipv4_ident(frame) == PROBE_IDENT_BASE + 3
    assert ipv4_ident(b"\x00" * 13) is None
    assert probe_ident(65536 - PROBE_IDENT_BASE) == PROBE_IDENT_BASE  # wraps inside the range
