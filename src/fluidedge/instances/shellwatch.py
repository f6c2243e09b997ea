"""Notice at once when a pooled shell's launcher exits, without polling.

A shell waits in its pool for a request, possibly for hours. If its launcher dies meanwhile
(an OOM kill, an operator's ``kill``, its container torn down under it), the pool must not
hand it to a request, and should be refilled. Instead of a periodic ``/proc`` sweep (which
would wake the otherwise event-driven prepare workers every period), one thread waits on a
descriptor per pooled launcher (:meth:`~fluidedge.instances.shell.ShellIO.exit_fd`: a pidfd,
``pidfd_open(2)``, Linux 5.3, readable when the process exits) and calls ``on_exit(shell_id)``.

The manager still checks a shell's liveness when it takes one (a launcher can die between the
exit notice and the take): :meth:`ShellWatch.take` polls the shell's pidfd once as it stops
watching it. This watch is what heals the pool meanwhile.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import selectors
import threading
from collections.abc import Callable

log = logging.getLogger("fluidedge.instances")


class ShellWatch:
    """pidfds of pooled launchers, and the thread that waits on them."""

    def __init__(self, on_exit: Callable[[str], None]) -> None:
        self._on_exit = on_exit
        self._lock = threading.Lock()
        self._fds: dict[str, int] = {}  # shell id -> pidfd
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        self._thread: threading.Thread | None = None
        self._stopping = False

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="fe-shellwatch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping = True
        self._poke()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        with self._lock:
            for fd in self._fds.values():
                with contextlib.suppress(KeyError, ValueError):
                    self._selector.unregister(fd)
                os.close(fd)
            self._fds.clear()
        self._selector.close()
        os.close(self._wake_r)
        os.close(self._wake_w)

    def watch(self, shell_id: str, fd: int) -> None:
        """Report ``shell_id`` when ``fd`` (which the watch now owns) becomes readable."""
        with self._lock:
            old = self._fds.pop(shell_id, None)
            if old is not None:
                self._selector.unregister(old)
                os.close(old)
            self._fds[shell_id] = fd
            self._selector.register(fd, selectors.EVENT_READ, shell_id)
        self._poke()

    def _drop(self, shell_id: str) -> int | None:
        """Stop watching ``shell_id``; its descriptor (now the caller's to close), if any."""
        with self._lock:
            fd = self._fds.pop(shell_id, None)
            if fd is not None:
                self._selector.unregister(fd)
            return fd

    def unwatch(self, shell_id: str) -> None:
        """Stop watching (the shell was destroyed)."""
        fd = self._drop(shell_id)
        if fd is not None:
            os.close(fd)

    def take(self, shell_id: str) -> bool | None:
        """Stop watching a shell a request takes; whether its launcher still runs (its
        descriptor not readable: one ``poll``, where a ``/proc`` read costs an open, a read of
        a formatted status line and a close), or None when it was not watched."""
        fd = self._drop(shell_id)
        if fd is None:
            return None
        try:
            poller = select.poll()
            poller.register(fd, select.POLLIN)
            return not poller.poll(0)
        finally:
            os.close(fd)

    def watched(self) -> set[str]:
        with self._lock:
            return set(self._fds)

    def _poke(self) -> None:
        with contextlib.suppress(BlockingIOError):
            os.write(self._wake_w, b"x")

    def _run(self) -> None:
        while not self._stopping:
            events = self._selector.select()
            exited: list[str] = []
            for key, _mask in events:
                if key.data is None:
                    with contextlib.suppress(BlockingIOError):
                        os.read(self._wake_r, 4096)
                    continue
                shell_id = str(key.data)
                with self._lock:
                    fd = self._fds.get(shell_id)
                    if fd != key.fd:
                        continue  # unwatched (or re-watched) meanwhile
                    del self._fds[shell_id]
                    self._selector.unregister(fd)
                    os.close(fd)
                exited.append(shell_id)
            for shell_id in exited:
                try:
                    self._on_exit(shell_id)
                except Exception:  # the watch must outlive any one report
                    log.exception("instances: handling the exit of shell %s", shell_id)
