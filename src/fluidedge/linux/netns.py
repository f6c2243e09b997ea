"""Network namespaces: create, delete, list, and open sockets inside one.

``setns(2)`` changes the namespace of the calling *thread* only, and a socket keeps the
namespace it was created in. :func:`call_in_netns` uses both facts: it runs a function in a
short-lived thread that has entered the namespace, so a daemon in the root namespace can own
sockets (AF_PACKET, TUN, UDP) in a lab namespace without moving itself.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from fluidedge.errors import InputError, SystemFailure
from fluidedge.linux import libc
from fluidedge.linux.proc import run

NETNS_DIR = Path("/run/netns")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")

T = TypeVar("T")


class NetnsError(SystemFailure):
    """A namespace operation failed."""


def validate_name(name: str) -> str:
    """Return ``name`` if it is a safe namespace name, else raise :class:`InputError`."""
    if not _NAME_RE.match(name):
        raise InputError(f"invalid network namespace name {name!r}")
    return name


def describe(name: str | None) -> str:
    """How logs and errors name namespace ``name`` (None: the daemon's own, the host's)."""
    return "the host's namespace" if name is None else f"namespace {name}"


def exists(name: str) -> bool:
    return (NETNS_DIR / validate_name(name)).exists()


def create(name: str) -> None:
    """Create namespace ``name`` with its loopback up (idempotent)."""
    validate_name(name)
    if not exists(name):
        run(["ip", "netns", "add", name])
    run(["ip", "-n", name, "link", "set", "lo", "up"])


def delete(name: str) -> None:
    """Delete namespace ``name`` if it exists."""
    if exists(name):
        run(["ip", "netns", "delete", name])


def list_names() -> list[str]:
    if not NETNS_DIR.is_dir():
        return []
    return sorted(p.name for p in NETNS_DIR.iterdir())


def call_in_netns(name: str | None, fn: Callable[[], T]) -> T:
    """Call ``fn`` with the calling context inside namespace ``name``; return its result.

    With ``name=None`` ``fn`` runs in the current namespace. Sockets and file descriptors that
    ``fn`` creates stay bound to ``name``'s namespace after it returns.
    """
    if name is None:
        return fn()
    path = NETNS_DIR / validate_name(name)
    if not path.exists():
        raise NetnsError(f"network namespace {name!r} does not exist")
    return _call_at(path, fn, f"netns-{name}")


def call_in_netns_of(pid: int, fn: Callable[[], T]) -> T:
    """:func:`call_in_netns` for the (unnamed) network namespace of process ``pid``."""
    if pid <= 0:
        raise InputError(f"invalid pid {pid}")
    path = Path(f"/proc/{pid}/ns/net")
    if not path.exists():
        raise NetnsError(f"process {pid} does not exist")
    return _call_at(path, fn, f"netns-pid{pid}")


def call_in_netns_at(path: str | Path, fn: Callable[[], T]) -> T:
    """:func:`call_in_netns` for the namespace at ``path`` (``/proc/PID/ns/net``, a bind
    mount), for callers that handle the host's errors as :class:`OSError`: one that cannot be
    entered raises it with its errno kept and the path named."""

    def failed(where: Path, exc: OSError) -> OSError:
        return OSError(exc.errno, f"setns({where}): {exc.strerror}")

    return _call_at(Path(path), fn, "fe-netns", failed)


def _netns_error(where: Path, exc: OSError) -> NetnsError:
    return NetnsError(f"setns({where}) failed: {exc.strerror}")


def _call_at(
    path: Path,
    fn: Callable[[], T],
    thread_name: str,
    failed: Callable[[Path, OSError], BaseException] = _netns_error,
) -> T:
    """Run ``fn`` in a short-lived thread that entered the namespace at ``path``; an error of
    entering it is raised as ``failed`` makes it, one of ``fn`` as it is."""
    box: list[T] = []
    failure: list[BaseException] = []

    def target() -> None:
        try:
            try:
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
                try:
                    libc.setns(fd, libc.CLONE_NEWNET)
                finally:
                    os.close(fd)
            except OSError as exc:
                raise failed(path, exc) from exc
            box.append(fn())
        except BaseException as exc:  # re-raised in the caller's thread
            failure.append(exc)

    worker = threading.Thread(target=target, name=thread_name)
    worker.start()
    worker.join()
    if failure:
        raise failure[0]
    return box[0]
