"""One OpenFlow flow as the compilers produce it and ``ovs-ofctl`` reads it.

WHY: the security-group renderer and the chain compiler both compute desired flow tables as
values, diff them against what is installed and write bundles; they need the same identity
(OpenFlow's strict match: table, priority, match) and the same text. Pure: no I/O here.
"""

from __future__ import annotations

from dataclasses import dataclass


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
