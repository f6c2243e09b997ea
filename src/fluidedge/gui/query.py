"""The tunnels page's search and paging, as pure functions.

A search is one term: an IP address (matches the eNB, the SGW or the UE), a CIDR prefix (any of
the three inside it), or a TEID (decimal or 0x-hex; uplink or downlink). Matching compares the
bearer's packed addresses and integer TEIDs, so a search over 100,000 bearers builds no text;
only the page shown is turned into rows (``Backend.tunnel_page``).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from fluidedge.core.fields import decimal
from fluidedge.gui.errors import GuiInputError
from fluidedge.tof.pipeline import Bearer

Keep = Callable[[Bearer], bool]


def parse_search(text: str) -> Keep | None:
    """A predicate for ``text`` (None for an empty search); GuiInputError with a reason."""
    term = text.strip()
    if not term:
        return None
    if len(term) > 64:
        raise GuiInputError("search: at most 64 characters")
    if "/" in term:
        try:
            net = ipaddress.ip_network(term, strict=False)
        except ValueError as exc:
            raise GuiInputError(f"search: {exc}") from exc
        # Packed addresses of one family compare as bytes in numeric order: no conversion.
        lo, hi = net.network_address.packed, net.broadcast_address.packed
        size = len(lo)

        def in_net(b: Bearer) -> bool:
            return (
                (len(b.ue) == size and lo <= b.ue <= hi)
                or (len(b.enb) == size and lo <= b.enb <= hi)
                or (len(b.sgw) == size and lo <= b.sgw <= hi)
            )

        return in_net
    try:
        packed = ipaddress.ip_address(term).packed
    except ValueError:
        pass
    else:
        # ``or`` of comparisons, not ``in (tuple)``: no tuple per bearer (100,000 per search)
        return lambda b: b.ue == packed or b.enb == packed or b.sgw == packed  # noqa: PLR1714
    try:
        teid = int(term, 16) if term.lower().startswith("0x") else int(term, 10)
    except ValueError:
        raise GuiInputError(
            f"search: {term!r} is not an IP address, a CIDR prefix or a TEID"
        ) from None
    if not 0 <= teid <= 0xFFFFFFFF:
        raise GuiInputError("search: a TEID is a 32-bit number")
    return lambda b: b.ul_teid == teid or b.dl_teid == teid  # noqa: PLR1714


@dataclass(frozen=True)
class Paging:
    page: int  # 1-based
    size: int
    total: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.size))

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.size

    @property
    def first_row(self) -> int:
        return min(self.total, self.offset + 1)

    @property
    def last_row(self) -> int:
        return min(self.total, self.offset + self.size)


def page_number(text: str | None) -> int:
    """A requested page number (1 when absent); GuiInputError when not a positive integer."""
    if text is None or text == "":
        return 1
    number = decimal(text)
    if number is None or number < 1:
        raise GuiInputError(f"page: {text!r} is not a page number")
    return number


T = TypeVar("T")


def numbered_page(
    fetch: Callable[[int, int], tuple[int, list[T]]], page: int, size: int
) -> tuple[Paging, list[T]]:
    """Numbered page ``page`` of ``size`` rows, the last one when ``page`` is past the end;
    ``fetch(offset, size)`` answers (the total, those rows)."""
    total, rows = fetch((page - 1) * size, size)
    paging = clamp(page, size, total)
    if paging.page != page:  # past the end: show the last page
        total, rows = fetch(paging.offset, size)
    return paging, rows


def clamp(page: int, size: int, total: int) -> Paging:
    """The page to show: the requested one, or the last one when past the end."""
    last = max(1, -(-total // size))
    return Paging(min(page, last), size, total)
