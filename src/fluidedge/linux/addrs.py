"""What ``ip -j addr show`` says, parsed once: each device's flags and its addresses.

Five parts read this listing (the ME platform's address keeper, the OVN chassis' tunnel check,
the TOF's apps-side check, the lab's osmo supervisor, the demo's choice of a free network) and
each used to walk its JSON on its own, comparing the ``local`` and ``prefixlen`` strings of
``addr_info`` its own way. :func:`parse` turns the listing into :class:`Device` values whose
addresses are :mod:`ipaddress` interfaces, so "is this address on that device" is one
membership test that cannot confuse ``10.0.0.1/24`` with ``10.0.0.1/32``.

Pure: the callers run ``ip`` (with :func:`argv`) where they already do, in their namespace.
An entry the listing gives without a usable address (no ``local``, a malformed one) is left
out rather than failing the whole listing; a listing that is not a JSON array of objects is an
:class:`AddressListingError`, which is a :class:`ValueError` (what the callers already catch
around ``json.loads``).
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Mapping
from dataclasses import dataclass, field

Interface = ipaddress.IPv4Interface | ipaddress.IPv6Interface


class AddressListingError(ValueError):
    """``ip -j addr`` output that is not a JSON array of devices; the message says where."""


@dataclass(frozen=True, slots=True)
class Device:
    """One device of the listing: its name, its administrative flags, its addresses."""

    name: str
    flags: frozenset[str] = field(default_factory=frozenset)
    addresses: tuple[Interface, ...] = ()

    @property
    def up(self) -> bool:
        """Administratively up (``UP`` among its flags)."""
        return "UP" in self.flags

    def has(self, address: Interface) -> bool:
        """Whether ``address`` (address and prefix length) is on this device."""
        return address in self.addresses

    def of_version(self, version: int) -> tuple[Interface, ...]:
        """Its addresses of one IP version (4 or 6), in the listing's order."""
        return tuple(a for a in self.addresses if a.version == version)


def argv(
    netns: str | None = None, dev: str | None = None, *, version: int | None = None
) -> list[str]:
    """The ``ip`` command that lists ``dev`` (every device when None) in ``netns``."""
    return [
        "ip",
        *(["-n", netns] if netns else []),
        "-j",
        *([f"-{version}"] if version is not None else []),
        "addr",
        "show",
        *(["dev", dev] if dev is not None else []),
    ]


def _address(info: Mapping[str, object]) -> Interface | None:
    local, prefixlen = info.get("local"), info.get("prefixlen")
    if not isinstance(local, str) or not isinstance(prefixlen, int) or isinstance(prefixlen, bool):
        return None
    try:
        return ipaddress.ip_interface(f"{local}/{prefixlen}")
    except ValueError:
        return None


def parse(text: str) -> dict[str, Device]:
    """The devices of ``ip -j addr show`` output by name (empty output: none)."""
    try:
        rows = json.loads(text or "[]")
    except ValueError as exc:
        raise AddressListingError(f"ip -j addr: not JSON: {exc}") from None
    if not isinstance(rows, list):
        raise AddressListingError(f"ip -j addr: a {type(rows).__name__}, not a list of devices")
    found: dict[str, Device] = {}
    for index, row in enumerate(rows):
        if not isinstance(row, dict):
            raise AddressListingError(f"ip -j addr: entry {index} is not an object")
        name = row.get("ifname")
        if not isinstance(name, str):
            continue  # what a dump of a device going away can hold: nothing to say about it
        flags = row.get("flags", [])
        infos = row.get("addr_info", [])
        addresses = tuple(
            a
            for a in (
                _address(i)
                for i in (infos if isinstance(infos, list) else [])
                if isinstance(i, dict)
            )
            if a is not None
        )
        found[name] = Device(
            name,
            frozenset(f for f in flags if isinstance(f, str))
            if isinstance(flags, list)
            else frozenset(),
            addresses,
        )
    return found
