"""Which of our veths were deleted from outside since the last look.

Why: an instance's veth deleted (``ip link del``, a tool that removes links it does not know,
a tenant with ``CAP_NET_ADMIN`` deleting its own end: either end takes the pair) cuts the
instance off its network for good, and nothing else notices it. The instances part looks every
``switch_check_interval_s`` (:meth:`fluidedge.instances.manager.Manager.revive_veths`, which
makes them again).

The look costs one non-blocking ``recv`` per namespace when nothing was deleted: the kernel's
announcements (:class:`fluidedge.instances.linkwatch.LinkWatch`) name what went, and only
those names are asked for. A namespace looked at for the first time, or whose announcements
overflowed, is listed once instead (every link of ours in it may have gone unannounced).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable

from fluidedge.instances import network
from fluidedge.instances.errors import RuntimeFailure
from fluidedge.instances.linkwatch import LinkWatch, list_links

__all__ = ["VethLooker"]

log = logging.getLogger(__name__)

CARRIED = 5  # looks a deletion of a name not (yet) ours is kept for


class VethLooker:
    """The kernel's link announcements of each namespace our veths are in, and what they say
    of ours.

    A deletion announced for a name that is not ours yet (a shell between its plug and the
    pool, an instance between its take and its record) is kept for :data:`CARRIED` more looks,
    in case it becomes ours: otherwise read once and dropped, it would never be looked at."""

    def __init__(self) -> None:
        self._watches: dict[str | None, LinkWatch] = {}
        self._carried: dict[str | None, dict[str, int]] = {}  # name -> looks left
        self._lock = threading.Lock()

    def missing(self, veths: Iterable[tuple[str | None, str]]) -> set[tuple[str | None, str]]:
        """Of ``veths`` ((namespace, host end) of ours), those deleted since the last calls
        and absent now."""
        by_netns: dict[str | None, set[str]] = {}
        for netns, name in veths:
            by_netns.setdefault(netns, set()).add(name)
        out: set[tuple[str | None, str]] = set()
        with self._lock:
            for netns, names in by_netns.items():
                deleted = self._deleted(netns)
                if deleted is None:  # anything may have gone: one listing of the namespace
                    present = list_links(netns)
                    if present is None:  # the namespace itself is gone: not ours to judge
                        continue
                    out.update((netns, n) for n in names - present)
                    continue
                out.update((netns, n) for n in names & deleted if not network.link_exists(netns, n))
                self._carry(netns, deleted - names)
        return out

    def _deleted(self, netns: str | None) -> set[str] | None:
        """What the namespace announced deleted, with the names carried from the last looks
        (None: unknown, look at everything)."""
        watch = self._watches.get(netns)
        if watch is None:
            try:
                self._watches[netns] = LinkWatch(netns)
            except RuntimeFailure as exc:  # its namespace gone: looked at every time
                log.debug("instances: %s", exc)
            return None
        try:
            drained = watch.drain()
        except RuntimeFailure as exc:  # a socket error or an announcement not understood
            log.warning("instances: %s; opened again", exc)
            watch.close()
            del self._watches[netns]
            return None
        if drained is None:
            self._carried.pop(netns, None)
            return None
        return drained | set(self._carried.get(netns, {}))

    def _carry(self, netns: str | None, unmatched: set[str]) -> None:
        carried = self._carried.get(netns, {})
        kept = {n: carried.get(n, CARRIED + 1) - 1 for n in unmatched}
        self._carried[netns] = {n: left for n, left in kept.items() if left > 0}

    def close(self) -> None:
        with self._lock:
            for watch in self._watches.values():
                watch.close()
            self._watches.clear()
            self._carried.clear()
