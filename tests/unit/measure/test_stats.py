"""The statistics against scipy on fixed data (scipy is a dev dependency only)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from fluidedge.measure import stats
from fluidedge.measure.errors import MeasureInputError

# Fixed data: 20 instantiation latencies in ms (made up once, never regenerated).
DATA = [
    4.12, 3.98, 4.45, 5.01, 3.87, 4.22, 4.09, 4.76, 3.91, 4.33,
    4.05, 4.61, 4.18, 3.95, 9.80, 4.27, 4.02, 4.39, 4.11, 4.50,
]  # fmt: skip


@pytest.mark.parametrize("df", [1, 2, 3, 4, 5, 7, 9, 10, 19, 29, 30, 50, 99, 120, 1000, 10**5])
@pytest.mark.parametrize("p", [0.5000001, 0.6, 0.9, 0.95, 0.975, 0.99, 0.995, 0.9995, 0.025])
def test_t_quantile_matches_scipy(df: int, p: float) -> None:
    assert stats.t_quantile(p, df) == pytest.approx(sps.t.ppf(p, df), rel=1e-9, abs=1e-9)


@pytest.mark.parametrize("df", [0.5, 1, 3, 30, 200])
@pytest.mark.parametrize("t", [-12.0, -2.0, -0.3, 0.0, 0.7, 1.96, 4.0, 40.0])
def test_t_cdf_matches_scipy(df: float, t: float) -> None:
    assert stats.t_cdf(t, df) == pytest.approx(sps.t.cdf(t, df), rel=1e-10, abs=1e-12)


def test_well_known_value() -> None:
    # The textbook 2.262 for a 95% CI from 10 samples.
    assert stats.t_quantile(0.975, 9) == pytest.approx(2.2621571627, abs=1e-9)


def test_summary_against_scipy_and_numpy() -> None:
    summary = stats.summarize(DATA)
    assert summary.n == len(DATA)
    assert summary.mean == pytest.approx(np.mean(DATA))
    assert summary.median == pytest.approx(np.median(DATA))
    assert summary.p99 == pytest.approx(np.percentile(DATA, 99))
    assert summary.std == pytest.approx(np.std(DATA, ddof=1))
    low, high = sps.t.interval(0.95, len(DATA) - 1, loc=np.mean(DATA), scale=sps.sem(DATA))
    assert summary.ci_low == pytest.approx(low, rel=1e-10)
    assert summary.ci_high == pytest.approx(high, rel=1e-10)
    assert summary.ci_half_width == pytest.approx((high - low) / 2)
    assert summary.min == min(DATA)
    assert summary.max == max(DATA)


@pytest.mark.parametrize("confidence", [0.8, 0.9, 0.99])
def test_other_confidence_levels(confidence: float) -> None:
    interval = stats.confidence_interval(DATA[:7], confidence)
    expected = sps.t.interval(confidence, 6, loc=np.mean(DATA[:7]), scale=sps.sem(DATA[:7]))
    assert interval is not None
    assert interval == pytest.approx(expected, rel=1e-10)


@pytest.mark.parametrize("q", [0, 1, 25, 50, 90, 99, 100])
def test_percentile_matches_numpy(q: float) -> None:
    assert stats.percentile(DATA, q) == pytest.approx(np.percentile(DATA, q))


def test_single_sample_has_no_interval() -> None:
    summary = stats.summarize([3.0])
    assert summary.mean == 3.0
    assert summary.std is None
    assert summary.ci_low is None
    assert summary.ci_half_width == 0.0
    assert summary.as_dict()["n"] == 1


def test_bad_inputs() -> None:
    with pytest.raises(MeasureInputError):
        stats.summarize([])
    with pytest.raises(MeasureInputError):
        stats.summarize([1.0, math.nan])
    with pytest.raises(MeasureInputError):
        stats.t_quantile(1.0, 3)
    with pytest.raises(MeasureInputError):
        stats.t_quantile(0.9, 0)
    with pytest.raises(MeasureInputError):
        stats.percentile(DATA, 101)
    with pytest.raises(MeasureInputError):
        stats.confidence_interval(DATA, 1.5)
