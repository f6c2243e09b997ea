"""On-demand services in the Service API: validation (400 with reasons), refusal without an
instance manager, persistence of the spec in the catalog."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from tests.unit.tof.test_service_api import AUTH, RecordingBackend, _make

from fluidedge.core.store import Store
from fluidedge.tof.catalog import ServiceCatalog
from fluidedge.tof.models import NewServiceModel

ONDEMAND: dict[str, Any] = {
    "name": "web",
    "serviceIP": "198.18.50.1",
    "onDemand": {
        "template": "edge",
        "policy": "per-ue",
        "maxInstances": 4,
        "idlePause": 5,
        "idleDelete": 60,
        "addressPool": "198.19.0.64/29",
        "gateway": "198.19.0.1",
    },
}


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    with _make(tmp_path, RecordingBackend()) as c:
        yield c


def _with(**changes: Any) -> dict[str, Any]:
    body = {**ONDEMAND, "onDemand": {**ONDEMAND["onDemand"]}}
    for key, value in changes.items():
        if key in body["onDemand"] or key in ("interface",):
            body["onDemand"][key] = value
        else:
            body[key] = value
    return body


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (_with(applicationIP="198.19.0.10"), "exactly one of applicationIP and onDemand"),
        ({"name": "x", "serviceIP": "198.18.50.1"}, "exactly one of applicationIP and onDemand"),
        (_with(policy="per-flow"), "policy"),
        (_with(maxInstances=0), "maxInstances"),
        (_with(idlePause=0), "idlePause"),
        (_with(idleDelete=-1), "idleDelete"),
        (_with(addressPool="198.19.0.64"), "addressPool"),
        (_with(addressPool="10.0.0.0/8"), "at most 65536 addresses"),
        (_with(gateway="198.19.0.256"), "gateway"),
        (_with(gateway="2001:db8::1"), "same IP version"),
        (_with(template="bad name!"), "template"),
        (_with(interface="x" * 20), "interface"),
    ],
)
def test_invalid_on_demand_is_400_with_reason(
    client: TestClient, body: dict[str, Any], reason: str
) -> None:
    response = client.post("/service", json=body, headers=AUTH)
    assert response.status_code == 400, response.text
    assert reason in response.json()["detail"]
    assert client.get("/service").json() == []


def test_on_demand_refused_without_instance_manager(client: TestClient) -> None:
    response = client.post("/service", json=ONDEMAND, headers=AUTH)
    assert response.status_code == 400
    assert "no [instances] part" in response.json()["detail"]
    assert client.get("/service/web/instances").status_code == 404


def test_static_service_shows_no_instances(client: TestClient) -> None:
    body = {"name": "s", "serviceIP": "198.18.50.2", "applicationIP": "198.19.0.10"}
    assert client.post("/service", json=body, headers=AUTH).json() == body
    assert client.get("/service/s/instances").json() == {**body, "instances": [], "events": {}}


def test_on_demand_spec_persists_in_the_catalog(tmp_path: Path) -> None:
    store = Store(tmp_path / "db.sqlite")
    applied: list[object] = []
    catalog = ServiceCatalog(store, applied.append)
    service = NewServiceModel.model_validate(ONDEMAND).to_service()
    catalog.add(service)
    again = ServiceCatalog(Store(tmp_path / "db.sqlite"), applied.append)
    restored = again.find("web")
    assert restored == service
    assert restored.ondemand is not None
    assert restored.ondemand.per_ue
    assert restored.to_api()["onDemand"] == {**ONDEMAND["onDemand"], "interface": "eth0"}


def test_stored_on_demand_service_is_inactive_without_instance_manager(tmp_path: Path) -> None:
    store = Store(tmp_path / "db.sqlite")
    ServiceCatalog(store, lambda _s: None).add(
        NewServiceModel.model_validate(ONDEMAND).to_service()
    )
    store.close()
    backend = RecordingBackend()
    with _make(tmp_path, backend) as client:
        assert [s["name"] for s in client.get("/service").json()] == ["web"]
        assert backend.applied == [{}]  # declared, kept, not run: nothing can create instances
        assert backend.pipeline.services == {}


def test_pool_resolved_not_refused() -> None:
    body = _with(addressPool="198.19.0.65/30", gateway="198.19.0.66")
    spec = NewServiceModel.model_validate(body).to_service().ondemand
    assert spec is not None
    assert spec.address_pool == "198.19.0.64/30"  # host bits dropped
    assert list(spec.pool_hosts()) == ["198.19.0.65"]  # the gateway is never handed out
