"""fluidedge.core.paging: keyset pages of a named collection and the Link to the next one."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fluidedge.core.paging import keyset_page, link_headers, next_link

NAMES = st.sets(st.from_regex(r"[a-z][a-z0-9-]{0,6}", fullmatch=True), max_size=40)


def _identity(name: str) -> str:
    return name


def test_a_page_is_in_key_order_after_the_marker_with_the_next_marker() -> None:
    items = ["d", "a", "c", "b", "e"]
    assert keyset_page(items, _identity, None, 2) == (["a", "b"], "b")
    assert keyset_page(items, _identity, "b", 2) == (["c", "d"], "d")
    assert keyset_page(items, _identity, "d", 2) == (["e"], None)
    assert keyset_page(items, _identity, "d", 1) == (["e"], None)  # exactly full: no next
    assert keyset_page(items, _identity, "e", 2) == ([], None)
    assert keyset_page(items, _identity, "bb", None) == (["c", "d", "e"], None)  # no limit: all
    assert keyset_page([], _identity, None, 3) == ([], None)
    with pytest.raises(ValueError, match="at least 1"):
        keyset_page(items, _identity, None, 0)


@given(NAMES, st.integers(min_value=1, max_value=7))
def test_walking_the_pages_sees_every_item_once_in_order(names: set[str], limit: int) -> None:
    seen: list[str] = []
    after: str | None = None
    for _ in range(len(names) + 2):
        page, after = keyset_page(list(names), _identity, after, limit)
        assert len(page) <= limit
        seen += page
        if after is None:
            break
    assert after is None
    assert seen == sorted(names)


@given(NAMES, NAMES, st.integers(min_value=1, max_value=5))
def test_items_present_through_the_walk_are_seen_once_despite_changes(
    stable: set[str], churn: set[str], limit: int
) -> None:
    # Items come and go between pages (the churn, present on every other request): each item
    # present on every request is still seen exactly once, and nothing repeats.
    churn -= stable
    seen: list[str] = []
    after: str | None = None
    for request in range(len(stable | churn) + 2):
        items = list(stable | churn) if request % 2 else list(stable)
        page, after = keyset_page(items, _identity, after, limit)
        seen += page
        if after is None:
            break
    assert after is None
    assert len(seen) == len(set(seen))
    assert stable <= set(seen)


def test_next_link_keeps_other_parameters_and_replaces_the_page_ones() -> None:
    link = next_link("/v1/instances", {"limit": "9", "after": "x", "state": "a b"}, "web-2", 2)
    target, rel = link.split("; ")
    assert rel == 'rel="next"'
    assert target.startswith("</v1/instances?")
    assert target.endswith(">")
    query = parse_qs(urlsplit(target[1:-1]).query)
    assert query == {"after": ["web-2"], "limit": ["2"], "state": ["a b"]}


def test_link_headers_only_while_a_limited_page_has_a_next() -> None:
    query = {"limit": "2", "state": "running"}
    assert link_headers("/v1/instances", query, None, 2) == {}  # the last page
    assert link_headers("/v1/instances", query, "b", None) == {}  # no limit: everything after
    assert link_headers("/v1/instances", query, "b", 2) == {
        "Link": next_link("/v1/instances", query, "b", 2)
    }
