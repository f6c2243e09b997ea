"""What the daemon's and the parts' Prometheus histograms share.

One bucket ladder for latencies, from the warm instance path (sub-millisecond) to readiness
waits, so the API's request histogram and the instance manager's phase histograms line up.
"""

from __future__ import annotations

LATENCY_BUCKETS_S = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
)
"""Histogram bucket upper bounds in seconds (``+Inf`` is added by prometheus_client)."""
