"""The GUI's security at the HTTP level, against a real ``fluidedge serve`` (TOF API only).

The browser tests (tests/e2e/gui) show the same properties from Chromium's side; these pin the
headers, cookies and refusals exactly, without a lab.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest

from tests.fixtures.daemon import TOKEN, DaemonFactory, DaemonHandle

CSRF = re.compile(r'name="csrf" value="([^"]+)"')


@pytest.fixture
def daemon(daemon_factory: DaemonFactory) -> DaemonHandle:
    return daemon_factory(parts={"tof": {"backend": "none"}})


@pytest.fixture
def anonymous(daemon: DaemonHandle) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"{daemon.url}/ui", timeout=10) as client:
        yield client


def _login(client: httpx.Client, token: str = TOKEN) -> httpx.Response:
    page = client.get("/login")
    nonce = CSRF.search(page.text)
    assert nonce is not None
    return client.post("/login", data={"csrf": nonce.group(1), "token": token})


def _csrf(client: httpx.Client, path: str = "/tof") -> str:
    found = CSRF.search(client.get(path).text)
    assert found is not None
    return found.group(1)


def test_pages_need_a_session(anonymous: httpx.Client) -> None:
    for path in ("/", "/tof", "/tof/tunnels", "/measurements"):
        answer = anonymous.get(path)
        assert answer.status_code == 303, path
        assert answer.headers["location"] == "/ui/login"
    assert anonymous.get("/live/overview").status_code == 401
    form = {"name": "x", "serviceIP": "198.18.50.1", "applicationIP": "198.19.0.10"}
    assert anonymous.post("/tof/services", data=form).status_code == 401


def test_login_with_the_token_sets_a_strict_httponly_session(
    anonymous: httpx.Client, daemon: DaemonHandle
) -> None:
    refused = _login(anonymous, "wrong-" + TOKEN)
    assert refused.status_code == 401
    assert "fe_session" not in refused.headers.get("set-cookie", "")
    answer = _login(anonymous)
    assert answer.status_code == 303
    cookie = answer.headers["set-cookie"]
    assert "fe_session=" in cookie
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie
    assert "Path=/ui" in cookie
    assert TOKEN not in cookie
    assert anonymous.get("/").status_code == 200
    # The token went in a POST body only: never into a URL, a page or the log.
    assert TOKEN not in anonymous.get("/").text
    assert TOKEN not in daemon.log()


def test_login_form_needs_its_csrf_cookie(anonymous: httpx.Client) -> None:
    answer = anonymous.post("/login", data={"csrf": "guess", "token": TOKEN})
    assert answer.status_code == 403


def test_forms_need_the_session_csrf_token_and_same_origin(
    anonymous: httpx.Client, daemon: DaemonHandle
) -> None:
    _login(anonymous)
    form = {"name": "web", "serviceIP": "198.18.50.1", "applicationIP": "198.19.0.10"}
    assert anonymous.post("/tof/services", data=form).status_code == 403
    assert anonymous.post("/tof/services", data={**form, "csrf": "x" * 43}).status_code == 403
    token = _csrf(anonymous)
    cross = anonymous.post(
        "/tof/services", data={**form, "csrf": token}, headers={"Origin": "http://evil.example"}
    )
    assert cross.status_code == 403
    assert httpx.get(f"{daemon.url}/service").json() == []
    done = anonymous.post(
        "/tof/services", data={**form, "csrf": token}, headers={"Origin": daemon.url}
    )
    assert done.status_code == 303
    assert httpx.get(f"{daemon.url}/service").json() == [form]


def test_every_response_carries_the_security_headers(anonymous: httpx.Client) -> None:
    _login(anonymous)
    for path in ("/login", "/", "/tof", "/static/app.css", "/nope"):
        answer = anonymous.get(path)
        csp = answer.headers["content-security-policy"]
        assert "default-src 'none'" in csp, path
        assert "script-src 'self'" in csp
        assert "frame-ancestors 'none'" in csp
        assert answer.headers["x-content-type-options"] == "nosniff"
    page = anonymous.get("/")
    assert page.headers["cache-control"] == "no-store"
    assert "<script>" not in page.text
    assert " on" + "click=" not in page.text


def test_logout_ends_the_session(anonymous: httpx.Client) -> None:
    _login(anonymous)
    assert anonymous.post("/logout", data={"csrf": _csrf(anonymous, "/")}).status_code == 303
    assert anonymous.get("/").status_code == 303


def test_live_stream_sends_changed_values(anonymous: httpx.Client, daemon: DaemonHandle) -> None:
    _login(anonymous)
    with anonymous.stream("GET", "/live/overview") as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        lines = stream.iter_lines()
        assert next(lines).startswith("retry:")
        first = next(line for line in lines if line.startswith("data:"))
    assert '"tof-bearers": "0"' in first
