"""Which frames ``fluidedge decode`` keeps: a predicate over :class:`Classified`, checked before
anything costly (record building, JSON, table cells) is done for a frame.

Each option may be repeated (any of its values matches); different options must all match.
Values are validated here, at the boundary, with a message that names the option.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from fluidedge.codec.stack import Classified, Kind


class FilterError(ValueError):
    """A filter value that does not parse; the message names the option."""


@dataclass(frozen=True, slots=True)
class FrameFilter:
    """``teids``: GTP-U TEID; ``ues``: inner source or destination address (the UE side of a
    G-PDU); ``kinds``: :class:`Kind` values; ``peers``: outer source or destination address
    (eNB, SGW, UPF...); ``ports``: outer UDP or inner TCP/UDP port on either side."""

    teids: frozenset[int] = frozenset()
    ues: frozenset[bytes] = frozenset()
    kinds: frozenset[int] = frozenset()
    peers: frozenset[bytes] = frozenset()
    ports: frozenset[int] = frozenset()

    @property
    def active(self) -> bool:
        return bool(self.teids or self.ues or self.kinds or self.peers or self.ports)

    def __call__(self, c: Classified) -> bool:
        if self.kinds and c.kind not in self.kinds:
            return False
        if self.teids and c.teid not in self.teids:
            return False
        if self.ues and c.inner_src not in self.ues and c.inner_dst not in self.ues:
            return False
        if self.peers and c.outer_src not in self.peers and c.outer_dst not in self.peers:
            return False
        return not self.ports or bool(
            self.ports.intersection((c.src_port, c.dst_port, c.inner_sport, c.inner_dport))
        )


def _number(option: str, text: str, bits: int) -> int:
    try:
        value = int(text, 0)
    except ValueError:
        raise FilterError(f"{option} {text!r}: not a number (decimal or 0x hex)") from None
    if not 0 <= value < 1 << bits:
        raise FilterError(f"{option} {text!r}: out of range (0..{(1 << bits) - 1})")
    return value


def _address(option: str, text: str) -> bytes:
    try:
        return ipaddress.ip_address(text.strip()).packed
    except ValueError:
        raise FilterError(f"{option} {text!r}: not an IPv4 or IPv6 address") from None


def _kind(text: str) -> int:
    name = text.strip().upper().replace("-", "_")
    try:
        return int(Kind[name])
    except KeyError:
        names = ", ".join(k.name for k in Kind)
        raise FilterError(f"--kind {text!r}: one of {names}") from None


def _split(values: Iterable[str] | None) -> list[str]:
    """Repeated options and comma lists alike: ``--teid 1 --teid 2`` or ``--teid 1,2``."""
    return [part for value in values or () for part in value.split(",") if part.strip()]


def parse_filter(
    *,
    teid: Iterable[str] | None = None,
    ue: Iterable[str] | None = None,
    kind: Iterable[str] | None = None,
    peer: Iterable[str] | None = None,
    port: Iterable[str] | None = None,
) -> FrameFilter:
    """A :class:`FrameFilter` from option texts; :class:`FilterError` names a bad value."""
    return FrameFilter(
        teids=frozenset(_number("--teid", t.strip(), 32) for t in _split(teid)),
        ues=frozenset(_address("--ue", a) for a in _split(ue)),
        kinds=frozenset(_kind(k) for k in _split(kind)),
        peers=frozenset(_address("--peer", a) for a in _split(peer)),
        ports=frozenset(_number("--port", p.strip(), 16) for p in _split(port)),
    )
