"""Discovery scoped by tenant: an app sees its tenant's services and other tenants' services
of scope MEC_SYSTEM only; availability notifications follow the same rule; an app's deletion
tells subscribers its services were REMOVED."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from fluidedge.core.store import Store
from fluidedge.mec.descriptor import AppDescriptor
from fluidedge.mec.errors import MecNotFound
from fluidedge.mec.models import SerAvailabilityNotificationSubscription, ServiceInfo
from fluidedge.mec.persist import Tables
from fluidedge.mec.platform import Platform
from fluidedge.mec.policy import ADMIN, Caller, ServiceQuery


def service(name: str, **extra: Any) -> ServiceInfo:
    return ServiceInfo.model_validate(
        {
            "serName": name, "version": "1", "state": "ACTIVE", "serializer": "JSON",
            "transportInfo": {
                "id": "t", "name": "REST", "type": "REST_HTTP", "protocol": "HTTP",
                "version": "1.1", "endpoint": {"uris": ["http://10.0.3.1/"]}, "security": {},
            },
            **extra,
        }
    )  # fmt: skip


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Platform, list[tuple[str, str, dict[str, Any]]], dict[str, str]]:
    sent: list[tuple[str, str, dict[str, Any]]] = []
    plat = Platform(
        Tables(Store(tmp_path / "db.sqlite")),
        lambda kind, url, body: sent.append((kind, url, body)),
        lambda: None,
    )
    apps = {}
    for name, tenant in (("a1", "acme"), ("a2", "acme"), ("b1", "beta")):
        spec = AppDescriptor.model_validate({"name": name, "tenant": tenant})
        apps[name] = plat.create_app(spec)[0]["appInstanceId"]
    return plat, sent, apps


def names(services: list[ServiceInfo]) -> list[str]:
    return sorted(s.ser_name for s in services)


def test_an_app_discovers_its_tenants_services_and_system_wide_ones(
    setup: tuple[Platform, list[Any], dict[str, str]],
) -> None:
    plat, _sent, apps = setup
    a1, a2, b1 = (Caller(apps[n]) for n in ("a1", "a2", "b1"))
    private = plat.register(a1, apps["a1"], service("cache"))
    plat.register(b1, apps["b1"], service("beta-only"))
    plat.register(b1, apps["b1"], service("location", scopeOfLocality="MEC_SYSTEM"))
    query = ServiceQuery()
    assert names(plat.discover(query, a2)) == ["cache", "location"]
    assert names(plat.discover(query, b1)) == ["beta-only", "location"]
    assert names(plat.discover(query, ADMIN)) == ["beta-only", "cache", "location"]
    assert plat.service(private.ser_instance_id or "", a2).ser_name == "cache"
    with pytest.raises(MecNotFound):
        plat.service(private.ser_instance_id or "", b1)


def test_notifications_reach_only_those_who_may_see_the_service(
    setup: tuple[Platform, list[Any], dict[str, str]],
) -> None:
    plat, sent, apps = setup
    for name in ("a2", "b1"):
        sub = SerAvailabilityNotificationSubscription.model_validate(
            {"subscriptionType": "SerAvailabilityNotificationSubscription",
             "callbackReference": f"http://127.0.0.1:9/{name}"}
        )  # fmt: skip
        plat.subscribe(Caller(apps[name]), apps[name], "svc_sub", sub, lambda sid: f"/s/{sid}")
    a1 = Caller(apps["a1"])
    cache = plat.register(a1, apps["a1"], service("cache"))
    assert [url for _, url, _ in sent] == ["http://127.0.0.1:9/a2"]
    sent.clear()
    wide = service("cache", scopeOfLocality="MEC_SYSTEM")
    plat.update_service(a1, apps["a1"], cache.ser_instance_id or "", wide)
    assert sorted(url for _, url, _ in sent) == ["http://127.0.0.1:9/a2", "http://127.0.0.1:9/b1"]
    sent.clear()
    plat.delete_app(apps["a1"])
    changes = sorted((url, body["serviceReferences"][0]["changeType"]) for _, url, body in sent)
    assert changes == [("http://127.0.0.1:9/a2", "REMOVED"), ("http://127.0.0.1:9/b1", "REMOVED")]
