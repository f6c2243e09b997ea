"""The PDN's DNS server: a small authoritative zone, query bytes in, answer bytes out (pure).

The lab's PDN host plays the core network's resolver for the UEs (``[pdn.dns]``): it knows the
names of the lab zone (the PDN host's own names and whatever the config adds) and nothing else.
:func:`respond` is the whole protocol, sans-I/O: :mod:`fluidedge.lab.services` runs it on a
UDP socket in the PDN's namespace and counts the outcomes.

- A name of the zone gets its A or AAAA records (ANY: both), authoritative (AA); another type
  of such a name is an empty NOERROR answer (NODATA).
- Any other name is NXDOMAIN (authoritative): the lab has no Internet behind it.
- A query of another class is REFUSED, another opcode NOTIMP, not exactly one question FORMERR.
- What does not parse, and any response (QR set), is dropped: answering either could start a
  loop or a reflection, and a resolver retries anyway.

The wire format is dnspython's (``dns.message``), as in the ME platform's responder. UDP only:
every answer of the lab zone fits a datagram.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

import dns.exception
import dns.flags
import dns.message
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

Outcome = Literal["answered", "nodata", "nxdomain", "refused", "notimp", "formerr", "dropped"]
OUTCOMES: tuple[Outcome, ...] = (
    "answered", "nodata", "nxdomain", "refused", "notimp", "formerr", "dropped",
)  # fmt: skip


def key(name: str) -> str:
    """A name as the zone keys it: lower case, without the final dot."""
    return name.lower().rstrip(".")


@dataclass(frozen=True)
class Zone:
    """Names (see :func:`key`) -> their IPv4 and IPv6 addresses, one TTL for all."""

    a: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    aaaa: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    ttl: int = 60

    @classmethod
    def of(cls, names: Mapping[str, Iterable[str]], ttl: int) -> Zone:
        """A zone from names -> addresses of either family (checked here)."""
        a: dict[str, list[str]] = {}
        aaaa: dict[str, list[str]] = {}
        for name, addresses in names.items():
            for text in addresses:
                address = ipaddress.ip_address(text)
                target = a if address.version == 4 else aaaa
                mine = target.setdefault(key(name), [])
                if str(address) not in mine:
                    mine.append(str(address))
        return cls({n: tuple(v) for n, v in a.items()}, {n: tuple(v) for n, v in aaaa.items()}, ttl)

    def names(self) -> set[str]:
        return set(self.a) | set(self.aaaa)

    def as_json(self) -> dict[str, object]:
        every = sorted(self.names())
        return {
            "ttl": self.ttl,
            "names": {n: [*self.a.get(n, ()), *self.aaaa.get(n, ())] for n in every},
        }

    @classmethod
    def from_json(cls, raw: Mapping[str, object]) -> Zone:
        names = raw.get("names")
        ttl = raw.get("ttl")
        if not isinstance(names, dict) or not isinstance(ttl, int):
            raise ValueError("a zone is {'ttl': int, 'names': {name: [address, ...]}}")
        return cls.of({str(n): [str(a) for a in v] for n, v in names.items()}, ttl)


def _error(message: dns.message.Message, rcode: dns.rcode.Rcode) -> bytes:
    response = dns.message.make_response(message)
    response.set_rcode(rcode)
    wire: bytes = response.to_wire()
    return wire


def respond(query: bytes, zone: Zone) -> tuple[Outcome, bytes | None]:
    """The outcome of ``query`` and the answer to send (None: drop it)."""
    try:
        message = dns.message.from_wire(query)
    except (dns.exception.DNSException, ValueError):
        return "dropped", None
    if message.flags & dns.flags.QR:
        return "dropped", None
    if message.opcode() != dns.opcode.QUERY:
        return "notimp", _error(message, dns.rcode.NOTIMP)
    if len(message.question) != 1:
        return "formerr", _error(message, dns.rcode.FORMERR)
    question = message.question[0]
    if question.rdclass != dns.rdataclass.IN:
        return "refused", _error(message, dns.rcode.REFUSED)
    name = key(question.name.to_text())
    response = dns.message.make_response(message)
    response.flags |= dns.flags.AA
    if name not in zone.names():
        response.set_rcode(dns.rcode.NXDOMAIN)
        wire: bytes = response.to_wire()
        return "nxdomain", wire
    tables = {dns.rdatatype.A: zone.a, dns.rdatatype.AAAA: zone.aaaa}
    wanted = [question.rdtype] if question.rdtype in tables else []
    if question.rdtype == dns.rdatatype.ANY:
        wanted = [dns.rdatatype.A, dns.rdatatype.AAAA]
    for rdtype in wanted:
        addresses = tables[rdtype].get(name, ())
        if addresses:
            response.answer.append(
                dns.rrset.from_text_list(
                    question.name, zone.ttl, dns.rdataclass.IN, rdtype, list(addresses)
                )
            )
    wire = response.to_wire()
    return ("answered" if response.answer else "nodata"), wire


__all__ = ["OUTCOMES", "Outcome", "Zone", "key", "respond"]
