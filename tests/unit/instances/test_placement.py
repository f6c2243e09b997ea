"""Placement and admission control (pure)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fluidedge.instances.errors import AdmissionRefused
from fluidedge.instances.placement import (
    Capacity,
    Placed,
    Request,
    cpu_loads,
    cpuset_text,
    parse_cpuset,
    place,
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


def test_cpuset_round_trip() -> None:
    assert parse_cpuset("0-3,6\n") == (0, 1, 2, 3, 6)
    assert cpuset_text((3, 1)) == "1,3"


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
