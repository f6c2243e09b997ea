"""What ``/proc`` says about a process: is it running, what is it.

One place for the liveness test that the instance manager (its instances, its launcher, its
readiness), the Open vSwitch and OVN daemon keepers and the demo all use. ``kill(pid, 0)``
is not that test: it succeeds on a zombie, and a daemon killed under a parent that does not
reap (a container whose pid 1 is ``sleep``) stays one for good. Each read is one ``os.read``
of the bytes: every instance view calls :func:`process_running`, and a text-mode ``open``
costs three times as much in Python objects.
"""

from __future__ import annotations

import os

# States of ``/proc/<pid>/stat`` that are not a running process: a zombie (``Z``), and dead
# (``X``, seen only for an instant while the kernel releases the task).
_GONE_STATES = (b"Z", b"X")


def proc_bytes(pid: int, name: str, size: int) -> bytes | None:
    """The first ``size`` bytes of ``/proc/<pid>/<name>`` (None when it cannot be read)."""
    try:
        fd = os.open(f"/proc/{pid}/{name}", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        return os.read(fd, size)
    except OSError:
        return None
    finally:
        os.close(fd)


def stat_state(stat: bytes) -> bytes | None:
    """The state letter of a ``/proc/<pid>/stat`` line. It follows the command name in
    parentheses, which may itself hold ``") "``, so the last ``)`` is the one."""
    state = stat.rpartition(b")")[2].split()[:1]
    return state[0] if state else None


def process_running(pid: int) -> bool:
    """True if ``pid`` exists and is neither a zombie nor dead."""
    if pid <= 0:
        return False
    stat = proc_bytes(pid, "stat", 4096)
    if stat is None:
        return False
    state = stat_state(stat)
    return state is not None and state not in _GONE_STATES
