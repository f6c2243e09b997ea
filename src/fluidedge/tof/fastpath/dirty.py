"""Which pipeline entries changed since the last sync: the fast path's dirty set.

WHY: re-projecting the whole pipeline after every change costs O(N) per change (O(N^2) under
flow churn at 100,000 bearers). The agent instead wraps the pipeline's four tables in
:class:`Tracked` dicts, which report every insert, replace and removal (with the old value, so a
removed tunnel key still names its bearer); the sync then recomputes only the touched keys with
the same per-key projections :func:`~fluidedge.tof.fastpath.layout.project` is built from. A
``clear()`` (purge) asks for one full projection instead.

A service change re-projects the flows of the services it changed only: the tracker keeps an
index service name -> flow keys (and -> (app, UE) pair keys), which the pipeline uses as its
:class:`~fluidedge.tof.pipeline.ServiceIndex` to drop a changed service's stale flows without a
scan, and the agent to mark that service's remaining flows dirty (:meth:`Dirty.service_changed`).

The pipeline is unchanged: it only sees dicts. Bearer fields the projection reads change
together with a table write (``_set_tunnel`` stores the bearer after updating it), except the
reply queue; bearers held back by a non-empty queue are kept in :attr:`Dirty.held` and looked
at again on every sync until their entry is written.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from fluidedge.tof.pipeline import Bearer, Flow, Pipeline

K = TypeVar("K")
V = TypeVar("V")
_MISSING: Any = object()


class Tracked(dict[K, V]):
    """A dict that calls ``on_change(key, old, new)`` after every mutation (None = absent)
    and ``on_clear()`` after ``clear()``."""

    __slots__ = ("on_change", "on_clear")

    def __init__(
        self,
        data: Mapping[K, V],
        on_change: Callable[[K, V | None, V | None], None],
        on_clear: Callable[[], None],
    ) -> None:
        super().__init__(data)
        self.on_change = on_change
        self.on_clear = on_clear

    def __setitem__(self, key: K, value: V) -> None:
        old = dict.get(self, key)
        dict.__setitem__(self, key, value)
        self.on_change(key, old, value)

    def __delitem__(self, key: K) -> None:
        old = dict.__getitem__(self, key)
        dict.__delitem__(self, key)
        self.on_change(key, old, None)

    def pop(self, key: K, default: Any = _MISSING) -> Any:
        if key not in self:
            if default is _MISSING:
                raise KeyError(key)
            return default
        old = dict.pop(self, key)
        self.on_change(key, old, None)
        return old

    def popitem(self) -> tuple[K, V]:
        key, old = dict.popitem(self)
        self.on_change(key, old, None)
        return key, old

    def setdefault(self, key: K, default: Any = None) -> Any:
        if key in self:
            return dict.__getitem__(self, key)
        self[key] = default
        return default

    def update(self, *args: Any, **kwargs: Any) -> None:
        for key, value in dict(*args, **kwargs).items():
            self[key] = value

    def clear(self) -> None:
        dict.clear(self)
        self.on_clear()


@dataclass
class Dirty:
    """Keys to re-project: tunnel keys, bearer keys (downlink entries), flow keys."""

    tunnels: set[bytes] = field(default_factory=set)
    bearers: set[tuple[bytes, bytes, bytes]] = field(default_factory=set)
    flows: set[tuple[int, bytes, int, bytes, int]] = field(default_factory=set)
    held: set[tuple[bytes, bytes, bytes]] = field(default_factory=set)  # waiting on a queue
    # Tunnel keys removed or given to another bearer since the last sync -> the bearer (and
    # direction, True = uplink) the kernel entry counted for, so its counters are folded into
    # that bearer, not lost or credited to the key's new owner.
    replaced: dict[bytes, tuple[Bearer, bool]] = field(default_factory=dict)
    full: bool = True  # the next sync projects everything (start, purge)
    # Service name -> its flows' keys and its (app, UE) pairs' keys, as the tables hold them.
    by_service: dict[str, set[tuple[int, bytes, int, bytes, int]]] = field(default_factory=dict)
    pairs_by_service: dict[str, set[tuple[bytes, bytes]]] = field(default_factory=dict)

    def flows_of(self, service: str) -> set[tuple[int, bytes, int, bytes, int]]:
        return self.by_service.get(service, set())

    def pairs_of(self, service: str) -> set[tuple[bytes, bytes]]:
        return self.pairs_by_service.get(service, set())

    def service_changed(self, services: set[str]) -> None:
        """Re-project the flows of ``services`` at the next sync (their entries depend on
        the service's slot and mapping; the pipeline already dropped the stale ones)."""
        for name in services:
            self.flows |= self.by_service.get(name, set())

    def take(
        self,
    ) -> tuple[
        set[bytes], set[tuple[bytes, bytes, bytes]], set[tuple[int, bytes, int, bytes, int]]
    ]:
        """The dirty keys so far (held bearers included), and a clean set for what follows."""
        out = (self.tunnels, self.bearers | self.held, self.flows)
        self.tunnels, self.bearers, self.flows = set(), set(), set()
        return out

    def pending(self) -> bool:
        return bool(self.full or self.tunnels or self.bearers or self.flows or self.held)


def track(pipeline: Pipeline) -> Dirty:
    """Wrap ``pipeline``'s tables so that every change lands in the returned :class:`Dirty`."""
    dirty = Dirty()

    def full() -> None:
        dirty.full = True

    def tunnel(uplink: bool) -> Callable[[bytes, Bearer | None, Bearer | None], None]:
        def changed(key: bytes, old: Bearer | None, new: Bearer | None) -> None:
            dirty.tunnels.add(key)
            if old is not None and old is not new:
                dirty.replaced.setdefault(key, (old, uplink))  # the first: the installed one
            for bearer in (old, new):
                if bearer is not None:
                    dirty.bearers.add(bearer.key)

        return changed

    def bearer(key: tuple[bytes, bytes, bytes], _old: Bearer | None, _new: Bearer | None) -> None:
        dirty.bearers.add(key)

    def index(by: dict[str, set[Any]], key: Any, old: Flow | None, new: Flow | None) -> None:
        if old is not None and (new is None or new.service != old.service):
            keys = by.get(old.service)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del by[old.service]
        if new is not None:
            by.setdefault(new.service, set()).add(key)

    def flow(key: tuple[int, bytes, int, bytes, int], old: Flow | None, new: Flow | None) -> None:
        dirty.flows.add(key)
        index(dirty.by_service, key, old, new)

    def flows_cleared() -> None:
        dirty.full = True
        dirty.by_service.clear()

    def pair(key: tuple[bytes, bytes], old: Flow | None, new: Flow | None) -> None:
        index(dirty.pairs_by_service, key, old, new)

    pipeline.up = Tracked(pipeline.up, tunnel(True), full)
    pipeline.down = Tracked(pipeline.down, tunnel(False), full)
    pipeline.bearers = Tracked(pipeline.bearers, bearer, full)
    pipeline.flows = Tracked(pipeline.flows, flow, flows_cleared)
    pipeline.pairs = Tracked(pipeline.pairs, pair, dirty.pairs_by_service.clear)
    for fkey, value in pipeline.flows.items():  # what the tables held before tracking
        index(dirty.by_service, fkey, None, value)
    for pkey, value in pipeline.pairs.items():
        index(dirty.pairs_by_service, pkey, None, value)
    pipeline.service_index = dirty
    return dirty
