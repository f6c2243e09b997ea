"""``/metrics``: the Prometheus exposition, produced by ``prometheus_client``.

One registry per application (not the library's global one: tests build several apps in one
process) holds the process collectors (CPU, memory, open fds, start time), the daemon's own
request histogram and one collector per part. A part keeps contributing metrics the simple way,
as Prometheus text from ``Part.metrics()`` (its metric names unchanged); the daemon parses that
text into metric families at scrape time and re-exposes it, so HELP/TYPE lines, escaping and
the content type are the library's, and a part with malformed text is reported by
``fluidedge_part_metrics_up{part} 0`` instead of breaking the scrape.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from fluidedge.core.metrics import LATENCY_BUCKETS_S

# ``*_created`` series double the output and nobody here graphs them.
disable_created_metrics()  # type: ignore[no-untyped-call]

CONTENT_TYPE = CONTENT_TYPE_LATEST
_log = logging.getLogger("fluidedge.daemon")

# API latency buckets: the shared ladder, plus 10 s for the longest readiness waits.
REQUEST_BUCKETS = (*LATENCY_BUCKETS_S, 10.0)


class PartsCollector(Collector):
    """Re-exposes each part's Prometheus text (``name -> metrics()``) through the registry."""

    def __init__(self, sources: dict[str, Callable[[], str]]) -> None:
        self._sources = sources

    def collect(self) -> Iterable[Metric]:
        up = GaugeMetricFamily(
            "fluidedge_part_metrics_up",
            "1 if the part's metrics could be collected at this scrape.",
            labels=["part"],
        )
        families: list[Metric] = []
        for name, source in self._sources.items():
            try:
                families.extend(text_string_to_metric_families(source()))
            except Exception:
                _log.exception("metrics of part %s could not be collected", name)
                up.add_metric([name], 0)
            else:
                up.add_metric([name], 1)
        yield from families
        yield up


class DaemonMetrics:
    """The registry behind ``/metrics`` and the daemon's own instruments."""

    def __init__(self, sources: dict[str, Callable[[], str]]) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        self.requests = Histogram(
            "fluidedge_http_request_duration_seconds",
            "API requests: time from arrival to the last byte of the response.",
            ["method", "route", "status"],
            buckets=REQUEST_BUCKETS,
            registry=self.registry,
        )
        self.registry.register(PartsCollector(sources))
        # labels() validates and locks on every call: keep the children (series are bounded by
        # route templates x methods x statuses).
        self._children: dict[tuple[str, str, int], Any] = {}

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        key = (method, route, status)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self.requests.labels(method, route, str(status))
        child.observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)

    def families(self) -> Iterator[Metric]:
        yield from self.registry.collect()
