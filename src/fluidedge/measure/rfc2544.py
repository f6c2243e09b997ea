"""RFC 2544 §26.1 throughput: the highest offered rate forwarded with no (or tolerated) loss.

The search is written against an abstract ``offer(rate_pps, duration_s) -> OfferResult`` so that
it is pure: the lab's traffic generator provides the real one, the unit tests a deterministic fake
device. It first tries the maximum rate (a device that keeps up needs one trial), then bisects
between the highest passing and the lowest failing rate until the bracket is narrower than the
resolution. The throughput reported is the rate the generator *actually* offered in the best
passing trial (sent / duration), because a software generator may fall short of what was asked:
when it does, the result is flagged ``generator_limited`` and the figure is a lower bound.

Frame sizes follow RFC 2544 §9.1 for Ethernet (64, 128, 256, 512, 1024, 1280, 1518); the seed's
§7 tests use 64/256/1024/1518 and iMIX, which is what :data:`DEFAULT_SIZES` holds. iMIX here is
the "simple iMIX" 7:4:1 mix of 64, 594 and 1518-byte frames.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from fluidedge.measure.errors import MeasureInputError
from fluidedge.measure.stats import percentile

FRAME_SIZES = (64, 256, 1024, 1518)
IMIX = ((64, 7), (594, 4), (1518, 1))
IMIX_NAME = "iMIX"
DEFAULT_SIZES: tuple[str, ...] = (*(str(s) for s in FRAME_SIZES), IMIX_NAME)
ETHERNET_OVERHEAD = 20  # preamble + SFD (8) and inter-frame gap (12) on the wire, RFC 2544 §20


def imix_mean_size() -> float:
    """Mean frame size of the simple iMIX (bytes)."""
    total = sum(weight for _, weight in IMIX)
    return sum(size * weight for size, weight in IMIX) / total


def frame_size_bytes(size: str) -> float:
    """The (mean) frame size for a size label: ``"64"`` ... ``"1518"`` or ``"iMIX"``."""
    if size.lower() == IMIX_NAME.lower():
        return imix_mean_size()
    try:
        value = int(size)
    except ValueError:
        raise MeasureInputError(f"frame size {size!r}: give bytes (64..9000) or iMIX") from None
    if not 64 <= value <= 9000:
        raise MeasureInputError(f"frame size {value} outside 64..9000 bytes")
    return float(value)


def line_bits_per_second(pps: float, size: str) -> float:
    """Bits per second on the wire for ``pps`` frames of ``size`` (incl. preamble and gap)."""
    return pps * (frame_size_bytes(size) + ETHERNET_OVERHEAD) * 8


@dataclass(frozen=True, slots=True)
class OfferResult:
    """What one trial of offered load produced."""

    sent: int
    received: int
    duration_s: float
    latency_us: tuple[float, ...] = ()


Offer = Callable[[float, float], OfferResult]


@dataclass(frozen=True, slots=True)
class Trial:
    requested_pps: float
    sent: int
    received: int
    duration_s: float
    loss_ratio: float
    passed: bool
    latency_us: tuple[float, ...] = ()

    @property
    def offered_pps(self) -> float:
        return self.sent / self.duration_s if self.duration_s > 0 else 0.0

    @property
    def forwarded_pps(self) -> float:
        return self.received / self.duration_s if self.duration_s > 0 else 0.0


@dataclass(frozen=True, slots=True)
class SearchConfig:
    max_rate_pps: float
    duration_s: float = 1.0
    loss_tolerance: float = 0.0
    resolution: float = 0.02
    min_rate_pps: float = 1.0
    max_trials: int = 16

    def check(self) -> None:
        if self.max_rate_pps <= 0 or self.min_rate_pps <= 0:
            raise MeasureInputError("rates must be > 0 packets per second")
        if self.min_rate_pps > self.max_rate_pps:
            raise MeasureInputError("min rate above max rate")
        if self.duration_s <= 0:
            raise MeasureInputError("trial duration must be > 0 s")
        if not 0.0 <= self.loss_tolerance < 1.0:
            raise MeasureInputError("loss tolerance must be a ratio in [0, 1)")
        if not 0.0 < self.resolution < 1.0:
            raise MeasureInputError("resolution must be a ratio in (0, 1)")
        if self.max_trials < 1:
            raise MeasureInputError("max_trials must be >= 1")


@dataclass
class SearchResult:
    """Highest passing trial (``None`` when even the minimum rate lost packets)."""

    config: SearchConfig
    trials: list[Trial] = field(default_factory=list)
    best: Trial | None = None
    converged: bool = False

    @property
    def throughput_pps(self) -> float:
        return self.best.offered_pps if self.best is not None else 0.0

    @property
    def generator_limited(self) -> bool:
        """The best trial offered clearly less than requested: the figure is a lower bound."""
        return self.best is not None and self.best.offered_pps < 0.9 * self.best.requested_pps

    def as_dict(self) -> dict[str, Any]:
        return {
            "config": asdict(self.config),
            "throughput_pps": self.throughput_pps,
            "generator_limited": self.generator_limited,
            "converged": self.converged,
            "trials": [
                {
                    **{k: v for k, v in asdict(t).items() if k != "latency_us"},
                    "latency": latency_summary(t.latency_us),
                    "offered_pps": t.offered_pps,
                    "forwarded_pps": t.forwarded_pps,
                }
                for t in self.trials
            ],
        }


def _run_trial(offer: Offer, rate: float, config: SearchConfig) -> Trial:
    result = offer(rate, config.duration_s)
    if result.sent < 0 or result.received < 0:
        raise MeasureInputError("offer() returned negative counters")
    loss = (result.sent - result.received) / result.sent if result.sent else 1.0
    # More received than sent (duplicates, stray frames) is not loss.
    loss = max(0.0, loss)
    passed = result.sent > 0 and loss <= config.loss_tolerance
    return Trial(
        rate, result.sent, result.received, result.duration_s, loss, passed, result.latency_us
    )


def _failed_at(trial: Trial) -> float:
    offered = trial.offered_pps
    return min(trial.requested_pps, offered) if offered > 0 else trial.requested_pps


def zero_loss_search(offer: Offer, config: SearchConfig) -> SearchResult:
    """Binary search for the highest rate with loss <= tolerance (RFC 2544 §26.1)."""
    config.check()
    result = SearchResult(config)
    first = _run_trial(offer, config.max_rate_pps, config)
    result.trials.append(first)
    if first.passed:
        result.best = first
        result.converged = True
        return result
    # A failed trial failed at the rate the generator really offered, which can be well below
    # the requested one: bisect under that, not in a range the generator cannot produce.
    low, high = 0.0, _failed_at(first)
    while len(result.trials) < config.max_trials:
        if high - low <= config.resolution * high:
            result.converged = True
            break
        rate = (low + high) / 2.0
        if rate < config.min_rate_pps:
            result.converged = True
            break
        trial = _run_trial(offer, rate, config)
        result.trials.append(trial)
        if trial.passed:
            low = rate
            result.best = trial
        else:
            high = min(rate, _failed_at(trial))
    else:
        result.converged = high - low <= config.resolution * high
    return result


def latency_summary(samples: Sequence[float]) -> dict[str, float] | None:
    """Average and maximum latency (the seed's §7 Figures 31-32) plus median and p99, in µs."""
    if not samples:
        return None
    return {
        "n": float(len(samples)),
        "avg_us": sum(samples) / len(samples),
        "median_us": percentile(samples, 50.0),
        "p99_us": percentile(samples, 99.0),
        "max_us": max(samples),
    }
