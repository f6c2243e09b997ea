"""Descriptive statistics and Student-t confidence intervals for replicated runs.

The seed (§3.4) reports every phase as the mean of 100 replicated runs with a 95% confidence
interval. The interval needs Student's t quantile; rather than make scipy (tens of MB) a runtime
dependency for one function, :func:`t_quantile` computes it from the regularised incomplete beta
function (continued fraction, Lentz's method) and inverts the CDF by bisection. The unit tests
check it against ``scipy.stats.t.ppf`` to 1e-9 over a range of degrees of freedom.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from fluidedge.measure.errors import MeasureInputError

_EPS = 1e-15
_TINY = 1e-300
_MAX_CF_ITERATIONS = 500


def _beta_continued_fraction(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz's method)."""
    qab = a + b
    qap = a + 1.0
    qam = a - 1.0
    c = 1.0
    d = 1.0 - qab * x / qap
    if abs(d) < _TINY:
        d = _TINY
    d = 1.0 / d
    h = d
    for m in range(1, _MAX_CF_ITERATIONS + 1):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        if abs(d) < _TINY:
            d = _TINY
        c = 1.0 + aa / c
        if abs(c) < _TINY:
            c = _TINY
        d = 1.0 / d
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        if abs(d) < _TINY:
            d = _TINY
        c = 1.0 + aa / c
        if abs(c) < _TINY:
            c = _TINY
        d = 1.0 / d
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < _EPS:
            break
    return h


def regularized_beta(a: float, b: float, x: float) -> float:
    """I_x(a, b), the regularised incomplete beta function, for a, b > 0 and 0 <= x <= 1."""
    if not 0.0 <= x <= 1.0:
        raise MeasureInputError(f"regularized_beta: x={x} outside [0, 1]")
    if x in (0.0, 1.0):
        return x
    log_front = (
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    )
    front = math.exp(log_front)
    # The continued fraction converges fast for x < (a+1)/(a+b+2); use symmetry otherwise.
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _beta_continued_fraction(a, b, x) / a
    return 1.0 - front * _beta_continued_fraction(b, a, 1.0 - x) / b


def _t_tail(t: float, df: float) -> float:
    """P(T > |t|): accurate far in the tail."""
    return 0.5 * regularized_beta(df / 2.0, 0.5, df / (df + t * t))


def _t_central(t: float, df: float) -> float:
    """P(-|t| < T < |t|): accurate near the centre, where 1 - tail would cancel."""
    return regularized_beta(0.5, df / 2.0, t * t / (df + t * t))


def t_cdf(t: float, df: float) -> float:
    """P(T <= t) for Student's t distribution with ``df`` degrees of freedom."""
    if df <= 0:
        raise MeasureInputError(f"t_cdf: degrees of freedom must be > 0, got {df}")
    if t == 0.0:
        return 0.5
    if t * t < df:
        half_central = 0.5 * _t_central(t, df)
        return 0.5 + half_central if t > 0 else 0.5 - half_central
    tail = _t_tail(t, df)
    return 1.0 - tail if t > 0 else tail


def t_quantile(p: float, df: float) -> float:
    """The ``p`` quantile of Student's t with ``df`` degrees of freedom (inverse of t_cdf)."""
    if not 0.0 < p < 1.0:
        raise MeasureInputError(f"t_quantile: p must be in (0, 1), got {p}")
    if df <= 0:
        raise MeasureInputError(f"t_quantile: degrees of freedom must be > 0, got {df}")
    if p == 0.5:
        return 0.0
    if p < 0.5:
        return -t_quantile(1.0 - p, df)
    # Solve on whichever side of the distribution keeps full relative precision: the tail
    # probability for p near 1, the central probability for p near 0.5.
    use_tail = p > 0.75

    def below(t: float) -> bool:
        if use_tail:
            return _t_tail(t, df) > 1.0 - p
        return _t_central(t, df) < 2.0 * p - 1.0

    low, high = 0.0, 1.0
    while below(high):
        low, high = high, high * 2.0
        if high > 1e300:
            return math.inf
    # Bisection to machine precision: monotone, robust, and cheap (~60 evaluations).
    for _ in range(400):
        mid = 0.5 * (low + high)
        if below(mid):
            low = mid
        else:
            high = mid
        if high - low <= 1e-15 * high:
            break
    return 0.5 * (low + high)


def mean(values: Sequence[float]) -> float:
    if not values:
        raise MeasureInputError("mean of no values")
    return math.fsum(values) / len(values)


def sample_std(values: Sequence[float]) -> float:
    """Sample standard deviation (n - 1 in the denominator)."""
    if len(values) < 2:
        raise MeasureInputError("sample standard deviation needs at least 2 values")
    m = mean(values)
    return math.sqrt(math.fsum((v - m) ** 2 for v in values) / (len(values) - 1))


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100) with linear interpolation (numpy's default method)."""
    if not values:
        raise MeasureInputError("percentile of no values")
    if not 0.0 <= q <= 100.0:
        raise MeasureInputError(f"percentile q must be in [0, 100], got {q}")
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100.0
    lower = math.floor(position)
    upper = min(lower + 1, len(ordered) - 1)
    fraction = position - lower
    return ordered[lower] + (ordered[upper] - ordered[lower]) * fraction


def median(values: Sequence[float]) -> float:
    return percentile(values, 50.0)


def confidence_interval(
    values: Sequence[float], confidence: float = 0.95
) -> tuple[float, float] | None:
    """Two-sided Student-t interval for the mean; ``None`` with fewer than 2 values."""
    if not 0.0 < confidence < 1.0:
        raise MeasureInputError(f"confidence must be in (0, 1), got {confidence}")
    if len(values) < 2:
        return None
    m = mean(values)
    half = t_quantile(0.5 + confidence / 2.0, len(values) - 1) * sample_std(values)
    half /= math.sqrt(len(values))
    return (m - half, m + half)


@dataclass(frozen=True, slots=True)
class Summary:
    """What the seed's figures show for one series: mean with a CI, plus robust statistics.

    ``std``, ``ci_low`` and ``ci_high`` are ``None`` for a single sample (undefined).
    """

    n: int
    mean: float
    median: float
    p99: float
    min: float
    max: float
    std: float | None
    ci_low: float | None
    ci_high: float | None
    confidence: float

    @property
    def ci_half_width(self) -> float:
        """Half the CI width (0 when undefined), what an error bar draws."""
        if self.ci_low is None or self.ci_high is None:
            return 0.0
        return (self.ci_high - self.ci_low) / 2.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def summarize(values: Sequence[float], confidence: float = 0.95) -> Summary:
    """Summarise one series of samples (at least one)."""
    if not values:
        raise MeasureInputError("cannot summarise an empty series")
    for value in values:
        if not math.isfinite(value):
            raise MeasureInputError(f"non-finite sample {value!r}")
    interval = confidence_interval(values, confidence)
    return Summary(
        n=len(values),
        mean=mean(values),
        median=median(values),
        p99=percentile(values, 99.0),
        min=min(values),
        max=max(values),
        std=sample_std(values) if len(values) >= 2 else None,
        ci_low=interval[0] if interval else None,
        ci_high=interval[1] if interval else None,
        confidence=confidence,
    )
