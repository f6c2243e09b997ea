"""Keyset pages of the learned bearers (``GET /tunnels?limit=N&after=MARKER``).

The pure part (:mod:`fluidedge.tof.tunnel_pages`, ``Pipeline.bearers_after``): marker order is
the bearer table's key order, a page is at most ``limit`` bearers after the marker, a bearer
present through a walk is seen exactly once however many come and go between pages. Then the
backends (null, userspace; the fast path's is in ``tests/unit/tof_fastpath/test_fold.py``) and
the route: the ``Link`` header a client follows, the 400s, the OpenAPI document.
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import cast
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from tests.unit.tof.test_pipeline import ENB1, ENB2, PDN, SGW1, SGW2, gpdu, pipeline, udp_packet
from tests.unit.tof.test_service_api import RecordingBackend, _make

from fluidedge.core.paging import MAX_PAGE
from fluidedge.tof.backend import Backend, KeysetTunnels, NullBackend, tunnels_after
from fluidedge.tof.config import TofConfig
from fluidedge.tof.pipeline import ENB, Bearer, Pipeline
from fluidedge.tof.tunnel_pages import MARKER_PATTERN, bearer_marker, row_marker
from fluidedge.tof.userspace import UserspaceBackend

Key = tuple[bytes, bytes, bytes]


def _ue(i: int) -> bytes:
    return ipaddress.IPv4Address(0x0A000000 + i).packed  # 10.0.0.i: 9 < 10 numerically


def _learn(p: Pipeline, n: int, first: int = 0) -> None:
    """``n`` bearers from traffic: UEs 10.0.0.first.., on two eNBs and two SGWs."""
    for i in range(first, first + n):
        enb, sgw = (ENB1 if i % 2 else ENB2), (SGW1 if i % 3 else SGW2)
        p.from_s1(gpdu(enb, sgw, i + 1, udp_packet(_ue(i), PDN, 1, 80)), ENB, 1.0)


def _walk(p: Pipeline, limit: int) -> list[list[dict[str, object]]]:
    pages, after = [], None
    while True:
        rows, after = p.tunnels_after(after, limit)
        pages.append(rows)
        if after is None:
            return pages


# Addresses that make the order interesting: IPv4 and IPv6, and IPv6 ones whose first four
# octets are an IPv4 address of the pool (the shorter key sorts first, as ``bytes`` do).
_V4 = [bytes([10, 0, 0, i]) for i in (1, 2, 9, 10)]
_V6 = [bytes(15) + b"\x01", bytes([10, 0, 0, 1]) + bytes(12), bytes([0xFE, 0x80]) + bytes(14)]
addresses = st.sampled_from(_V4 + _V6)
keys = st.tuples(addresses, addresses, addresses)


def _bearer(key: Key) -> Bearer:
    return Bearer(*key)


# ---------------------------------------------------------------------------- the marker


@given(st.sets(keys, min_size=1, max_size=40))
def test_marker_order_is_the_bearer_key_order(table: set[Key]) -> None:
    """Hex of the packed addresses sorts as the ``(enb, sgw, ue)`` byte tuples do, whatever
    the mix of families; one marker per key, in the pattern the API checks."""
    bearers = [_bearer(k) for k in table]
    by_marker = sorted(bearers, key=bearer_marker)
    assert [b.key for b in by_marker] == sorted(table)
    markers = {bearer_marker(b) for b in bearers}
    assert len(markers) == len(table)
    assert all(re.fullmatch(MARKER_PATTERN, m) for m in markers)


def test_the_marker_reads_as_the_packed_addresses_and_matches_the_row() -> None:
    p = pipeline()
    _learn(p, 1)
    (bearer,) = p.bearers.values()
    assert bearer_marker(bearer) == "c612000c-c6120016-0a000000"  # ENB2, SGW2, 10.0.0.0
    assert bearer.marker == bearer_marker(bearer)  # kept on the bearer once made
    assert row_marker(bearer.to_api()) == bearer_marker(bearer)
    v6 = Bearer(ENB1, SGW1, ipaddress.IPv6Address("2001:db8::1").packed)
    assert bearer_marker(v6) == "c612000b-c6120015-20010db8000000000000000000000001"
    assert row_marker(v6.to_api()) == bearer_marker(v6)


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "c612000b-c6120015",  # two addresses
        "C612000B-C6120015-0A000001",  # uppercase: would sort elsewhere, one spelling only
        "c612000b-c6120015-0a0000",  # three octets
        "c612000b-c6120015-0a00000100",  # five octets
        "198.18.0.11,198.18.0.21,10.0.0.1",  # text addresses
        "c612000b-c6120015-0a00000g",
    ],
)
def test_the_marker_pattern_refuses_anything_but_packed_hex(bad: str) -> None:
    # (a trailing newline, which Python's ``$`` lets through, is refused by the API's own
    # validator: see the 400 test below)
    assert re.search(MARKER_PATTERN, bad) is None


# ---------------------------------------------------------------------------- pages


def test_pages_walk_the_table_in_marker_order() -> None:
    p = pipeline()
    _learn(p, 23)
    pages = _walk(p, 10)
    assert [len(rows) for rows in pages] == [10, 10, 3]
    rows = [r for page in pages for r in page]
    ordered = sorted(p.bearers.values(), key=lambda b: b.key)
    assert rows == [b.to_api() for b in ordered]
    # each page's marker is its last bearer's
    page, marker = p.bearers_after(None, 10)
    assert marker == bearer_marker(page[-1]) == row_marker(pages[0][-1])
    assert p.tunnels_after(marker, 10)[0] == pages[1]


def test_numeric_order_within_a_family() -> None:
    """10.0.0.9 before 10.0.0.10 (text would put it after)."""
    p = pipeline()
    for i in (10, 9, 100, 2):
        p.from_s1(gpdu(ENB1, SGW1, i, udp_packet(_ue(i), PDN, 1, 80)), ENB, 1.0)
    rows, marker = p.tunnels_after(None, 10)
    assert [r["ue"] for r in rows] == ["10.0.0.2", "10.0.0.9", "10.0.0.10", "10.0.0.100"]
    assert marker is None


def test_a_full_last_page_has_no_next() -> None:
    p = pipeline()
    _learn(p, 20)
    pages = _walk(p, 10)
    assert [len(rows) for rows in pages] == [10, 10]  # not a third, empty page
    rows, marker = p.tunnels_after(None, 20)
    assert (len(rows), marker) == (20, None)
    rows, marker = p.tunnels_after(None, 19)
    assert len(rows) == 19
    assert marker is not None


def test_a_marker_is_a_position_not_a_bearer() -> None:
    p = pipeline()
    _learn(p, 6)
    page, marker = p.bearers_after(None, 3)
    assert marker is not None
    p.bearers.pop(page[-1].key)  # the marker's bearer is retired before the next request
    rest, last = p.bearers_after(marker, 3)
    assert last is None
    assert [b.key for b in page[:-1] + rest] == sorted(p.bearers)
    assert p.bearers_after("ff" * 4 + "-" + "ff" * 16 + "-" + "ff" * 16, 3) == ([], None)


def test_without_limit_every_bearer_after_the_marker() -> None:
    p = pipeline()
    _learn(p, 7)
    ordered = sorted(p.bearers.values(), key=lambda b: b.key)
    assert p.bearers_after(None, None) == (ordered, None)
    after = bearer_marker(ordered[2])
    assert p.bearers_after(after, None) == (ordered[3:], None)


def test_only_the_page_becomes_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    p = pipeline()
    _learn(p, 50)
    built: list[Key] = []
    to_api = Bearer.to_api

    def counting(self: Bearer) -> dict[str, object]:
        built.append(self.key)
        return to_api(self)

    monkeypatch.setattr(Bearer, "to_api", counting)
    rows, _ = p.tunnels_after(None, 5)
    assert len(rows) == len(built) == 5


def test_a_limit_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        pipeline().bearers_after(None, 0)


@given(
    initial=st.sets(keys, max_size=30),
    limit=st.integers(min_value=1, max_value=7),
    churn=st.lists(st.tuples(st.sets(keys, max_size=4), st.sets(keys, max_size=4)), max_size=12),
)
def test_every_bearer_present_throughout_is_seen_once(
    initial: set[Key], limit: int, churn: list[tuple[set[Key], set[Key]]]
) -> None:
    """Bearers are learned and retired between two pages (``churn``: added, removed): the
    walk never shows one twice, shows every one that stayed, each page in marker order after
    the marker, a full page whenever it names a next one."""
    p = Pipeline(TofConfig(backend="none"))
    for key in initial:
        p.bearers[key] = _bearer(key)
    stayed = set(initial)
    seen: list[Key] = []
    after: str | None = None
    steps = iter(churn)
    for _ in range(len(initial) + 4 * len(churn) + 2):  # each page but the last takes one
        page, marker = p.bearers_after(after, limit)
        markers = [bearer_marker(b) for b in page]
        assert markers == sorted(set(markers))
        assert after is None or all(m > after for m in markers)
        assert len(page) <= limit
        seen += [b.key for b in page]
        if marker is None:
            break
        assert len(page) == limit
        assert marker == markers[-1]
        after = marker
        added, removed = next(steps, (set(), set()))
        for key in removed:
            p.bearers.pop(key, None)
            stayed.discard(key)
        for key in added:
            if key not in p.bearers:  # new, or back as a new bearer (not one that stayed)
                p.bearers[key] = _bearer(key)
    else:
        pytest.fail("the walk did not end")
    assert len(seen) == len(set(seen))
    assert stayed <= set(seen)


# ---------------------------------------------------------------------------- backends


def test_the_null_and_userspace_backends_page_their_pipelines() -> None:
    null = NullBackend(TofConfig(backend="none"))
    user = UserspaceBackend(TofConfig())
    for backend in (null, user):
        assert isinstance(backend, KeysetTunnels)
        _learn(backend.pipeline, 5)
        rows, marker = backend.tunnels_after(None, 3)
        assert [r["ue"] for r in rows] == [r["ue"] for r in sorted_rows(backend.tunnels())[:3]]
        rest, last = backend.tunnels_after(marker, 3)
        assert last is None
        assert len(rest) == 2
    # the userspace backend's rows carry wall-clock times, as tunnels() does
    (row,) = user.tunnels_after(None, 1)[0]
    assert row["learnedAt"] == round(1.0 + user._mono_to_wall, 3)


def sorted_rows(rows: list[dict[str, object]]) -> list[dict[str, object]]:
    return sorted(rows, key=row_marker)


class _ListOnly:
    """A backend with ``tunnels()`` and no keyset page (a third-party one)."""

    name = "list-only"

    def __init__(self, rows: list[dict[str, object]]) -> None:
        self.rows = rows

    def tunnels(self) -> list[dict[str, object]]:
        return [dict(r) for r in self.rows]


def test_a_backend_without_keyset_pages_gets_them_cut_from_its_list() -> None:
    null = NullBackend(TofConfig(backend="none"))
    _learn(null.pipeline, 9)
    other = cast(Backend, _ListOnly(null.tunnels()))
    assert not isinstance(other, KeysetTunnels)
    after = None
    for _ in range(3):
        assert tunnels_after(other, after, 4) == null.tunnels_after(after, 4)
        after = null.tunnels_after(after, 4)[1]
    assert tunnels_after(other, None, None) == (sorted_rows(null.tunnels()), None)


# ---------------------------------------------------------------------------- the route


def _next(response: httpx.Response) -> str | None:
    """The ``Link: rel="next"`` URL, as ``Client.page`` reads it."""
    url = response.links.get("next", {}).get("url")
    return None if url is None else str(url)


def test_the_route_pages_and_links_the_next_page(tmp_path: Path) -> None:
    backend = RecordingBackend()
    _learn(backend.pipeline, 12)
    with _make(tmp_path, backend) as client:
        whole = client.get("/tunnels")
        assert "link" not in whole.headers
        assert whole.json() == backend.tunnels()  # without limit: as before, learning order
        url: str | None = "/tunnels?limit=5"
        pages: list[list[dict[str, object]]] = []
        while url is not None:
            r = client.get(url)
            assert r.status_code == 200
            pages.append(r.json())
            url = _next(r)
            if url is not None:
                query = parse_qs(urlsplit(url).query)
                assert urlsplit(url).path == "/tunnels"
                assert query["limit"] == ["5"]
                assert query["after"] == [row_marker(pages[-1][-1])]
        assert [len(p) for p in pages] == [5, 5, 2]
        assert [r for p in pages for r in p] == sorted_rows(backend.tunnels())
        # after without limit: all the rest, no Link
        marker = row_marker(pages[0][-1])
        rest = client.get("/tunnels", params={"after": marker})
        assert "link" not in rest.headers
        assert rest.json() == pages[1] + pages[2]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"limit": "0"}, "limit"),
        ({"limit": str(MAX_PAGE + 1)}, "limit"),
        ({"limit": "x"}, "limit"),
        ({"limit": "5", "after": "10.0.0.1"}, "after"),
        ({"limit": "5", "after": "C612000B-C6120015-0A000001"}, "after"),
        ({"after": "c612000b-c6120015"}, "after"),
        ({"limit": "5", "after": "c612000b-c6120015-0a000001\n"}, "after"),
    ],
)
def test_a_bad_limit_or_after_is_a_400_with_the_reason(
    tmp_path: Path, query: dict[str, str], field: str
) -> None:
    with _make(tmp_path, RecordingBackend()) as client:
        r = client.get("/tunnels", params=query)
        assert r.status_code == 400
        assert field in r.json()["detail"]


def test_the_openapi_document_states_the_paging(tmp_path: Path) -> None:
    with _make(tmp_path, RecordingBackend()) as client:
        op = client.get("/openapi.json").json()["paths"]["/tunnels"]["get"]
    params = {p["name"]: p for p in op["parameters"]}
    limit_schema = params["limit"]["schema"]["anyOf"][0]
    assert (limit_schema["minimum"], limit_schema["maximum"]) == (1, MAX_PAGE)
    assert params["after"]["schema"]["anyOf"][0]["pattern"] == MARKER_PATTERN
    assert "Link" in params["limit"]["description"]
    assert "Link" in op["responses"]["200"]["headers"]
    assert "400" in op["responses"]
