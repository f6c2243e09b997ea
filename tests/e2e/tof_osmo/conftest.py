"""The osmo-flavour lab (sgsnemu UEs, osmo-ggsn core) in tof mode with a real ``fluidedge
serve`` running the TOF between them, on both data-plane backends."""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from fluidedge.lab.lab import Lab
from tests.e2e.tof.conftest import TofEnv, start_tof, tear_down, tof_section
from tests.fixtures.daemon import DaemonFactory

_COUNTER = itertools.count()

OsmoEnvFactory = Callable[..., TofEnv]


@pytest.fixture(params=["userspace", "fastpath"])
def osmo_env(
    daemon_factory: DaemonFactory, request: pytest.FixtureRequest
) -> Iterator[OsmoEnvFactory]:
    """``osmo_env(**tof_overrides)``: osmo lab up in tof mode (its UEs attached across a bridge
    that ``up`` then removes) + daemon with the TOF on its host namespace; every UE reaches the
    PDN through the TOF before the test starts."""
    backend: str = request.param
    made: list[TofEnv] = []
    labs: list[Lab] = []

    def factory(**tof: Any) -> TofEnv:
        prefix = f"os{os.getpid() % 100000}{next(_COUNTER)}"
        lab = Lab.up(prefix=prefix, mode="tof", flavour="osmo")
        labs.append(lab)
        env = start_tof(lab, daemon_factory, tof_section(lab, backend, **tof))
        made.append(env)
        for ue in lab.ues:
            assert env.ping(ue, str(lab.pdn_address)), f"{ue} cannot reach the PDN via the TOF"
        return env

    try:
        yield factory
    finally:
        tear_down(made, labs)
