"""Mp1 against a real daemon (``fluidedge serve`` with the TOF's null backend and ``[mec]``):
notifications delivered over real HTTP to a callback server on loopback, termination with and
without the app's confirmation, and state restored across a restart and a kill -9."""

from __future__ import annotations

import json
import threading
from typing import Any

import httpx
import pytest

from fluidedge.mec.models import AppTerminationNotification, ServiceAvailabilityNotification
from tests.fixtures.daemon import TOKEN, DaemonFactory, DaemonHandle
from tests.fixtures.wait import wait_for
from tests.functional.mec.conftest import START_TIMEOUT, Callbacks, up

pytestmark = [pytest.mark.slow]

ADMIN = {"Authorization": f"Bearer {TOKEN}"}
SM = "/mec_service_mgmt/v1"
AS = "/mec_app_support/v1"
PARTS: dict[str, dict[str, Any]] = {"tof": {"backend": "none"}, "mec": {}}

SERVICE = {
    "serName": "cache", "version": "1", "state": "ACTIVE", "serializer": "JSON",
    "transportInfo": {
        "id": "t1", "name": "REST", "type": "REST_HTTP", "protocol": "HTTP", "version": "1.1",
        "endpoint": {"addresses": [{"host": "10.0.3.10", "port": 8080}]}, "security": {},
    },
}  # fmt: skip


def create_app(daemon: DaemonHandle, name: str, **extra: Any) -> tuple[str, dict[str, str]]:
    body = {
        "name": name,
        "dataAddress": "10.0.2.10",
        "trafficRules": [
            {"trafficRuleId": "r1", "filterType": "FLOW", "priority": 1,
             "trafficFilter": [{"dstAddress": ["198.18.0.5/32"]}],
             "action": "FORWARD_DECAPSULATED", "state": "ACTIVE"},
        ],
        **extra,
    }  # fmt: skip
    answer = httpx.post(f"{daemon.url}/v1/apps", headers=ADMIN, json=body, timeout=30)
    assert answer.status_code == 201, answer.text
    created = answer.json()
    return created["appInstanceId"], {"Authorization": f"Bearer {created['token']}"}


def subscribe_availability(
    daemon: DaemonHandle, app: str, auth: dict[str, str], url: str, **criteria: Any
) -> str:
    body: dict[str, Any] = {
        "subscriptionType": "SerAvailabilityNotificationSubscription",
        "callbackReference": url,
    }
    if criteria:
        body["filteringCriteria"] = criteria
    answer = httpx.post(
        f"{daemon.url}{SM}/applications/{app}/subscriptions", headers=auth, json=body, timeout=30
    )
    assert answer.status_code == 201, answer.text
    assert answer.headers["location"] == answer.json()["_links"]["self"]["href"]
    return str(answer.headers["location"])


def changes(callbacks: Callbacks, path: str, count: int) -> list[tuple[str, str]]:
    """Wait for ``count`` availability notifications at ``path``: (changeType, state) each."""

    def enough() -> list[dict[str, Any]]:
        got = callbacks.at(path)
        return got if len(got) >= count else []

    notes = wait_for(
        enough, 30, lambda: f"{count} notifications at {path} (got {callbacks.at(path)})"
    )
    out = []
    for body in notes:
        note = ServiceAvailabilityNotification.model_validate(body)
        [ref] = note.service_references
        out.append((ref.change_type.value, ref.state.value))
    return sorted(out)


def test_availability_notifications_arrive_at_the_callback(
    daemon_factory: DaemonFactory, callbacks: Callbacks
) -> None:
    daemon = up(daemon_factory, PARTS)
    consumer, consumer_auth = create_app(daemon, "consumer")
    producer, producer_auth = create_app(daemon, "producer")
    sub = subscribe_availability(daemon, consumer, consumer_auth, callbacks.url("/all"))
    subscribe_availability(
        daemon, consumer, consumer_auth, callbacks.url("/other"), serNames=["not-cache"]
    )
    base = f"{daemon.url}{SM}/applications/{producer}/services"
    created = httpx.post(base, headers=producer_auth, json=SERVICE, timeout=30)
    assert created.status_code == 201
    sid = created.json()["serInstanceId"]
    down = httpx.put(f"{base}/{sid}", headers=producer_auth,
                     json={**SERVICE, "state": "INACTIVE"}, timeout=30)  # fmt: skip
    assert down.status_code == 200
    assert httpx.delete(f"{base}/{sid}", headers=producer_auth, timeout=30).status_code == 204
    assert changes(callbacks, "/all", 3) == [
        ("ADDED", "ACTIVE"),
        ("REMOVED", "INACTIVE"),
        ("STATE_CHANGED", "INACTIVE"),
    ]
    first = ServiceAvailabilityNotification.model_validate(callbacks.at("/all")[0])
    assert first.links.subscription.href == sub
    assert first.service_references[0].ser_instance_id == sid
    # The filtered subscription matched none of them; the daemon counts what it delivered.
    metrics = httpx.get(f"{daemon.url}/metrics", headers=ADMIN, timeout=30).text
    assert 'fluidedge_mec_notifications_total{outcome="delivered"} 3' in metrics
    assert callbacks.at("/other") == []
    # The audit log names the app that registered, by its appInstanceId.
    audit = (daemon.state_dir / "audit.log").read_text().splitlines()
    [entry] = [json.loads(line) for line in audit if f"/applications/{producer}/services" in line
               and '"POST"' in line]  # fmt: skip
    assert entry["auth"] == "app-token"
    assert entry["app"] == producer


