"""``bench instantiate``: replicated instantiations through the daemon's API (seed §3.4).

Each run creates one instance with ``POST /v1/instances``, takes the daemon's per-phase breakdown
from the response, and deletes the instance before the next run. Before every run the benchmark
waits until the template's pool has no shell in preparation (and, for the pool variant, at least
one ready), so that a run neither measures an empty pool's cold fallback nor competes with the
background refill: the seed's "unloaded conditions".

Variants: ``pool`` (warm path), ``cold`` (``cold: true``: the daemon creates the container in the
request), and ``runc run`` (the same workload started with runc directly, see
:mod:`fluidedge.measure.runcbase`). Besides the daemon's phases each sample carries an ``http``
phase: the client's round trip minus the daemon's total, i.e. what HTTP, JSON and the event loop
cost, so that the bar's length is what an API user waits for.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from fluidedge.core.client import ClientError
from fluidedge.measure.analyzer import timing_of
from fluidedge.measure.errors import BenchmarkFailure, MeasureInputError
from fluidedge.measure.replicate import Sample, Trial

VARIANT_POOL = "pool"
VARIANT_COLD = "cold"
VARIANT_RUNC = "runc run"
HTTP_PHASE = "http"
CSV_FIXED = ("variant", "run", "name", "path", "total_ms", "daemon_total_ms", "delete_ms")


class Api(Protocol):
    """What the benchmarks need of :class:`fluidedge.core.client.Client`."""

    def get(self, path: str) -> Any: ...

    def post(self, path: str, json: Any = None) -> Any: ...

    def delete(self, path: str) -> Any: ...


@dataclass(frozen=True, slots=True)
class InstantiateConfig:
    template: str
    runs: int
    variants: tuple[str, ...]
    name_prefix: str
    pool_wait_s: float = 15.0
    wait_ready: bool = True

    def check(self) -> None:
        if self.runs < 1:
            raise MeasureInputError("--runs must be >= 1")
        for variant in self.variants:
            if variant not in (VARIANT_POOL, VARIANT_COLD, VARIANT_RUNC):
                raise MeasureInputError(f"unknown variant {variant!r}")


def default_prefix() -> str:
    """Instance names of one benchmark invocation (unique per process on this host)."""
    return f"bench{os.getpid() % 100000}"


def pool_status(api: Api, template: str) -> dict[str, Any] | None:
    for status in api.get("/v1/pools") or []:
        if isinstance(status, dict) and status.get("template") == template:
            return status
    return None


def wait_pool_quiet(
    api: Api,
    template: str,
    *,
    need_ready: bool,
    timeout_s: float,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> bool:
    """Wait until nothing is being prepared (and one shell is ready if asked); False on timeout.

    Waits for the pool to be full when it can be (``ready >= target``); a template without pool
    (target 0) is quiet at once.
    """
    deadline = clock() + timeout_s
    while True:
        status = pool_status(api, template)
        if status is None:
            return not need_ready
        ready = int(status.get("ready", 0))
        target = int(status.get("target", 0))
        preparing = int(status.get("preparing", 0))
        if preparing == 0 and ready >= target and (ready > 0 or not need_ready):
            return True
        if clock() >= deadline:
            return False
        sleep(0.005)


def _delete_quietly(api: Api, name: str) -> float:
    started = time.perf_counter()
    try:
        api.delete(f"/v1/instances/{name}")
    except ClientError as exc:
        if exc.status != 404:
            raise BenchmarkFailure(f"cannot delete instance {name}: {exc}") from exc
    return (time.perf_counter() - started) * 1000.0


def daemon_trial(api: Api, config: InstantiateConfig) -> Trial:
    """One instantiation through the API (pool or cold), deleted before returning."""

    def trial(variant: str, run: int) -> Sample:
        name = f"{config.name_prefix}-{variant[0]}{run}"
        quiet = wait_pool_quiet(
            api,
            config.template,
            need_ready=variant == VARIANT_POOL,
            timeout_s=config.pool_wait_s,
        )
        body = {
            "name": name,
            "template": config.template,
            "cold": variant == VARIANT_COLD,
            "wait_ready": config.wait_ready,
        }
        view: Any = None
        delete_ms = 0.0
        try:
            started = time.perf_counter()
            try:
                view = api.post("/v1/instances", body)
            except ClientError as exc:
                raise BenchmarkFailure(f"POST /v1/instances {name}: {exc}") from exc
            client_ms = (time.perf_counter() - started) * 1000.0
        finally:
            delete_ms = _delete_quietly(api, name)
        total, phases = timing_of(view)
        if total is None:
            raise BenchmarkFailure(f"response for {name} has no timing breakdown: {view!r}")
        phases[HTTP_PHASE] = max(0.0, client_ms - total)
        return Sample(
            variant,
            run,
            phases,
            total + phases[HTTP_PHASE],  # the client's wait; never below the daemon's total
            {
                "name": name,
                "path": view.get("path") if isinstance(view, dict) else None,
                "daemon_total_ms": total,
                "client_ms": client_ms,
                "delete_ms": delete_ms,
                "pool_quiet": quiet,
            },
        )

    return trial


def sample_row(sample: Sample) -> dict[str, Any]:
    """One CSV row: fixed columns, then one column per phase (``<phase>_ms``)."""
    row: dict[str, Any] = {
        "variant": sample.variant,
        "run": sample.run,
        "name": sample.meta.get("name", ""),
        "path": sample.meta.get("path", ""),
        "total_ms": sample.total_ms,
        "daemon_total_ms": sample.meta.get("daemon_total_ms", ""),
        "delete_ms": sample.meta.get("delete_ms", ""),
    }
    for phase, value in sample.phases_ms.items():
        row[f"{phase}_ms"] = value
    return row


def csv_columns(phases: list[str]) -> list[str]:
    return [*CSV_FIXED, *(f"{phase}_ms" for phase in phases)]
