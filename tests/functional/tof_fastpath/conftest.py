"""The running agent both backends' scenarios share."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest

from fluidedge.tof.fastpath.backend import FastPathBackend
from fluidedge.tof.models import Service
from fluidedge.tof.userspace import UserspaceBackend

from .scenario import SVC, Backend, config
from .topo import APP_IP, Topo, topology


@contextlib.contextmanager
def _started(kind: str, tag: str, **update: object) -> Iterator[tuple[Topo, Backend, str]]:
    with topology(tag) as t:
        cfg = config(t).model_copy(update={"pinger_interval": 5.0, **update})
        backend: Backend = FastPathBackend(cfg) if kind == "fastpath" else UserspaceBackend(cfg)
        backend.start()
        try:
            backend.apply({"web": Service("web", SVC, APP_IP)})
            yield t, backend, kind
        finally:
            backend.stop()


@pytest.fixture(params=["userspace", "fastpath"])
def running(request: pytest.FixtureRequest) -> Iterator[tuple[Topo, Backend, str]]:
    """(topology, started backend with service ``web``, backend kind), on each backend."""
    kind = str(request.param)
    with _started(kind, "r" + kind[0]) as started:
        yield started


@pytest.fixture(params=["userspace", "fastpath"])
def running_with_apps_side(request: pytest.FixtureRequest) -> Iterator[tuple[Topo, Backend, str]]:
    """:func:`running` with the apps side named: the ``apps`` device toward the app and its
    gateway address (``apps_setup`` is ``auto``: the TOF has a namespace of its own)."""
    kind = str(request.param)
    with _started(
        kind, "a" + kind[0], apps_interface="apps", apps_gateway="198.19.0.1/24"
    ) as started:
        yield started
