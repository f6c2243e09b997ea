"""What a TOF data-plane backend implements, and how one is chosen.

The control agent (:mod:`fluidedge.tof.part`) only talks to this interface, so the userspace
reference backend (:mod:`fluidedge.tof.userspace`) and a faster one (e.g. OVS flows compiled
from the same state) are interchangeable, chosen by ``backend = "..."`` in ``[tof]``. A backend
must reproduce the behaviour of :class:`fluidedge.tof.pipeline.Pipeline` exactly; the
pipeline's unit tests are its specification.

Contract:

- ``start()`` opens the ports; it raises :class:`~fluidedge.tof.errors.DataPlaneError` if it
  cannot. ``stop()`` closes them and removes everything ``start()`` created.
- ``apply(services)`` installs the complete service set atomically: when it returns, every
  packet processed afterwards sees the new set (Figure 17 steps 2-5); when it raises, the old
  set is still in force.
- ``tunnels()``, ``stats()``, ``events()`` (the bounded bearer event log) are consistent
  snapshots; ``purge()`` forgets learned tunnels.
- Optionally (:class:`PagedTunnels`), ``tunnel_page()``: one page of the tunnels, consistent.
- Optionally (:class:`KeysetTunnels`), ``tunnels_after()``: one keyset page of the tunnels
  (``GET /tunnels?limit=&after=``), consistent, building only its rows; :func:`tunnels_after`
  cuts the page from ``tunnels()`` for a backend without it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol, TypeVar, runtime_checkable

from fluidedge.core.paging import keyset_page
from fluidedge.tof.accounting.usage import Accountant
from fluidedge.tof.config import TofConfig
from fluidedge.tof.errors import TofConfigError
from fluidedge.tof.intercept.sink import Mirror
from fluidedge.tof.models import Service
from fluidedge.tof.pipeline import Bearer, Pipeline
from fluidedge.tof.superfluid.plane import OnDemandControl
from fluidedge.tof.tunnel_pages import row_marker

T = TypeVar("T")


class Backend(Protocol):
    """A TOF data plane."""

    name: str

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def apply(self, services: Mapping[str, Service]) -> None: ...

    def tunnels(self) -> list[dict[str, object]]: ...

    def stats(self) -> dict[str, object]: ...

    def events(self) -> list[dict[str, object]]: ...

    def purge(self) -> int: ...


class Accounted(Protocol):
    """Optional: per-UE usage records (docs/accounting.md), read and drained under the lock."""

    def with_accounting(self, call: Callable[[Accountant], T]) -> T | None: ...

    def rate_limited(
        self, ue: bytes | None, service: str | None
    ) -> list[dict[str, object]] | None: ...


class PagedTunnels(Protocol):
    """Optional: a page of the learned tunnels without building all of them (web GUI)."""

    def tunnel_page(
        self, keep: Callable[[Bearer], bool] | None, offset: int, limit: int
    ) -> tuple[int, list[dict[str, object]]]: ...


@runtime_checkable
class KeysetTunnels(Protocol):
    """Optional: a keyset page of the learned tunnels (``GET /tunnels?limit=N&after=MARKER``,
    :mod:`fluidedge.tof.tunnel_pages`), consistent, without building the other rows.

    A sibling of :class:`PagedTunnels`, not more of it: the GUI's numbered pages need offsets
    and a count, an API client walking a table that changes needs markers."""

    def tunnels_after(
        self, after: str | None, limit: int | None
    ) -> tuple[list[dict[str, object]], str | None]: ...


def tunnels_after(
    backend: Backend, after: str | None, limit: int | None
) -> tuple[list[dict[str, object]], str | None]:
    """``(rows, next marker)``: the backend's keyset page; for a backend without
    :class:`KeysetTunnels`, the same page cut from all its rows (the same answer, at the cost
    of the whole list)."""
    if isinstance(backend, KeysetTunnels):
        return backend.tunnels_after(after, limit)
    return keyset_page(backend.tunnels(), row_marker, after, limit)


class NullBackend(OnDemandControl):
    """No ports: the pipeline's state only (``backend = "none"``; API-only daemons and tests).

    On-demand services work on its state (bindings, queues): released packets go nowhere.
    """

    name = "none"

    def __init__(self, config: TofConfig) -> None:
        self.pipeline = Pipeline(config)
        self._lock = threading.Lock()

    def start(self) -> None:
        return None

    def stop(self) -> None:
        return None

    def apply(self, services: Mapping[str, Service]) -> None:
        self.pipeline.set_services(services)

    def tunnels(self) -> list[dict[str, object]]:
        return self.pipeline.tunnels()

    def tunnel_page(
        self, keep: Callable[[Bearer], bool] | None, offset: int, limit: int
    ) -> tuple[int, list[dict[str, object]]]:
        return self.pipeline.tunnel_page(keep, offset, limit)

    def tunnels_after(
        self, after: str | None, limit: int | None
    ) -> tuple[list[dict[str, object]], str | None]:
        # Under the lock on-demand control (OnDemandControl) changes the pipeline with, from
        # other threads: a page walks the whole bearer table.
        with self._lock:
            return self.pipeline.tunnels_after(after, limit)

    def stats(self) -> dict[str, object]:
        return self.pipeline.stats()

    def events(self) -> list[dict[str, object]]:
        return self.pipeline.bearer_events()

    def purge(self) -> int:
        return self.pipeline.purge_all()

    def set_mirrors(self, mirrors: Sequence[Mirror]) -> None:
        """Lawful-intercept mirrors: the complete set (see DataPlaneBase.set_mirrors)."""
        table = {m.target.ue: m for m in mirrors}
        with self._lock:
            self.pipeline.mirrors = table

    def with_accounting(self, call: Callable[[Accountant], T]) -> T | None:
        """``call(accountant)`` under the data plane's lock; None when accounting is off."""
        with self._lock:
            accounting = self.pipeline.accounting
            return None if accounting is None else call(accounting)

    def rate_limited(self, ue: bytes | None, service: str | None) -> list[dict[str, object]] | None:
        """Per UE and service: what the rate limits dropped (None: no limit configured)."""
        with self._lock:
            limiter = self.pipeline.ratelimit
            return None if limiter is None else limiter.rows(ue, service)


def create_backend(config: TofConfig) -> Backend:
    """The backend named by ``config.backend``."""
    if config.backend == "none":
        return NullBackend(config)
    if config.backend == "userspace":
        from fluidedge.tof.userspace import UserspaceBackend  # noqa: PLC0415 - needs Linux

        return UserspaceBackend(config)
    if config.backend == "fastpath":
        from fluidedge.tof.fastpath.backend import (  # noqa: PLC0415 - needs clang/bpf
            create_fastpath_backend,
        )

        return create_fastpath_backend(config)
    raise TofConfigError(f"[tof] unknown backend {config.backend!r}")
