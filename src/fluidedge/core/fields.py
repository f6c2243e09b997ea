"""Neutron-style fields checked at the API boundary: names, bounded integers, descriptions,
protocols and IP prefixes, each failure naming its field.

WHY: security groups (``secgroups.model``) and service chains (``chains.model``) both build
their frozen models from JSON by hand and follow neutron's field conventions (a protocol is a
name, a number 0-255 or ``any``; ``icmp`` on IPv6 means icmpv6; a prefix has its host bits
cleared). One implementation keeps their answers to the same input identical. Each package
keeps its own exception: :class:`FieldChecks` raises the error type it was made with.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Literal

Ethertype = Literal["IPv4", "IPv6"]
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

PROTO_ICMP = 1
PROTO_TCP = 6
PROTO_UDP = 17
PROTO_DCCP = 33
PROTO_ICMPV6 = 58
PROTO_SCTP = 132
PROTO_UDPLITE = 136
# Neutron's protocol names (its constants' IP_PROTOCOL_MAP, the ones an edge node needs).
PROTOCOL_NAMES: dict[str, int] = {
    "icmp": PROTO_ICMP,
    "tcp": PROTO_TCP,
    "udp": PROTO_UDP,
    "dccp": PROTO_DCCP,
    "icmpv6": PROTO_ICMPV6,
    "ipv6-icmp": PROTO_ICMPV6,
    "sctp": PROTO_SCTP,
    "udplite": PROTO_UDPLITE,
}
ANY_PROTOCOL = frozenset({"any", ""})
MAX_TEXT_ADDRESS = 64  # longer than any IPv6 prefix in text


def _any_case(word: str) -> str:
    """``word`` as a case-insensitive regex written with classes (``tcp`` -> ``[tT][cC][pP]``):
    JSON Schema's regex dialect (ECMA-262) has no inline ``(?i)``."""
    # ``-`` stands for itself outside a class, and re.escape's ``\-`` is an error in
    # ECMA-262's unicode mode (which schema validators use).
    return "".join(
        f"[{c}{c.upper()}]" if c.isalpha() else c if c == "-" else re.escape(c) for c in word
    )


_PROTOCOL_WORDS = sorted({*PROTOCOL_NAMES, *ANY_PROTOCOL} - {""}, key=lambda w: (-len(w), w))
#: What :meth:`FieldChecks.protocol` reads from text, as the request schemas state it: a name
#: in any case, ``any``, empty (any), or a number 0-255 of at most three digits. (The spaces it
#: also strips are not stated, so a schema-valid protocol is one.)
PROTOCOL_PATTERN = (
    "^(?:"
    + "|".join(_any_case(w) for w in _PROTOCOL_WORDS)
    + "|25[0-5]|2[0-4][0-9]|[01][0-9]{2}|[0-9]{1,2})?$"
)


def decimal(text: str, max_digits: int = 9) -> int | None:
    """The value of ``text`` when it is 1 to ``max_digits`` ASCII decimal digits, else None.

    WHY not ``text.isdigit()`` then ``int(text)``: ``isdigit`` admits ``"²"``, which ``int``
    then refuses (an unhandled ValueError: a 500 from hostile input), and ``"١٢"``, which
    ``int`` reads as 12 (a number nobody typed as one). Untrusted text (requests, images,
    query strings) is parsed with this."""
    if 0 < len(text) <= max_digits and text.isascii() and text.isdigit():
        return int(text)
    return None


class FieldChecks:
    """The checks, raising ``error(f"{field}: {why}")``."""

    def __init__(self, error: type[Exception]) -> None:
        self.error = error

    def bad(self, what: str, why: str) -> Exception:
        return self.error(f"{what}: {why}")

    def name(self, what: str, value: object, pattern: re.Pattern[str]) -> str:
        if not isinstance(value, str) or not pattern.fullmatch(value):
            raise self.bad(what, f"{value!r} does not match {pattern.pattern}")
        return value

    def integer(self, what: str, value: object, low: int, high: int) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise self.bad(what, f"{value!r} is not an integer in [{low}, {high}]")
        return value

    def description(self, value: object, limit: int) -> str:
        if not isinstance(value, str) or len(value) > limit:
            raise self.bad("description", f"must be a string of at most {limit} characters")
        return value

    def protocol(self, value: object, ethertype: Ethertype) -> int | None:
        """A protocol as a number, or ``None`` for any.

        Names (``tcp``, ``udp``, ``icmp``, ``icmpv6``...), decimal strings and integers 0-255
        are accepted; ``any``, ``""`` and ``None`` mean any protocol. ``icmp`` with IPv6 is
        icmpv6, as neutron maps it.
        """
        if value is None:
            return None
        if isinstance(value, bool):
            raise self.bad("protocol", f"{value!r} is not a protocol name or number")
        if isinstance(value, int):
            number = self.integer("protocol", value, 0, 255)
        elif isinstance(value, str):
            text = value.strip().lower()
            if text in ANY_PROTOCOL:
                return None
            if text in PROTOCOL_NAMES:
                number = PROTOCOL_NAMES[text]
            elif (digits := decimal(text, 3)) is not None:
                number = self.integer("protocol", digits, 0, 255)
            else:
                names = ", ".join(sorted(PROTOCOL_NAMES))
                raise self.bad(
                    "protocol", f"{value!r} is not one of {names}, any, or a number 0-255"
                )
        else:
            raise self.bad("protocol", f"{value!r} is not a protocol name or number")
        if number == PROTO_ICMP and ethertype == "IPv6":
            return PROTO_ICMPV6
        return number

    def network(self, what: str, value: object) -> IPNetwork:
        """An IP prefix (host bits cleared, as neutron normalises them); a bare address is a
        host prefix."""
        if isinstance(value, ipaddress.IPv4Network | ipaddress.IPv6Network):
            return value
        if not isinstance(value, str) or len(value) > MAX_TEXT_ADDRESS:
            raise self.bad(what, f"{value!r} is not an IP prefix")
        try:
            return ipaddress.ip_network(value, strict=False)
        except ValueError as exc:
            raise self.bad(what, f"{value!r} is not an IP prefix ({exc})") from None
