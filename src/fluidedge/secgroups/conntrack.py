"""The conntrack adapter: list a zone's connections and delete the ones a new policy refuses.

Neutron deletes the conntrack entries of connections a removed rule no longer allows; so do
we, with the ``conntrack`` tool (argv, never a shell) in the bridge's namespace. The listing
parser is pure (:func:`parse_entries`) and unit-tested on captured output.
"""

from __future__ import annotations

import ipaddress
import subprocess
from dataclasses import dataclass

from fluidedge.errors import FluidedgeError
from fluidedge.secgroups.errors import FilterFailure
from fluidedge.secgroups.model import IPAddress
from fluidedge.secgroups.nft import run_in_netns
from fluidedge.secgroups.verdict import Flow

TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Entry:
    """One connection's original direction, as conntrack lists it."""

    zone: int
    protocol: int
    src: IPAddress
    dst: IPAddress
    sport: int | None = None
    dport: int | None = None
    icmp_type: int | None = None
    icmp_code: int | None = None
    icmp_id: int | None = None

    def flow(self) -> Flow:
        return Flow(
            protocol=self.protocol,
            src=self.src,
            dst=self.dst,
            dport=self.dport,
            icmp_type=self.icmp_type,
            icmp_code=self.icmp_code,
        )


def parse_entries(text: str, zone: int) -> list[Entry]:
    """Entries of ``conntrack -L -f ipv4|ipv6 -w ZONE`` output (the first src/dst/... of a
    line is the original direction; unparseable lines are skipped)."""
    found: list[Entry] = []
    for line in text.splitlines():
        words = line.split()
        if len(words) < 3 or not words[1].isdigit():
            continue
        fields: dict[str, str] = {}
        for word in words[2:]:
            key, sep, value = word.partition("=")
            if sep and key not in fields:
                fields[key] = value
        try:
            entry = Entry(
                zone=int(fields.get("zone", zone)),
                protocol=int(words[1]),
                src=ipaddress.ip_address(fields["src"]),
                dst=ipaddress.ip_address(fields["dst"]),
                sport=int(fields["sport"]) if "sport" in fields else None,
                dport=int(fields["dport"]) if "dport" in fields else None,
                icmp_type=int(fields["type"]) if "type" in fields else None,
                icmp_code=int(fields["code"]) if "code" in fields else None,
                icmp_id=int(fields["id"]) if "id" in fields else None,
            )
        except (KeyError, ValueError):
            continue
        if entry.zone == zone:
            found.append(entry)
    return found


def delete_argv(entry: Entry) -> list[str]:
    argv = [
        "conntrack",
        "-D",
        "-w",
        str(entry.zone),
        "-f",
        "ipv4" if entry.src.version == 4 else "ipv6",
        "-p",
        str(entry.protocol),
        "-s",
        str(entry.src),
        "-d",
        str(entry.dst),
    ]
    if entry.sport is not None and entry.dport is not None:
        argv += ["--sport", str(entry.sport), "--dport", str(entry.dport)]
    return argv


class Conntrack:
    """Runs ``conntrack`` in a network namespace."""

    def entries(self, netns: str | None, zone: int) -> list[Entry]:
        found: list[Entry] = []
        for family in ("ipv4", "ipv6"):
            out = self._run(netns, ["conntrack", "-L", "-f", family, "-w", str(zone)], ok=(0,))
            found += parse_entries(out, zone)
        return found

    def delete(self, netns: str | None, entry: Entry) -> None:
        # 1: the entry went away meanwhile (expired or deleted by its end).
        self._run(netns, delete_argv(entry), ok=(0, 1))

    @staticmethod
    def _run(netns: str | None, argv: list[str], ok: tuple[int, ...]) -> str:
        try:
            done = run_in_netns(netns, argv)
        except (OSError, subprocess.TimeoutExpired, FluidedgeError) as exc:
            raise FilterFailure(f"conntrack: {exc}") from exc
        if done.returncode not in ok:
            raise FilterFailure(f"conntrack {argv[1]}: {done.stderr.strip()[:2000]}")
        return done.stdout
