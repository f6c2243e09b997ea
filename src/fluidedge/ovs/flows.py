"""One OpenFlow flow as the compilers produce it and ``ovs-ofctl`` reads it.

WHY: the security-group renderer and the chain compiler both compute desired flow tables as
values, diff them against what is installed and write bundles; they need the same identity
(OpenFlow's strict match: table, priority, match) and the same text. Both also check, each
second, that the switch still holds what they installed: :func:`dump_digest` lets them see a
flow replaced from outside (``ovs-ofctl mod-flows``: the count of their flows unchanged, the
actions now another's). Pure: no I/O here.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass


def dump_digest(lines: Iterable[str]) -> str:
    """A digest of flows as ``ovs-ofctl --no-stats dump-flows`` prints them: the same flows
    give the same digest whatever order the switch lists them in (its classifier's), and a
    flow whose match, actions, priority or timeouts changed gives another. The switch prints
    flows in its own canonical text, not ours (``dl_type=0x0800`` becomes ``ip``), so callers
    compare a digest with an earlier one of a dump, never with their rendering."""
    return hashlib.sha256("\n".join(sorted(lines)).encode()).hexdigest()


@dataclass(frozen=True, order=True)
class Flow:
    """One flow: ``(table, priority, match)`` is its identity, as OpenFlow's strict match."""

    table: int
    priority: int
    match: str
    actions: str

    @property
    def key(self) -> tuple[int, int, str]:
        return (self.table, self.priority, self.match)

    def spec(self) -> str:
        """The identity as ovs-ofctl text (for ``delete_strict``)."""
        match = f",{self.match}" if self.match else ""
        return f"table={self.table},priority={self.priority}{match}"

    def text(self, cookie: int) -> str:
        """The whole flow as ovs-ofctl text (for ``add``), tagged with ``cookie``."""
        return f"cookie={cookie:#x},{self.spec()},actions={self.actions}"
