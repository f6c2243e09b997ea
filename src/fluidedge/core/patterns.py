"""Regular expressions of IP addresses and prefixes, as the API's request schemas state them.

WHY one module: every part's schema says what an address field takes, so that a schema-valid
request is a valid one (and a response that echoes an address, normalised by ``ipaddress``,
is valid under its own schema). Each part had written its own, and one stated IPv6 in its
full form only, so ``fd00::1`` was refused by the document and ``::1``-style answers broke it.

The patterns use the subset of regular expressions that JSON Schema (ECMA 262), Python's
``re`` and pydantic's Rust engine read alike (no lookaround, no backreferences). What they
match, ``ipaddress`` accepts (tests/unit/daemon/test_patterns.py holds them to it, and every
text ``ipaddress`` writes is matched); narrower than ``ipaddress`` on purpose: no leading
zeros in an IPv4 octet or a prefix length, no IPv6 zone (``%eth0``), no dotted netmask.
"""

from __future__ import annotations

__all__ = [
    "IPV4",
    "IPV4_PREFIX",
    "IPV6",
    "IPV6_PREFIX",
    "IP_ADDRESS",
    "IP_PREFIX",
    "V4_LENGTH",
    "V6_LENGTH",
    "anchored",
]

_OCTET = "(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])"
#: A dotted quad (unanchored).
IPV4 = rf"(?:{_OCTET}\.){{3}}{_OCTET}"


def _ipv6() -> str:
    """RFC 3986 section 3.2.2's ``IPv6address`` (RFC 4291 section 2.2's text forms): eight
    groups, one ``::`` for a run of zero groups, the last 32 bits possibly a dotted quad."""
    h16 = "[0-9A-Fa-f]{1,4}"
    ls32 = f"(?:{h16}:{h16}|{IPV4})"
    forms = [f"(?:{h16}:){{6}}{ls32}", f"::(?:{h16}:){{5}}{ls32}"]
    tails = [f"(?:{h16}:){{4}}{ls32}", f"(?:{h16}:){{3}}{ls32}", f"(?:{h16}:){{2}}{ls32}"]
    tails += [f"{h16}:{ls32}", ls32, h16, ""]
    for before, tail in enumerate(tails):
        head = f"(?:(?:{h16}:){{0,{before}}}{h16})?" if before else f"(?:{h16})?"
        forms.append(f"{head}::{tail}")
    return "(?:" + "|".join(forms) + ")"


#: An IPv6 address in any of its text forms (unanchored).
IPV6 = _ipv6()
#: A prefix length of IPv4 (0 to 32) and of IPv6 (0 to 128), without leading zeros.
V4_LENGTH = "(?:3[0-2]|[12]?[0-9])"
V6_LENGTH = "(?:12[0-8]|1[01][0-9]|[1-9]?[0-9])"
#: An IPv4 address or prefix, unanchored.
IPV4_PREFIX = rf"{IPV4}(?:/{V4_LENGTH})?"
#: An IPv6 address or prefix, unanchored.
IPV6_PREFIX = rf"{IPV6}(?:/{V6_LENGTH})?"


def anchored(*alternatives: str) -> str:
    """``^(?:a|b|...)$``: the whole text is one of ``alternatives``."""
    return "^(?:" + "|".join(alternatives) + ")$"


#: An IPv4 or IPv6 address, the whole text.
IP_ADDRESS = anchored(IPV4, IPV6)
#: An IPv4 or IPv6 address or prefix, the whole text.
IP_PREFIX = anchored(IPV4_PREFIX, IPV6_PREFIX)