def test_termination_waits_for_the_apps_confirmation(
    daemon_factory: DaemonFactory, callbacks: Callbacks
) -> None:
    daemon = up(daemon_factory, PARTS)
    app, auth = create_app(daemon, "graceful", gracefulTimeout=120)
    ready = httpx.post(f"{daemon.url}{AS}/applications/{app}/confirm_ready", headers=auth,
                       json={"indication": "READY"}, timeout=30)  # fmt: skip
    assert ready.status_code == 204
    services = httpx.get(f"{daemon.url}/service", headers=ADMIN, timeout=30).json()
    assert [s["serviceIP"] for s in services] == ["198.18.0.5"]
    answer = httpx.post(
        f"{daemon.url}{AS}/applications/{app}/subscriptions",
        headers=auth,
        json={
            "subscriptionType": "AppTerminationNotificationSubscription",
            "callbackReference": callbacks.url("/term"),
            "appInstanceId": app,
        },
        timeout=30,
    )
    assert answer.status_code == 201, answer.text

    def confirm(path: str, body: dict[str, Any]) -> None:  # what the app does on notice
        if path == "/term":
            note = AppTerminationNotification.model_validate(body)
            assert note.links.confirm_termination is not None
            href = note.links.confirm_termination.href
            assert href is not None
            httpx.post(href, headers=auth, json={"operationAction": "TERMINATING"}, timeout=30)

    callbacks.hooks.append(confirm)
    result: list[httpx.Response] = []
    deleting = threading.Thread(
        target=lambda: result.append(
            httpx.delete(f"{daemon.url}/v1/apps/{app}", headers=ADMIN, timeout=180)
        )
    )
    deleting.start()
    deleting.join(timeout=180)
    assert result, "DELETE did not answer"
    assert result[0].status_code == 200, result[0].text
    assert result[0].json()["terminationConfirmed"] is True
    [note] = callbacks.at("/term")
    assert note["notificationType"] == "AppTerminationNotification"
    assert note["maxGracefulTimeout"] == 120
    assert httpx.get(f"{daemon.url}/service", headers=ADMIN, timeout=30).json() == []
    gone = httpx.get(f"{daemon.url}{SM}/services", headers=auth, timeout=30)
    assert gone.status_code == 401  # the app's token died with it


def test_termination_proceeds_when_the_app_stays_silent(
    daemon_factory: DaemonFactory, callbacks: Callbacks
) -> None:
    daemon = up(daemon_factory, PARTS)
    app, auth = create_app(daemon, "silent", gracefulTimeout=0.5)
    httpx.post(
        f"{daemon.url}{AS}/applications/{app}/subscriptions",
        headers=auth,
        json={
            "subscriptionType": "AppTerminationNotificationSubscription",
            "callbackReference": callbacks.url("/silent"),
            "appInstanceId": app,
        },
        timeout=30,
    ).raise_for_status()
    answer = httpx.delete(f"{daemon.url}/v1/apps/{app}", headers=ADMIN, timeout=60)
    assert answer.json()["terminationConfirmed"] is False
    assert httpx.get(f"{daemon.url}/v1/apps/{app}", headers=ADMIN, timeout=30).status_code == 404
    wait_for(lambda: callbacks.at("/silent"), 30, "the termination notice")


@pytest.mark.parametrize("how", ["restart", "kill9"])
def test_apps_services_subscriptions_and_rules_survive_a_restart(
    daemon_factory: DaemonFactory, callbacks: Callbacks, how: str
) -> None:
    daemon = up(daemon_factory, PARTS)
    app, auth = create_app(daemon, "survivor")
    httpx.post(f"{daemon.url}{AS}/applications/{app}/confirm_ready", headers=auth,
               json={"indication": "READY"}, timeout=30).raise_for_status()  # fmt: skip
    base = f"{daemon.url}{SM}/applications/{app}/services"
    sid = httpx.post(base, headers=auth, json=SERVICE, timeout=30).json()["serInstanceId"]
    subscribe_availability(daemon, app, auth, callbacks.url("/after"))
    if how == "kill9":
        daemon.kill9()
    else:
        daemon.stop()
    daemon.start(timeout=START_TIMEOUT)
    # The app's token still works; its service, rule and subscription are back.
    assert (
        httpx.get(f"{daemon.url}/v1/apps/{app}", headers=ADMIN, timeout=30).json()["state"]
        == "READY"
    )
    assert (
        httpx.get(f"{daemon.url}{SM}/services/{sid}", headers=auth, timeout=30).json()["serName"]
        == "cache"
    )
    services = httpx.get(f"{daemon.url}/service", headers=ADMIN, timeout=30).json()
    assert [(s["serviceIP"], s["applicationIP"]) for s in services] == [("198.18.0.5", "10.0.2.10")]
    assert httpx.delete(f"{base}/{sid}", headers=auth, timeout=30).status_code == 204
    assert changes(callbacks, "/after", 1) == [("REMOVED", "ACTIVE")]


