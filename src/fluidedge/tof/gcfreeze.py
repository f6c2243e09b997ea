"""Keep the data plane's long-lived objects out of CPython's full (generation 2) collections.

A full collection traverses every tracked object that is not frozen, and stops every thread
(the GIL) while it does: with 100,000 UEs (a ``Bearer``, its ``deque``, its ``usage`` dict, a
``Usage`` and a ``Flow`` each) that was 370-460 ms without a packet processed
(docs/accounting.md, "Tuning the collector"). CPython runs one whenever the objects that
survived into the oldest generation since the last one exceed a quarter of those it kept then,
which a period boundary (100,000 records closed and reopened) always does.

:class:`Freezer` runs in the data-plane thread's tick (a quiet point, under the data plane's
lock): once the data plane has allocated :attr:`Freezer.batch` objects of its own since the
last time (bearers learned, flows created, usage records opened and closed), it runs
``gc.collect()`` (which only traverses what is not frozen yet: the objects of the last batch
and the rest of the process's young objects, a few ms) and ``gc.freeze()``: the survivors move
to the permanent generation, which no collection traverses. Frozen objects are still freed by
reference counting when the last reference goes; what the collector would reclaim among them
(a reference cycle) is never reclaimed. So this is only safe for state without reference
cycles: the pipeline's per-UE state holds none (a ``Usage`` does not refer back to its bearer;
tests/unit/tof/test_gcfreeze.py checks that a run of learn/offload/report/retire is freed by
reference counting alone). The collection right before each freeze reclaims the cycles that
are garbage by then, so what can leak is only an object of another thread that is alive at a
freeze and becomes part of a garbage cycle later; :attr:`Freezer.frozen` (the permanent
generation's size, in the data plane's I/O counters) shows whether that grows beyond the data
plane's own state, and :meth:`Freezer.release` unfreezes everything when the data plane stops.
To bound such a leak in a daemon that runs for months, every :attr:`Freezer.full_every`
seconds (default an hour) the tick unfreezes everything and runs one full collection before
freezing again: one full-length pause an hour instead of one at every period boundary and
every few thousand bearers learned.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable

__all__ = ["Freezer"]


class Freezer:
    """``gc.collect(); gc.freeze()`` every :attr:`batch` objects the data plane allocated."""

    def __init__(
        self,
        batch: int = 5000,
        full_every: float = 3600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.batch = batch
        self.full_every = full_every
        self._clock = clock
        self._last = 0  # the allocation count at the last freeze
        self._last_full = clock()
        self.full_collections = 0  # unfreeze + full collection (the leak bound)
        self.freezes = 0
        self.frozen = 0  # objects in the permanent generation after the last freeze
        self.longest = 0.0  # the longest collect + freeze, seconds

    def tick(self, allocated: int) -> bool:
        """Collect and freeze if ``allocated`` (a running count of the data plane's long-lived
        allocations) grew by :attr:`batch` since the last freeze, or at the first tick (the
        process's start-up heap, before traffic); whether it did."""
        now = self._clock()
        full = self.freezes > 0 and now - self._last_full >= self.full_every
        if allocated - self._last < self.batch and self.freezes and not full:
            return False
        self._last = allocated
        start = time.perf_counter()
        if full:  # reclaim what became cyclic garbage among the frozen objects
            self._last_full = now
            self.full_collections += 1
            gc.unfreeze()
        gc.collect()
        gc.freeze()
        self.longest = max(self.longest, time.perf_counter() - start)
        self.freezes += 1
        self.frozen = gc.get_freeze_count()
        return True

    def release(self) -> None:
        """Unfreeze everything (the data plane stopped): what became garbage among the frozen
        objects (a dropped pipeline and its backend hold cycles of their own) is collectable
        again."""
        if self.freezes:
            gc.unfreeze()
            self.frozen = 0
