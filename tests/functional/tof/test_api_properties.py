"""Property-based run of the served OpenAPI (schemathesis) and concurrency against a real daemon."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import checks
from schemathesis.generation import GenerationMode

from fluidedge.core.config import parse_config
from fluidedge.core.part import DaemonContext
from fluidedge.core.store import Store
from fluidedge.daemon.app import create_app
from fluidedge.tof.part import create_part
from tests.fixtures.daemon import DaemonFactory

TOKEN = "p" * 32


def _app(tmp: Path) -> tuple[Any, Store]:
    config = parse_config({"state_dir": str(tmp), "api": {"token": TOKEN}})
    store = Store(tmp / "db.sqlite")
    ctx = DaemonContext(config=config, store=store)
    ctx.parts["tof"] = create_part({"backend": "none"}, ctx)
    return create_app(ctx), store


CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
]


def test_no_server_errors_no_schema_violations(tmp_path: Path) -> None:
    """Every operation of the served OpenAPI, fed schemathesis-generated requests."""
    app, store = _app(tmp_path)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    paths = {(op.method.upper(), op.path) for op in operations}
    assert ("POST", "/service") in paths
    assert ("DELETE", "/service/{name}") in paths
    # Valid and invalid requests alike: the schema now states what validation checks, so
    # positive generation alone rarely reaches the 400 path this test also asserts on.
    strategy = st.one_of(
        [op.as_strategy(generation_mode=mode) for op in operations for mode in GenerationMode]
    )
    seen: set[int] = set()

    @settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
    @given(case=strategy)
    def run(case: Any) -> None:
        response = case.call(headers={"Authorization": f"Bearer {TOKEN}"})
        seen.add(response.status_code)
        case.validate_response(response, checks=CHECKS)

    try:
        run()
    finally:
        store.close()
    assert 200 in seen
    assert 400 in seen


@pytest.mark.root
def test_hundred_concurrent_posts_persist_in_a_real_daemon(daemon_factory: DaemonFactory) -> None:
    daemon = daemon_factory(parts={"tof": {"backend": "none"}})
    headers = {"Authorization": f"Bearer {daemon.token}"}

    def post(i: int) -> int:
        body = {
            "name": f"svc{i}",
            "serviceIP": f"198.18.{50 + i // 200}.{i % 200 + 1}",
            "applicationIP": "198.19.0.10",
        }
        with httpx.Client(base_url=daemon.url, headers=headers, timeout=30) as client:
            return client.post("/service", json=body).status_code

    with ThreadPoolExecutor(100) as pool:
        codes = list(pool.map(post, range(100)))
    assert codes == [200] * 100
    daemon.kill9()
    daemon.start()
    services = httpx.get(f"{daemon.url}/service").json()
    assert len(services) == 100
    assert {s["name"] for s in services} == {f"svc{i}" for i in range(100)}
