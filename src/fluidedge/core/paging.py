"""Keyset pages of a named collection: ``?limit=N&after=NAME`` and the ``Link`` to the next one.

WHY keyset pages (the items whose name sorts after a marker) rather than offsets: between two
requests instances are created and deleted; an offset then skips or repeats items, a marker
never does (an item present through the whole walk is seen exactly once). And a page costs
what its items cost: the names are compared, only the page's items are turned into views (an
instance's view reads ``/proc``), so a page of 100 out of 10,000 costs about 100 views.

A page that may have more after it carries ``Link: <...?after=LAST&limit=N>; rel="next"``
(RFC 8288, as GitHub's API does): a client follows it until it is absent. Without ``limit``
the whole collection comes in one answer, as before paging existed.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Mapping
from typing import TypeVar
from urllib.parse import urlencode

__all__ = ["MAX_PAGE", "keyset_page", "link_headers", "next_link"]

T = TypeVar("T")

#: The largest ``limit`` a request may ask for.
MAX_PAGE = 1000


def keyset_page(
    items: Iterable[T], key: Callable[[T], str], after: str | None, limit: int | None
) -> tuple[list[T], str | None]:
    """(the items whose key sorts after ``after``, in key order, at most ``limit`` of them;
    the marker of the next page, or None when none follows)."""
    chosen = items if after is None else (item for item in items if key(item) > after)
    if limit is None:
        return sorted(chosen, key=key), None
    if limit < 1:
        raise ValueError(f"limit must be at least 1, not {limit}")
    first = heapq.nsmallest(limit + 1, chosen, key=key)
    if len(first) > limit:
        return first[:limit], key(first[limit - 1])
    return first, None


def next_link(path: str, query: Mapping[str, str], marker: str, limit: int) -> str:
    """The ``Link`` header's value for the page after ``marker``: ``path`` with the request's
    other query parameters kept."""
    params = {k: v for k, v in query.items() if k not in ("after", "limit")}
    params.update(after=marker, limit=str(limit))
    return f'<{path}?{urlencode(params)}>; rel="next"'


def link_headers(
    path: str, query: Mapping[str, str], marker: str | None, limit: int | None
) -> dict[str, str]:
    """The response's ``Link`` header to the next page, or none (the last page, or no
    ``limit``: the answer was the whole collection after the marker)."""
    if marker is None or limit is None:
        return {}
    return {"Link": next_link(path, dict(query), marker, limit)}
