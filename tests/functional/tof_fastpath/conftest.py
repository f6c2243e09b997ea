"""The running agent both backends' scenarios share."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from fluidedge.tof.fastpath.backend import FastPathBackend
from fluidedge.tof.models import Service
from fluidedge.tof.userspace import UserspaceBackend

from .scenario import SVC, Backend, config
from .topo import APP_IP, Topo, topology


@pytest.fixture(params=["userspace", "fastpath"])
def running(request: pytest.FixtureRequest) -> Iterator[tuple[Topo, Backend, str]]:
    """(topology, started backend with service ``web``, backend kind), on each backend."""
    kind = str(request.param)
    with topology("r" + kind[0]) as t:
        cfg = config(t).model_copy(update={"pinger_interval": 5.0})
        backend: Backend = FastPathBackend(cfg) if kind == "fastpath" else UserspaceBackend(cfg)
        backend.start()
        try:
            backend.apply({"web": Service("web", SVC, APP_IP)})
            yield t, backend, kind
        finally:
            backend.stop()
