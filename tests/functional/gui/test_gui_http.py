"""The GUI's security at the HTTP level, against a real ``fluidedge serve`` (TOF API only).

The browser tests (tests/e2e/gui) show the same properties from Chromium's side; these pin the
headers, cookies and refusals exactly, without a lab.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import httpx
import pytest

from fluidedge.core.client import Client
from tests.fixtures.daemon import TOKEN, DaemonFactory, DaemonHandle
from tests.functional.daemon.conftest import purge_instances

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


def _first_values(client: httpx.Client, path: str) -> dict[str, str]:
    with client.stream("GET", path) as stream:
        assert stream.status_code == 200
        line = next(line for line in stream.iter_lines() if line.startswith("data:"))
    values: dict[str, str] = json.loads(line.removeprefix("data:"))
    return values


@pytest.mark.root
def test_instances_page_is_numbered_and_live_values_are_of_its_rows(
    daemon_factory: DaemonFactory,
) -> None:
    handle = daemon_factory(
        {"instances": {"pool_scale": 0, "memory_mb": 1024, "builtin_templates": False}},
        gui={"page_size": 10},
    )
    try:
        api = Client(url=handle.url, token=TOKEN)
        template = {"name": "gp", "command": ["/bin/busybox", "sleep", "1000"]}
        api.post("/v1/templates", template)
        names = [f"gp-{i:02}" for i in range(11)]
        for name in names:
            api.post("/v1/instances", {"name": name, "template": "gp"})
        api.post("/v1/instances/gp-04/pause")
        with httpx.Client(base_url=f"{handle.url}/ui", timeout=10) as ui:
            _login(ui)
            first = ui.get("/instances")
            assert first.status_code == 200
            shown = re.findall(r'id="inst-(gp-\d\d)-state"', first.text)
            assert shown == names[:10]  # by name, one page of the GUI's page size
            assert "page 1 of 2" in first.text
            assert '<a href="?page=2" rel="next">Next</a>' in first.text
            second = ui.get("/instances", params={"page": "2"})
            assert re.findall(r'id="inst-(gp-\d\d)-state"', second.text) == ["gp-10"]
            past = ui.get("/instances", params={"page": "9"})  # past the end: the last page
            assert re.findall(r'id="inst-(gp-\d\d)-state"', past.text) == ["gp-10"]
            assert ui.get("/instances", params={"page": "x"}).status_code == 400
            # The live values of a page: the counts, the total and that page's rows only.
            page_one = _first_values(ui, "/live/instances?page=1")
            assert page_one["inst-gp-04-state"] == "paused"
            assert page_one["inst-gp-00-state"] == "running"
            assert "inst-gp-10-state" not in page_one
            assert (page_one["inst-total"], page_one["inst-running"]) == ("11", "10")
            assert page_one["inst-paused"] == "1"
            page_two = _first_values(ui, "/live/instances?page=2")
            assert [k for k in page_two if k.startswith("inst-gp-")] == ["inst-gp-10-state"]
            one = _first_values(ui, "/live/instance?name=gp-04")
            assert [k for k in one if k.startswith("inst-gp-")] == ["inst-gp-04-state"]
            assert one["inst-gp-04-state"] == "paused"
        api.close()
    finally:
        handle.stop()
        purge_instances(handle)