def test_a_callback_outside_the_allowed_networks_is_never_called(
    daemon_factory: DaemonFactory, callbacks: Callbacks
) -> None:
    daemon = up(daemon_factory, {**PARTS, "mec": {"callback_networks": ["10.255.0.0/16"]}})
    app, auth = create_app(daemon, "fenced")
    subscribe_availability(daemon, app, auth, callbacks.url("/fenced"))
    httpx.post(f"{daemon.url}{SM}/applications/{app}/services", headers=auth, json=SERVICE,
               timeout=30).raise_for_status()  # fmt: skip
    wait_for(
        lambda: (
            'fluidedge_mec_notifications_total{outcome="refused"} 1'
            in httpx.get(f"{daemon.url}/metrics", headers=ADMIN, timeout=30).text
        ),
        30,
        "the refused notification counted",
    )
    assert callbacks.at("/fenced") == []


def test_the_daemon_answers_what_its_document_says(daemon_factory: DaemonFactory) -> None:
    """A real daemon: the served document defines what it references; a body its schema
    accepts is past the 400 (unknown members with null, an integral ttl), what contradicts the
    path or the stored resources is a 422 ProblemDetails (it was a 400), and what the schema
    refuses is still a 400."""
    daemon = up(daemon_factory, PARTS)
    document = httpx.get(f"{daemon.url}/openapi.json", headers=ADMIN, timeout=30).json()
    assert "ProblemDetails" in document["components"]["schemas"]
    dns_rule = {"dnsRuleId": "d1", "domainName": "cache.example", "ipAddressType": "IP_V4",
                "ipAddress": "198.18.0.5", "state": "ACTIVE"}  # fmt: skip
    app, auth = create_app(daemon, "truth", dnsRules=[dns_rule])
    url = daemon.url

    def call(method: str, path: str, body: Any) -> httpx.Response:
        return httpx.request(method, f"{url}{path}", headers=auth, json=body, timeout=30)

    ready = call("POST", f"{AS}/applications/{app}/confirm_ready",
                 {"__main__": None, "indication": "READY"})  # fmt: skip
    assert ready.status_code == 204, ready.text
    ttl = call("PUT", f"{AS}/applications/{app}/dns_rules/d1", {**dns_rule, "ttl": 2147483646.0})
    assert ttl.status_code == 200, ttl.text
    unprocessable = [
        ("POST", f"{AS}/applications/{app}/subscriptions",
         {"subscriptionType": "AppTerminationNotificationSubscription",
          "callbackReference": "http://127.0.0.1:9/x", "appInstanceId": "0"}),
        ("PUT", f"{AS}/applications/{app}/traffic_rules/r1",
         {"trafficRuleId": "r9", "filterType": "FLOW", "priority": 1,
          "trafficFilter": [{"dstAddress": ["198.18.0.5"]}],
          "action": "FORWARD_DECAPSULATED", "state": "ACTIVE"}),
        ("PUT", f"{AS}/applications/{app}/dns_rules/d1", {**dns_rule, "ipAddressType": "IP_V6"}),
    ]  # fmt: skip
    for method, path, body in unprocessable:
        answer = call(method, path, body)
        assert answer.status_code == 422, (path, answer.text)
        assert answer.headers["content-type"] == "application/problem+json"
    services = f"{SM}/applications/{app}/services"
    assert call("POST", services, SERVICE).status_code == 201
    assert call("POST", services, SERVICE).status_code == 422  # the app's own serName again
    assert call("POST", services, {**SERVICE, "serInstanceId": "x"}).status_code == 400
    neither = {"name": "neither", "deploy": {"image": None, "template": None,
               "data": {"network": "apps", "address": "198.18.3.10/24"}}}  # fmt: skip
    refused = httpx.post(f"{url}/v1/apps", headers=ADMIN, json=neither, timeout=30)
    assert refused.status_code == 422, refused.text
    assert "exactly one of template and image" in refused.json()["detail"]
    scope = httpx.get(f"{url}{SM}/services", headers=auth, timeout=30,
                      params={"scope_of_locality": "PLANET"})  # fmt: skip
    assert scope.status_code == 400
