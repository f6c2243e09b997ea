"""``bench density``: creation latency and memory as instances accumulate (LightVM, seed §5).

Instances are created one after another and kept running; every ``step`` creations the host's
memory in use (MemTotal - MemAvailable) is read. The curve that matters is creation latency
against the number of instances already running: LightVM's point is that it stays flat, where
stock Xen's grows. Before each creation the benchmark waits for the template's pool to be quiet
(unless ``cold``), so each point measures the warm path at that density rather than an empty
pool. Everything created is deleted at the end, also after Ctrl-C.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from fluidedge.core.client import ClientError
from fluidedge.measure.analyzer import timing_of
from fluidedge.measure.errors import BenchmarkFailure, MeasureInputError
from fluidedge.measure.instantiate import Api, wait_pool_quiet
from fluidedge.measure.plots import DensityPoint
from fluidedge.measure.replicate import ProgressBar
from fluidedge.measure.stats import mean, percentile

CSV_COLUMNS = (
    "index",
    "running_before",
    "name",
    "path",
    "latency_ms",
    "daemon_total_ms",
    "memory_mib",
    "instances_memory_mib",
    "pid",
    "delete_ms",
)


@dataclass
class Creation:
    index: int
    running_before: int
    name: str
    path: str
    latency_ms: float
    daemon_total_ms: float
    memory_mib: float | None = None  # host memory in use above the start, before this creation
    instances_memory_mib: float | None = None  # sum of running instances' cgroups, same time
    pid: int | None = None
    delete_ms: float | None = None

    def row(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class DensityOutcome:
    creations: list[Creation]
    memory_start_mib: float
    memory_end_mib: float | None
    instances_memory_end_mib: float | None
    interrupted: bool
    failure: str | None


def points(creations: Sequence[Creation], step: int) -> list[DensityPoint]:
    """One point per step: latency stats of that step's creations, memory at its start."""
    if step < 1:
        raise MeasureInputError("step must be >= 1")
    result = []
    for start in range(0, len(creations), step):
        chunk = creations[start : start + step]
        latencies = [c.latency_ms for c in chunk]
        memory = chunk[0].memory_mib
        charged = chunk[0].instances_memory_mib
        result.append(
            DensityPoint(
                running=chunk[0].running_before,
                latency_ms_median=percentile(latencies, 50),
                latency_ms_p99=percentile(latencies, 99),
                latency_ms_mean=mean(latencies),
                memory_mib=memory if memory is not None else float("nan"),
                instances_memory_mib=charged,
            )
        )
    return result


def flatness(pts: Sequence[DensityPoint]) -> float | None:
    """Last step's median latency over the first step's (1.0 = perfectly flat)."""
    if len(pts) < 2 or pts[0].latency_ms_median <= 0:
        return None
    return pts[-1].latency_ms_median / pts[0].latency_ms_median


def run_density(
    api: Api,
    *,
    template: str,
    max_instances: int,
    step: int,
    name_prefix: str,
    memory_used: Callable[[], float],
    instance_memory: Callable[[int], int | None] = lambda pid: None,
    cold: bool = False,
    pool_wait_s: float = 10.0,
    progress: bool = True,
    on_creation: Callable[[Creation], None] | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> DensityOutcome:
    """Create ``max_instances`` instances one at a time, timing each (``clock``, seconds) and
    sampling memory every ``step``; then delete them all, whatever happened."""
    if max_instances < 1 or step < 1:
        raise MeasureInputError("--max and --step must be >= 1")
    creations: list[Creation] = []
    interrupted = False
    failure: str | None = None
    wait_pool_quiet(api, template, need_ready=not cold, timeout_s=pool_wait_s)
    start_mib = memory_used()
    end_mib: float | None = None
    end_charged: float | None = None
    try:
        with ProgressBar(f"density {template}", max_instances, enabled=progress) as bar:
            for index in range(max_instances):
                memory = charged = None
                if index % step == 0:
                    memory = memory_used() - start_mib
                    charged = _charged_mib(creations, instance_memory)
                if not cold:
                    wait_pool_quiet(api, template, need_ready=True, timeout_s=pool_wait_s)
                name = f"{name_prefix}-d{index}"
                body = {"name": name, "template": template, "cold": cold}
                started = clock()
                try:
                    view = api.post("/v1/instances", body)
                except ClientError as exc:
                    failure = f"creating instance #{index} ({name}): {exc}"
                    break
                latency = (clock() - started) * 1000.0
                total, _ = timing_of(view)
                creation = Creation(
                    index=index,
                    running_before=index,
                    name=name,
                    path=str(view.get("path", "?")) if isinstance(view, dict) else "?",
                    latency_ms=latency,
                    daemon_total_ms=total if total is not None else float("nan"),
                    memory_mib=memory,
                    instances_memory_mib=charged,
                    pid=view.get("pid") if isinstance(view, dict) else None,
                )
                creations.append(creation)
                if on_creation is not None:
                    on_creation(creation)
                bar.advance(f"{latency:.1f} ms")
        end_mib = memory_used() - start_mib
        end_charged = _charged_mib(creations, instance_memory)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        _delete_all(api, creations, progress)
    return DensityOutcome(creations, start_mib, end_mib, end_charged, interrupted, failure)


def _charged_mib(
    creations: Sequence[Creation], instance_memory: Callable[[int], int | None]
) -> float | None:
    """Sum of the memory charged to the running instances' cgroups (MiB); 0.0 with none."""
    total = 0
    for creation in creations:
        if creation.pid is None:
            return None
        charged = instance_memory(creation.pid)
        if charged is None:
            return None
        total += charged
    return total / (1024 * 1024)


def _delete_all(api: Api, creations: list[Creation], progress: bool) -> None:
    errors = []
    with ProgressBar("deleting", len(creations), enabled=progress) as bar:
        for creation in reversed(creations):
            started = time.perf_counter()
            try:
                api.delete(f"/v1/instances/{creation.name}")
            except ClientError as exc:
                if exc.status != 404:
                    errors.append(f"{creation.name}: {exc}")
            creation.delete_ms = (time.perf_counter() - started) * 1000.0
            bar.advance(creation.name)
    if errors:
        raise BenchmarkFailure("could not delete: " + "; ".join(errors[:5]))
