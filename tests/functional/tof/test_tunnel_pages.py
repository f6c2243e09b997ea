"""``GET /tunnels?limit=N&after=MARKER`` on a real daemon whose userspace data plane learns
bearers from real frames (the fast path's S1 topology: eNB, host and SGW namespaces).

A client walks the pages by following the ``Link: rel="next"`` headers while bearers are
learned between two requests; bad ``limit``/``after`` values are 400s with the reason.
"""

from __future__ import annotations

import contextlib
import ipaddress
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from fluidedge.tof.tunnel_pages import row_marker
from tests.fixtures.daemon import DaemonFactory, DaemonHandle
from tests.fixtures.wait import wait_for
from tests.functional.tof_fastpath.scenario import ENB1, ENB2, PDN, inner_udp, up
from tests.functional.tof_fastpath.topo import Topo, topology

pytestmark = pytest.mark.root


def ue(i: int) -> bytes:
    return ipaddress.IPv4Address(f"198.18.100.{i}").packed


@dataclass
class Learning:
    """A daemon running the userspace TOF on a topology, and the way to teach it bearers."""

    topo: Topo
    daemon: DaemonHandle
    http: httpx.Client

    def learn(self, *ues: int, enb: bytes | None = None) -> None:
        """Send one uplink G-PDU of each UE (via ``enb``; by default odd UEs via eNB 1, even
        ones via eNB 2) and wait until the daemon lists them."""
        for i in ues:
            peer = enb or (ENB1 if i % 2 else ENB2)
            self.topo.send("enb", up(peer, 0x1000 + i, inner_udp(ue(i), PDN, 40000, 53, b"q")))
        want = {str(ipaddress.ip_address(ue(i))) for i in ues}

        def learned() -> bool:
            return want <= {row["ue"] for row in self.http.get("/tunnels").json()}

        wait_for(learned, 30, lambda: f"UEs {sorted(want)} in {self.http.get('/tunnels').text}")


@contextlib.contextmanager
def learning_daemon(daemon_factory: DaemonFactory, tag: str) -> Iterator[Learning]:
    with topology(tag) as t:
        section = {"backend": "userspace", "netns": t.host, "pinger_target": "198.18.200.10"}
        daemon = daemon_factory(parts={"tof": section})
        headers = {"Authorization": f"Bearer {daemon.token}"}
        with httpx.Client(base_url=daemon.url, headers=headers, timeout=30) as http:
            try:
                yield Learning(t, daemon, http)
            finally:
                daemon.stop()  # before the namespaces go


def test_a_client_walks_the_pages_while_bearers_are_learned(
    daemon_factory: DaemonFactory,
) -> None:
    """Markers sort eNB 1 (198.18.0.11) before eNB 2, then by UE: the first page of 5 is eNB
    1's UEs 11 to 19. Between it and the next, UE 3 is learned on eNB 1 (behind the marker:
    for the next walk) and UEs 23 (eNB 1) and 24 (eNB 2) ahead of it (in this walk)."""
    with learning_daemon(daemon_factory, "p") as env:
        env.learn(*range(10, 22))  # eNB 1: UEs 11, 13, .., 21; eNB 2: UEs 10, 12, .., 20
        whole = env.http.get("/tunnels")
        assert len(whole.json()) == 12
        assert "link" not in whole.headers  # without limit: the whole list, as before
        url: str | None = "/tunnels?limit=5"
        pages: list[list[dict[str, Any]]] = []
        while url is not None:
            r = env.http.get(url)
            assert r.status_code == 200, r.text
            pages.append(r.json())
            url = r.links.get("next", {}).get("url")
            if url is not None:
                query = parse_qs(urlsplit(url).query)
                assert (query["after"], query["limit"]) == ([row_marker(pages[-1][-1])], ["5"])
            if len(pages) == 1:
                env.learn(3, 23, enb=ENB1)
                env.learn(24, enb=ENB2)
        rows = [row for page in pages for row in page]
        markers = [row_marker(row) for row in rows]
        assert markers == sorted(set(markers))  # marker order, none twice
        assert [len(page) for page in pages] == [5, 5, 4]
        assert [row["ue"] for row in pages[0]] == [f"198.18.100.{i}" for i in (11, 13, 15, 17, 19)]
        assert {row["ue"] for row in rows} == {f"198.18.100.{i}" for i in [*range(10, 22), 23, 24]}
        # The next walk starts with UE 3, the smallest marker now (eNB 1, UE 3).
        first = env.http.get("/tunnels?limit=20").json()
        assert len(first) == 15
        assert first[0]["ue"] == "198.18.100.3"
        assert [row_marker(row) for row in first[1:]] == markers


def test_a_bad_limit_or_after_is_a_400_with_the_reason(daemon_factory: DaemonFactory) -> None:
    with learning_daemon(daemon_factory, "q") as env:
        env.learn(1, 2)
        for query, field in (
            ("limit=0", "limit"),
            ("limit=1001", "limit"),
            ("limit=some", "limit"),
            ("limit=1&after=198.18.0.11", "after"),
            ("limit=1&after=C612000B-C6120015-C6126401", "after"),
        ):
            r = env.http.get(f"/tunnels?{query}")
            assert r.status_code == 400, query
            assert field in r.json()["detail"], r.text
        # A marker of no bearer (any position) is fine: the walk goes on from there.
        r = env.http.get("/tunnels?limit=5&after=ffffffff-ffffffff-ffffffff")
        assert (r.status_code, r.json(), "link" in r.headers) == (200, [], False)
