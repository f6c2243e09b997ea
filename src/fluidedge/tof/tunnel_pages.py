"""Keyset pages of the learned bearers: ``GET /tunnels?limit=N&after=MARKER``.

The same paging as the instance list (:mod:`fluidedge.core.paging`): the bearers whose marker
sorts after the client's, in marker order, at most ``limit``, and the next page's marker. WHY
keyset and not the offset pages the web GUI uses (:meth:`Pipeline.tunnel_page`): on a live EPC
bearers are learned and retired between two requests, and an offset into a table that changes
skips or repeats rows; a marker never does (a bearer present through the whole walk is seen
exactly once). And only the page's bearers become rows (``Bearer.to_api``, and on the fast
path the fold of their kernel counters): 100,000 bearers are compared, 500 are built.

The marker of a bearer is the hex of its packed key, ``enb.hex()-sgw.hex()-ue.hex()``
(``c6120b0b-c6121515-c6126401`` for eNB 198.18.11.11, SGW 198.18.21.21, UE 198.18.100.1).
WHY this form and not the three addresses as text (``198.18.11.11,198.18.21.21,...``), which
would read better:

- it sorts as the bearer table's own keys do. Within a family every field has a fixed width, so
  string order is numeric order, field by field (text would put ``10.0.0.10`` before
  ``10.0.0.9``); across families an IPv4 field (8 digits, then ``-``) sorts before an IPv6 one
  with the same first four octets, as the shorter ``bytes`` does in the ``(enb, sgw, ue)``
  tuple: marker order *is* the tuple order, for any mix of families;
- it has one spelling per bearer: text IPv6 has several (``::1``, ``0::1``), which a client
  could send back and compare wrongly; lowercase hex has exactly one, and
  :data:`MARKER_PATTERN` accepts nothing else;
- it survives a URL without escaping (hex digits and ``-``; text IPv6 carries ``:``, the comma
  form ``,``).

A marker names a position, not a bearer: the bearer it came from may be retired before the
next request and the walk goes on from where it was.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from fluidedge.core.paging import keyset_page

if TYPE_CHECKING:
    from fluidedge.tof.pipeline import Bearer

__all__ = ["MARKER_PATTERN", "bearer_marker", "keyset_bearers", "row_marker"]

_ADDRESS = "[0-9a-f]{8}(?:[0-9a-f]{24})?"  # an IPv4 (4 octets) or IPv6 (16) address, packed
#: What ``after`` may be (the API's query schema checks it: anything else is a 400 with the
#: reason): three packed addresses in lowercase hex, joined by ``-``.
MARKER_PATTERN = f"^{_ADDRESS}-{_ADDRESS}-{_ADDRESS}$"


def bearer_marker(bearer: Bearer) -> str:
    """The bearer's marker (see the module docstring), kept on the bearer once made.

    WHY kept: a page compares every bearer's marker with the client's (and picks the smallest
    after it), under the data plane's lock; at 100,000 bearers making the strings each time
    is ~100 ms a page, reading them ~30 ms. A bearer's key never changes (a UE on another
    eNB is another bearer), so the string never goes stale."""
    marker = bearer.marker
    if not marker:
        marker = bearer.marker = f"{bearer.enb.hex()}-{bearer.sgw.hex()}-{bearer.ue.hex()}"
    return marker


def row_marker(row: Mapping[str, object]) -> str:
    """The marker of a ``GET /tunnels`` row (its text addresses): for a backend that can only
    list every row, whose page is cut from that list."""
    return "-".join(ipaddress.ip_address(str(row[k])).packed.hex() for k in ("enb", "sgw", "ue"))


def keyset_bearers(
    bearers: Iterable[Bearer], after: str | None, limit: int | None
) -> tuple[list[Bearer], str | None]:
    """(the bearers whose marker sorts after ``after``, in marker order, at most ``limit``;
    the next page's marker, or None when none follows). Without ``limit``: all of them after
    ``after``. ``after`` need not name a bearer that exists (it may have been retired)."""
    return keyset_page(bearers, bearer_marker, after, limit)
