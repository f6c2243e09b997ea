"""The real daemon process: starts, serves health and OpenAPI, survives kill -9."""

from __future__ import annotations

import httpx
import pytest

from tests.fixtures.daemon import DaemonFactory


def test_daemon_serves_health_openapi_and_docs(daemon_factory: DaemonFactory) -> None:
    daemon = daemon_factory()
    health = httpx.get(f"{daemon.url}/healthz").json()
    assert health["status"] == "ok"
    assert httpx.get(f"{daemon.url}/openapi.json").json()["info"]["title"] == "fluidedge"
    assert "swagger" in httpx.get(f"{daemon.url}/docs").text.lower()


def test_daemon_comes_back_after_kill9(daemon_factory: DaemonFactory) -> None:
    daemon = daemon_factory()
    daemon.kill9()
    daemon.start()
    assert httpx.get(f"{daemon.url}/healthz").status_code == 200


def test_bad_config_fails_with_a_clear_message(daemon_factory: DaemonFactory) -> None:
    daemon = daemon_factory({"nonsense": {"x": 1}}, start=False)
    with pytest.raises(RuntimeError, match=r"unknown table \[nonsense\]"):
        daemon.start(timeout=10)
