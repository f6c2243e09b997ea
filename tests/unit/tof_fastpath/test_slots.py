"""Service slots (per-service counters and flow stamps in the kernel) are not reused at once."""

from __future__ import annotations

import pytest

from fluidedge.tof.config import TofConfig
from fluidedge.tof.fastpath import layout as L
from fluidedge.tof.fastpath.backend import FastPathBackend
from fluidedge.tof.models import Service


def test_a_deleted_services_slot_is_not_handed_to_the_next_one() -> None:
    backend = FastPathBackend(TofConfig(backend="none"))  # not started: no kernel state
    backend.apply({"a": Service("a", "198.18.50.1", "198.19.0.10")})
    slot_a = backend._slots["a"]
    backend.apply({})
    assert backend._slots == {}
    backend.apply({"b": Service("b", "198.18.50.1", "198.19.0.10")})
    assert backend._slots["b"] != slot_a
    # Names keep their slot across updates (PUT changes the mapping, not the identity).
    slot_b = backend._slots["b"]
    backend.apply({"b": Service("b", "198.18.50.2", "198.19.0.11")})
    assert backend._slots["b"] == slot_b
    backend.apply(
        {
            "b": Service("b", "198.18.50.2", "198.19.0.11"),
            "c": Service("c", "198.18.50.3", "198.19.0.12"),
        }
    )
    assert backend._slots["b"] == slot_b
    assert len(set(backend._slots.values())) == 2
    assert backend.pipeline.services  # the reference pipeline got the set too


def test_slot_allocator_round_robin_keeps_names_and_runs_out_cleanly() -> None:
    alloc = L.SlotAllocator(capacity=3)
    a = alloc.assign({}, ["a", "b"])
    assert a == {"a": 0, "b": 1}
    # "a" deleted, "c" new: "a"'s slot 0 is not reused while slot 2 is free.
    b = alloc.assign(a, ["b", "c"])
    assert b == {"b": 1, "c": 2}
    # Next new name wraps around to the freed slot 0.
    assert alloc.assign(b, ["b", "c", "d"]) == {"b": 1, "c": 2, "d": 0}
    # A name being added while all slots of the current set are held cannot get one.
    with pytest.raises(L.SlotsExhausted):
        alloc.assign({"b": 1, "c": 2, "d": 0}, ["b", "c", "d", "e"])
    # Replacing the whole set still keeps old slots out until it is installed.
    assert alloc.assign({"x": 0, "y": 1}, ["z"]) == {"z": 2}
