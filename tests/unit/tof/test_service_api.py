"""The Service API (§4.3.4.1): shapes, codes, validation, persistence, apply-before-200."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from tests.fixtures.prom import sample
from tests.unit.tof_accounting.test_usage import bearer_up

from fluidedge.core.config import parse_config
from fluidedge.core.part import DaemonContext
from fluidedge.core.store import Store
from fluidedge.daemon.app import create_app
from fluidedge.tof.backend import NullBackend
from fluidedge.tof.config import TofConfig
from fluidedge.tof.errors import DataPlaneError
from fluidedge.tof.models import Match, Service
from fluidedge.tof.part import TofPart

TOKEN = "s" * 32
AUTH = {"Authorization": f"Bearer {TOKEN}"}


class RecordingBackend(NullBackend):
    """The null backend, recording what was applied and able to refuse."""

    def __init__(self) -> None:
        super().__init__(TofConfig(backend="none"))
        self.applied: list[dict[str, Service]] = []
        self.fail = False

    def apply(self, services: Mapping[str, Service]) -> None:
        if self.fail:
            raise DataPlaneError("injected failure")
        super().apply(services)
        self.applied.append(dict(services))


def _make(tmp_path: Path, backend: RecordingBackend) -> TestClient:
    config = parse_config({"state_dir": str(tmp_path), "api": {"token": TOKEN}})
    ctx = DaemonContext(config=config, store=Store(tmp_path / "db.sqlite"))
    ctx.parts["tof"] = TofPart(TofConfig(backend="none"), ctx, backend=backend)
    return TestClient(create_app(ctx))


@pytest.fixture
def backend() -> RecordingBackend:
    return RecordingBackend()


@pytest.fixture
def client(tmp_path: Path, backend: RecordingBackend) -> Iterator[TestClient]:
    with _make(tmp_path, backend) as c:
        yield c


SVC = {"name": "video", "serviceIP": "198.18.50.1", "applicationIP": "198.19.0.10"}


def test_post_list_put_delete_roundtrip(client: TestClient, backend: RecordingBackend) -> None:
    assert client.get("/service").json() == []
    r = client.post("/service", json=SVC, headers=AUTH)
    assert r.status_code == 200
    assert r.json() == SVC
    assert client.get("/service").json() == [SVC]
    assert backend.pipeline.services  # applied to the data plane before the 200
    moved = {**SVC, "applicationIP": "198.19.0.11"}
    r = client.put("/service/video", json=moved, headers=AUTH)
    assert r.status_code == 200
    assert r.json() == moved
    assert backend.applied[-1]["video"].application_ip == "198.19.0.11"
    assert client.delete("/service/video", headers=AUTH).status_code == 200
    assert client.get("/service").json() == []
    assert backend.applied[-1] == {}


def test_delete_by_service_ip_and_404(client: TestClient) -> None:
    client.post("/service", json=SVC, headers=AUTH)
    assert client.delete("/service/198.18.50.2", headers=AUTH).status_code == 404
    r = client.delete("/service/198.18.50.1", headers=AUTH)
    assert r.status_code == 200
    assert r.json()["name"] == "video"
    assert client.delete("/service/video", headers=AUTH).status_code == 404


def test_a_service_ip_shared_by_classified_services_needs_a_name(
    tmp_path: Path, backend: RecordingBackend
) -> None:
    """DELETE and GET by a serviceIP that several classified services share answer 409 with
    their names and change nothing; by name they work, and once one is left its IP names it."""
    config = parse_config({"state_dir": str(tmp_path), "api": {"token": TOKEN}})
    ctx = DaemonContext(config=config, store=Store(tmp_path / "db.sqlite"))
    part = TofPart(TofConfig(backend="none"), ctx, backend=backend)
    ctx.parts["tof"] = part
    web = Service("mec-web", "198.18.50.1", "198.19.0.10", match=Match((6,), ((80, 80),)))
    dns = Service("mec-dns", "198.18.50.1", "198.19.0.11", match=Match((17,), ((53, 53),)))
    part.catalog.add(web)
    part.catalog.add(dns)
    with TestClient(create_app(ctx)) as client:
        applied = len(backend.applied)
        r = client.delete("/service/198.18.50.1", headers=AUTH)
        assert r.status_code == 409
        assert r.headers["x-fluidedge-error"] == "ServiceConflict"  # the error's class
        assert r.json()["detail"] == (
            "serviceIP 198.18.50.1 is shared by 2 classified services ('mec-dns', 'mec-web'): "
            "name the service"
        )
        assert client.get("/service/198.18.50.1/instances").status_code == 409
        assert {s["name"] for s in client.get("/service").json()} == {"mec-web", "mec-dns"}
        assert len(backend.applied) == applied  # nothing was applied or deleted
        r = client.delete("/service/mec-web", headers=AUTH)
        assert r.status_code == 200
        assert r.json()["match"] == {
            "protocols": [6],
            "ports": [[80, 80]],
            "priority": 0,
            "sources": [],
            "sourcePorts": [],
        }
        assert client.get("/service/198.18.50.1/instances").json()["name"] == "mec-dns"
        r = client.delete("/service/198.18.50.1", headers=AUTH)
        assert r.status_code == 200
        assert r.json()["name"] == "mec-dns"
        assert client.get("/service").json() == []
        assert backend.applied[-1] == {}


def test_conflicts_are_409(client: TestClient) -> None:
    assert client.post("/service", json=SVC, headers=AUTH).status_code == 200
    same_name = {**SVC, "serviceIP": "198.18.50.2"}
    same_ip = {**SVC, "name": "other"}
    assert client.post("/service", json=same_name, headers=AUTH).status_code == 409
    assert client.post("/service", json=same_ip, headers=AUTH).status_code == 409
    other = {"name": "b", "serviceIP": "198.18.50.9", "applicationIP": "198.19.0.10"}
    assert client.post("/service", json=other, headers=AUTH).status_code == 200
    r = client.put("/service/b", json={**other, "serviceIP": "198.18.50.1"}, headers=AUTH)
    assert r.status_code == 409
    r = client.put("/service/b", json={**other, "name": "video"}, headers=AUTH)
    assert r.status_code == 409
    r = client.put("/service/nope", json=other, headers=AUTH)
    assert r.status_code == 404


@pytest.mark.parametrize(
    "body",
    [
        {**SVC, "serviceIP": "198.18.050.1"},
        {**SVC, "serviceIP": "198.18.50.1/32"},
        {**SVC, "serviceIP": "fe80::1%eth0"},
        {**SVC, "serviceIP": "224.0.0.1"},
        {**SVC, "serviceIP": "0.0.0.0"},
        {**SVC, "serviceIP": "2001:db8::1"},  # mixed families
        {**SVC, "name": "bad name"},
        {**SVC, "name": "x" * 64},
        {**SVC, "name": ""},
        {**SVC, "name": 5},
        {**SVC, "extra": 1},
        {"name": "a", "serviceIP": "198.18.50.1"},
        {**SVC, "serviceIp": "198.18.50.1"},
    ],
)
def test_bad_requests_are_400_with_reason(client: TestClient, body: dict[str, object]) -> None:
    r = client.post("/service", json=body, headers=AUTH)
    assert r.status_code == 400, r.text
    assert r.json()["detail"]


def test_service_ip_may_equal_application_ip(client: TestClient, backend: RecordingBackend) -> None:
    body = {**SVC, "applicationIP": SVC["serviceIP"]}
    r = client.post("/service", json=body, headers=AUTH)
    assert r.status_code == 200, r.text
    assert backend.applied[-1]["video"].application_ip == "198.18.50.1"


def test_ipv6_is_canonicalised(client: TestClient) -> None:
    body = {"name": "v6", "serviceIP": "2001:DB8::0:1", "applicationIP": "fd00::10"}
    r = client.post("/service", json=body, headers=AUTH)
    assert r.status_code == 200
    assert r.json()["serviceIP"] == "2001:db8::1"
    assert client.delete("/service/2001:db8::1", headers=AUTH).status_code == 200


def test_mutations_need_the_token(client: TestClient) -> None:
    assert client.post("/service", json=SVC).status_code == 401
    assert client.get("/service").status_code == 200  # reads open on loopback by default


def test_data_plane_failure_keeps_previous_state(
    client: TestClient, backend: RecordingBackend
) -> None:
    client.post("/service", json=SVC, headers=AUTH)
    backend.fail = True
    other = {"name": "b", "serviceIP": "198.18.50.9", "applicationIP": "198.19.0.10"}
    assert client.post("/service", json=other, headers=AUTH).status_code == 500
    assert client.delete("/service/video", headers=AUTH).status_code == 500
    backend.fail = False
    assert client.get("/service").json() == [SVC]


def test_services_persist_across_restart(tmp_path: Path) -> None:
    first = RecordingBackend()
    with _make(tmp_path, first) as c:
        c.post("/service", json=SVC, headers=AUTH)
    second = RecordingBackend()
    with _make(tmp_path, second) as c:
        assert c.get("/service").json() == [SVC]
        assert second.applied[0]["video"].service_ip == "198.18.50.1"  # restored at start


def test_concurrent_posts_all_persist(client: TestClient, tmp_path: Path) -> None:
    def post(i: int) -> int:
        body = {"name": f"s{i}", "serviceIP": f"198.18.60.{i + 1}", "applicationIP": "198.19.0.10"}
        return client.post("/service", json=body, headers=AUTH).status_code

    with ThreadPoolExecutor(16) as pool:
        codes = list(pool.map(post, range(100)))
    assert codes == [200] * 100
    assert len(client.get("/service").json()) == 100
    rows = Store(tmp_path / "db.sqlite").query("SELECT COUNT(*) AS n FROM tof_service")
    assert rows[0]["n"] == 100


def test_tunnels_stats_metrics(client: TestClient) -> None:
    client.post("/service", json=SVC, headers=AUTH)
    assert client.get("/tunnels").json() == []
    stats = client.get("/stats").json()
    assert stats["services"]["video"]["upPackets"] == 0
    text = client.get("/metrics").text
    assert sample(text, "fluidedge_tof_service_packets_total", service="video", direction="up") == 0
    assert client.delete("/tunnels", headers=AUTH).json() == {"purged": 0}


def test_openapi_has_the_seed_paths(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    assert set(spec["paths"]["/service"]) == {"get", "post"}
    assert set(spec["paths"]["/service/{name}"]) == {"put", "delete"}
    responses = spec["paths"]["/service/{name}"]["put"]["responses"]
    assert {"200", "400", "404", "409"} <= set(responses)


@pytest.mark.parametrize(
    ("configured", "with_secgroups", "expected"),
    [(None, False, False), (None, True, True), (False, True, False), (True, False, True)],
)
def test_offloads_are_filtered_when_security_groups_are_on(
    tmp_path: Path, configured: bool | None, with_secgroups: bool, expected: bool
) -> None:
    """``filter_offloaded`` unset follows the daemon's parts: with [secgroups] the fast path
    must hand offloaded packets to the host's firewall (docs/tof-fastpath.md)."""
    ctx = DaemonContext(config=parse_config({}), store=Store(tmp_path / "db.sqlite"))
    if with_secgroups:
        ctx.parts["secgroups"] = object()  # type: ignore[assignment]  # only its presence counts
    part = TofPart(TofConfig(backend="none", filter_offloaded=configured), ctx)
    assert part.config.filter_offloaded is expected


@pytest.mark.parametrize("per_bearer", [False, True])
def test_metrics_per_bearer_are_opt_in(tmp_path: Path, per_bearer: bool) -> None:
    """Two series per subscriber, labelled with its address, rebuilt on every scrape: only
    with ``metrics_per_bearer``; the bearer count is always there."""
    backend = RecordingBackend()
    bearer_up(backend.pipeline)
    listed: list[int] = []
    tunnels = backend.tunnels

    def counted() -> list[dict[str, object]]:
        listed.append(1)
        return tunnels()

    backend.tunnels = counted  # type: ignore[method-assign]
    config = parse_config({"state_dir": str(tmp_path), "api": {"token": TOKEN}})
    ctx = DaemonContext(config=config, store=Store(tmp_path / "db.sqlite"))
    tof = TofConfig(backend="none", metrics_per_bearer=per_bearer)
    ctx.parts["tof"] = TofPart(tof, ctx, backend=backend)
    with TestClient(create_app(ctx)) as client:
        text = client.get("/metrics").text
    assert sample(text, "fluidedge_tof_bearers") == 1
    assert ("fluidedge_tof_tunnel_packets_total{" in text) is per_bearer
    assert bool(listed) is per_bearer
