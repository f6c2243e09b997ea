"""Whether a link can carry frames yet: a device that is up is not yet ready to send.

When a veth pair comes up, the carrier goes on at once, but the transmit queues of the end
that came up first are activated later, from the kernel's link-watch work queue (the last
end's as it opens); until then a queue holds the ``noop`` placeholder, which drops every
frame sent on it. A program that redirects to a device just brought up, or a socket that
sends on it, loses its first frames in that window: well under a millisecond on a quiet host,
milliseconds on a loaded one (a CI run lost the first three copies of a lawful-intercept
mirror that way). ``ip link`` shows the device's qdisc as attached all along: what tells is
the operational state, which link-watch sets to ``UP`` in the same step as it activates the
queues. :func:`wait_ready` waits for it, after bringing the devices up and before sending
anything their way.

For devices whose carrier goes through link-watch (veths, bridges' ports, NICs). A TUN has
its carrier from the start, is activated when it is opened, and stays ``UNKNOWN``: not one
to wait for.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable

from fluidedge.errors import SystemFailure
from fluidedge.linux.proc import run

_READY = "UP"


class LinkNotReady(SystemFailure):
    """A device was not operationally up in time (no carrier: a veth's peer down, a cable
    out); the message names the devices."""


def waiting(listing: list[dict[str, object]], names: Iterable[str]) -> list[str]:
    """The devices of ``names`` that ``ip -j link show`` (parsed) does not give as
    operationally up, or does not list at all, sorted."""
    state = {str(link.get("ifname")): link.get("operstate") for link in listing}
    return sorted(n for n in set(names) if state.get(n) != _READY)


def wait_ready(
    netns: str | None, names: Iterable[str], *, timeout: float = 2.0, poll: float = 0.002
) -> None:
    """Return once every device of ``names`` in ``netns`` can send (operationally up: its
    queues active); raise :class:`LinkNotReady` after ``timeout`` seconds. One ``ip`` call
    when they are ready already, as they nearly always are by the time a caller asks."""
    wanted = list(names)
    argv = ["ip", *(["-n", netns] if netns else []), "-j", "link", "show"]
    deadline = time.monotonic() + timeout
    while True:
        left = waiting(json.loads(run(argv).stdout or "[]"), wanted)
        if not left:
            return
        if time.monotonic() >= deadline:
            where = f" in namespace {netns}" if netns else ""
            raise LinkNotReady(
                f"{', '.join(left)}{where}: not operationally up {timeout:g} s after coming up "
                "(no carrier?)"
            )
        time.sleep(poll)
