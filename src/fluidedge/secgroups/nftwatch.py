"""Wake the rules' check the moment a table of ours is deleted from outside.

The part checks every ``check_interval_s`` (1 s) that the networks' tables are still in the
kernel (:meth:`fluidedge.secgroups.driver.FirewallDriver.heal`); between two checks, ports whose
tables someone deleted (``nft flush ruleset``, as ``systemctl restart nftables`` runs it) are
unfiltered. The kernel tells every listener of a table's deletion at once: one ``nft monitor
destroy tables`` per namespace with networks of ours reports it, and :class:`NftWatch` calls
``on_loss`` from its reader thread, so the tables are back within milliseconds. The periodic
check stays: it also sees the bridge knobs set to 0 (no event) and covers a watcher that died
(restarted at the next :meth:`NftWatch.watch`).

Our own changes never delete a table of ours except when a network goes (its binding, and so
its watcher's reason, goes with it); a spurious wake-up costs one check that finds nothing.
"""

from __future__ import annotations

import contextlib
import logging
import subprocess
import threading
from collections.abc import Callable, Iterable
from pathlib import Path

from fluidedge.linux.proc import netns_argv
from fluidedge.secgroups.nft import TABLE_PREFIX

log = logging.getLogger("fluidedge.secgroups")

NETNS_DIR = Path("/run/netns")


def ours_deleted(line: str) -> bool:
    """Is this ``nft monitor destroy tables`` line the deletion of one of our tables? Pure."""
    words = line.split()
    return (
        len(words) == 4 and words[:2] == ["delete", "table"] and words[3].startswith(TABLE_PREFIX)
    )


class _Watcher:
    """One ``nft monitor`` in one namespace and the thread that reads it."""

    def __init__(self, netns: str | None, on_loss: Callable[[], object]) -> None:
        self.netns = netns
        self._on_loss = on_loss
        self.process = subprocess.Popen(
            netns_argv(netns, ["nft", "monitor", "destroy", "tables"]),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        self.thread = threading.Thread(
            target=self._read, name=f"nft-monitor-{netns or 'host'}", daemon=True
        )
        self.thread.start()

    def _read(self) -> None:
        stdout = self.process.stdout
        if stdout is None:
            return
        with stdout:  # closed here, at the end of the monitor's output
            for line in stdout:
                if ours_deleted(line):
                    try:
                        self._on_loss()
                    except Exception as exc:  # the periodic check tries again and logs it
                        log.debug("secgroups: the check woken by nft monitor failed: %s", exc)

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, *, join: bool = True) -> None:
        """End the monitor; its reader ends at the pipe's end (``join``: wait for it; not
        from :meth:`NftWatch.watch`, whose caller may hold the lock a woken check waits for)."""
        with contextlib.suppress(ProcessLookupError):
            self.process.terminate()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        if join:
            self.thread.join(timeout=5)


class NftWatch:
    """``nft monitor`` per namespace of :meth:`watch`, calling ``on_loss`` (from a reader
    thread) when a table of ours is deleted there."""

    def __init__(self, on_loss: Callable[[], object]) -> None:
        self._on_loss = on_loss
        self._lock = threading.Lock()
        self._watchers: dict[str | None, _Watcher] = {}

    def watch(self, namespaces: Iterable[str | None]) -> None:
        """Watch exactly ``namespaces`` (a named one that no longer exists is not: a monitor
        inside would keep it alive); a watcher that died is started again."""
        wanted = {ns for ns in namespaces if ns is None or (NETNS_DIR / ns).exists()}
        with self._lock:
            for netns in list(self._watchers):
                watcher = self._watchers[netns]
                if netns not in wanted or not watcher.alive():
                    del self._watchers[netns]
                    watcher.stop(join=False)
            for netns in wanted - set(self._watchers):
                try:
                    self._watchers[netns] = _Watcher(netns, self._on_loss)
                except OSError as exc:  # no nft: the periodic check still runs
                    log.warning("secgroups: cannot watch nftables in %s: %s", netns, exc)

    def watched(self) -> set[str | None]:
        with self._lock:
            return {ns for ns, w in self._watchers.items() if w.alive()}

    def close(self) -> None:
        with self._lock:
            watchers, self._watchers = list(self._watchers.values()), {}
        for watcher in watchers:
            watcher.stop()
