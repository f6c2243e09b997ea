"""Placement and admission control (pure)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from fluidedge.instances.config import InstancesConfig, capacity_of
from fluidedge.instances.errors import AdmissionRefused
from fluidedge.instances.placement import (
    Capacity,
    Placed,
    Request,
    Usage,
    cpu_loads,
    place,
    place_with,
)

CAP = Capacity(cpus=(0, 1, 2, 3), memory_mb=1000, cpu_overcommit=1.0)


def test_spread_takes_least_loaded_cpu() -> None:
    placed = [Placed("a", (0,), 0.5, 10), Placed("b", (1,), 0.2, 10)]
    assert place(Request(0.3, 10, "spread"), placed, CAP) == (2,)


def test_pack_fills_the_busiest_cpu_that_still_fits() -> None:
    placed = [Placed("a", (0,), 0.5, 10), Placed("b", (1,), 0.2, 10)]
    assert place(Request(0.3, 10, "pack"), placed, CAP) == (0,)
    assert place(Request(0.6, 10, "pack"), placed, CAP) == (1,)


def test_width_is_ceil_of_the_request() -> None:
    assert len(place(Request(1.5, 10), [], CAP)) == 2


def test_anti_affinity_avoids_labelled_instances_cpus() -> None:
    placed = [Placed("a", (0,), 0.1, 10, {"app": "x"})]
    got = place(Request(0.1, 10, "pack", anti_affinity=["app=x"]), placed, CAP)
    assert 0 not in got


def test_affinity_shares_labelled_instances_cpus() -> None:
    placed = [Placed("a", (3,), 0.1, 10, {"app": "x"})]
    assert place(Request(0.1, 10, "spread", affinity=["app=x"]), placed, CAP) == (3,)


def test_memory_admission_refused_with_reason() -> None:
    placed = [Placed("a", (0,), 0.1, 900)]
    with pytest.raises(AdmissionRefused, match=r"memory: 200 MiB requested but 900 of 1000"):
        place(Request(0.1, 200), placed, CAP)


def test_cpu_admission_refused_with_loads_in_reason() -> None:
    placed = [Placed(f"i{c}", (c,), 0.9, 1) for c in CAP.cpus]
    with pytest.raises(AdmissionRefused, match=r"cpu: .*cpu0=0.900"):
        place(Request(0.2, 1), placed, CAP)


def test_overcommit_allows_more() -> None:
    cap = Capacity(cpus=(0,), memory_mb=1000, cpu_overcommit=3.0)
    placed = [Placed("a", (0,), 2.5, 1)]
    assert place(Request(0.5, 1), placed, cap) == (0,)
    with pytest.raises(AdmissionRefused):
        place(Request(0.6, 1), placed, cap)


def test_more_cpus_than_host_refused() -> None:
    with pytest.raises(AdmissionRefused, match="host has 4"):
        place(Request(5, 1), [], CAP)


@given(st.lists(st.floats(min_value=0.01, max_value=1.0), max_size=30))
def test_admitted_load_never_exceeds_overcommit(requests: list[float]) -> None:
    placed: list[Placed] = []
    for index, cpus in enumerate(requests):
        try:
            got = place(Request(cpus, 1, "pack"), placed, CAP)
        except AdmissionRefused:
            continue
        placed.append(Placed(f"i{index}", got, cpus, 1))
    assert max(cpu_loads(placed, CAP.cpus).values(), default=0) <= 1.0 + 1e-6


@given(
    st.lists(
        st.tuples(
            st.floats(min_value=0.01, max_value=1.0),
            st.sampled_from(["app=x", "app=y", "role=z"]),
            st.booleans(),
        ),
        max_size=25,
    )
)
def test_incremental_usage_matches_a_fresh_scan(ops: list[tuple[float, str, bool]]) -> None:
    usage = Usage.of([], CAP.cpus)
    placed: list[Placed] = []
    for index, (cpus, label, remove) in enumerate(ops):
        key, _, value = label.partition("=")
        try:
            got = place_with(Request(cpus, 1, "pack"), usage, CAP)
        except AdmissionRefused:
            continue
        item = Placed(f"i{index}", got, cpus, 1, {key: value})
        usage.add(item)
        placed.append(item)
        if remove and placed:
            gone = placed.pop(0)
            usage.remove(gone)
    fresh = Usage.of(placed, CAP.cpus)
    assert fresh.committed_mb == usage.committed_mb
    for cpu in CAP.cpus:
        assert abs(fresh.loads[cpu] - usage.loads[cpu]) < 1e-6
    for selector in ("app=x", "app=y", "role=z"):
        assert fresh.cpus_with([selector]) == usage.cpus_with([selector])


def test_placement_cost_does_not_grow_with_instances() -> None:
    import time

    cap = Capacity(cpus=CAP.cpus, memory_mb=10**6)

    def cost(instances: int) -> float:
        """Best of 5 rounds of 200 placements (best-of: other load only adds time)."""
        usage = Usage.of([Placed(f"i{i}", (i % 4,), 0.0001, 1) for i in range(instances)], cap.cpus)
        rounds = []
        for _ in range(5):
            begin = time.perf_counter()
            for _ in range(200):
                place_with(Request(0.0001, 1), usage, cap)
            rounds.append(time.perf_counter() - begin)
        return min(rounds)

    # A ratio measured in one run, not a figure: a scan over the instances would make 1,000x
    # more instances cost ~1,000x more (absolute figures belong in bench/, not here).
    assert cost(20000) < 20 * cost(20)


@pytest.mark.parametrize(
    ("cpus", "why"),
    [("3-1", "runs backwards"), ("0-99999", "beyond any host's"), ("0, 1", "cpus")],
)
def test_a_configured_cpuset_that_is_no_cpu_set_is_refused_at_load(cpus: str, why: str) -> None:
    """``[instances] cpus``: the lax reader made ``3-1`` no CPU at all (every instance then
    refused for a reason far from the typo) and expanded ``0-99999`` in full."""
    with pytest.raises(ValidationError, match=why):
        InstancesConfig.model_validate({"cpus": cpus})
    assert capacity_of(InstancesConfig.model_validate({"cpus": "2-3,1"})).cpus == (1, 2, 3)
