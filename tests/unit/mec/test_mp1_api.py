"""Mp1 through the daemon's whole ASGI stack, in process (the TOF part with its null backend):
credentials and scoping, ProblemDetails, rules into the TOF after confirm_ready, persistence."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from fluidedge.core import rows
from fluidedge.core.config import parse_config
from fluidedge.core.part import DaemonContext
from fluidedge.core.store import Store
from fluidedge.daemon.app import create_app
from fluidedge.mec.part import create_part
from fluidedge.tof.config import TofConfig
from fluidedge.tof.part import TofPart

TOKEN = "m" * 32
ADMIN = {"Authorization": f"Bearer {TOKEN}"}
SM = "/mec_service_mgmt/v1"
AS = "/mec_app_support/v1"
PROBLEM = "application/problem+json"


def rule(rule_id: str, dst: str, state: str = "ACTIVE", **extra: Any) -> dict[str, Any]:
    return {
        "trafficRuleId": rule_id, "filterType": "FLOW", "priority": 1,
        "trafficFilter": [{"dstAddress": [dst]}], "action": "FORWARD_DECAPSULATED",
        "state": state, **extra,
    }  # fmt: skip


def descriptor(name: str, dst: str, data: str) -> dict[str, Any]:
    return {
        "name": name,
        "dataAddress": data,
        "trafficRules": [rule("r1", dst)],
        "dnsRules": [
            {"dnsRuleId": "d1", "domainName": f"{name}.example", "ipAddressType": "IP_V4",
             "ipAddress": dst, "ttl": 30, "state": "ACTIVE"},
        ],
    }  # fmt: skip


SERVICE = {
    "serName": "cache", "version": "1", "state": "ACTIVE", "serializer": "JSON",
    "transportInfo": {
        "id": "t1", "name": "REST", "type": "REST_HTTP", "protocol": "HTTP", "version": "1.1",
        "endpoint": {"addresses": [{"host": "10.0.3.10", "port": 8080}]}, "security": {},
    },
}  # fmt: skip


def build(tmp_path: Path) -> TestClient:
    config = parse_config({"state_dir": str(tmp_path), "api": {"token": TOKEN}})
    ctx = DaemonContext(config=config, store=Store(tmp_path / "db.sqlite"))
    ctx.parts["tof"] = TofPart(TofConfig(backend="none"), ctx)
    ctx.parts["mec"] = create_part({}, ctx)
    return TestClient(create_app(ctx))


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    with build(tmp_path) as c:
        yield c


def new_app(client: TestClient, name: str, dst: str, data: str) -> tuple[str, dict[str, str]]:
    answer = client.post("/v1/apps", headers=ADMIN, json=descriptor(name, dst, data))
    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert body["state"] == "INSTANTIATED"
    return body["appInstanceId"], {"Authorization": f"Bearer {body['token']}"}


def tof(client: TestClient) -> dict[str, tuple[str, str]]:
    return {
        s["serviceIP"]: (s["name"], s["applicationIP"])
        for s in client.get("/service", headers=ADMIN).json()
    }


def test_rules_reach_the_tof_only_after_confirm_ready_and_leave_it_when_deactivated(
    client: TestClient,
) -> None:
    app, auth = new_app(client, "cache", "198.18.0.5", "10.0.2.10")
    assert "198.18.0.5" not in tof(client)
    ready = client.post(f"{AS}/applications/{app}/confirm_ready", headers=auth,
                        json={"indication": "READY"})  # fmt: skip
    assert ready.status_code == 204
    assert tof(client)["198.18.0.5"][1] == "10.0.2.10"
    off = client.put(f"{AS}/applications/{app}/traffic_rules/r1", headers=auth,
                     json=rule("r1", "198.18.0.5", "INACTIVE"))  # fmt: skip
    assert off.status_code == 200
    assert off.json()["state"] == "INACTIVE"
    assert "198.18.0.5" not in tof(client)
    moved = client.put(f"{AS}/applications/{app}/traffic_rules/r1", headers=auth,
                       json=rule("r1", "198.18.0.7"))  # fmt: skip
    assert moved.status_code == 200
    assert "198.18.0.7" in tof(client)
    assert client.get(f"{AS}/applications/{app}/traffic_rules/r1", headers=auth).json() == (
        rule("r1", "198.18.0.7")
    )


def test_an_unsupported_activation_is_a_problem_and_changes_nothing(client: TestClient) -> None:
    app, auth = new_app(client, "cache", "198.18.0.5", "10.0.2.10")
    client.post(
        f"{AS}/applications/{app}/confirm_ready", headers=auth, json={"indication": "READY"}
    )
    qci = rule("r1", "198.18.0.5", trafficFilter=[{"dstAddress": ["198.18.0.5"], "qCI": 9}])
    refused = client.put(f"{AS}/applications/{app}/traffic_rules/r1", headers=auth,
                         json=qci)  # fmt: skip
    assert refused.status_code == 422  # well-formed; the TOF cannot express it
    assert refused.headers["content-type"] == PROBLEM
    assert "filter on qCI is not supported" in refused.json()["detail"]
    assert (
        client.get(f"{AS}/applications/{app}/traffic_rules/r1", headers=auth).json()["action"]
        == "FORWARD_DECAPSULATED"
    )
    assert "198.18.0.5" in tof(client)


def test_port_filters_let_two_apps_share_an_address_and_drop_becomes_a_tof_verdict(
    client: TestClient,
) -> None:
    web, auth_web = new_app(client, "web", "198.18.0.5", "10.0.2.10")
    tls, auth_tls = new_app(client, "tls", "198.18.0.6", "10.0.2.11")
    for app, auth in ((web, auth_web), (tls, auth_tls)):
        client.post(
            f"{AS}/applications/{app}/confirm_ready", headers=auth, json={"indication": "READY"}
        )
    port80 = [{"dstAddress": ["198.18.0.5"], "protocol": ["TCP"], "dstPort": ["80"]}]
    port443 = [{"dstAddress": ["198.18.0.5"], "protocol": ["TCP"], "dstPort": ["443"]}]
    put = client.put(f"{AS}/applications/{web}/traffic_rules/r1", headers=auth_web,
                     json=rule("r1", "", trafficFilter=port80))  # fmt: skip
    assert put.status_code == 200, put.text
    put = client.put(f"{AS}/applications/{tls}/traffic_rules/r1", headers=auth_tls,
                     json=rule("r1", "", trafficFilter=port443, priority=0))  # fmt: skip
    assert put.status_code == 200, put.text
    shown = {s["name"]: s for s in client.get("/service", headers=ADMIN).json()}
    mine = [s for s in shown.values() if s["serviceIP"] == "198.18.0.5"]
    assert sorted((s["applicationIP"], s["match"]["ports"], s["action"]) for s in mine) == [
        ("10.0.2.10", [[80, 80]], "offload"),
        ("10.0.2.11", [[443, 443]], "offload"),
    ]
    assert {s["match"]["priority"] for s in mine} == {0, 1}
    # A plain (unfiltered) rule on that address would take all of it: 409, rolled back.
    clash = client.put(f"{AS}/applications/{web}/traffic_rules/r1", headers=auth_web,
                       json=rule("r1", "198.18.0.5"))  # fmt: skip
    assert clash.status_code == 409, clash.text
    assert (
        client.get(f"{AS}/applications/{web}/traffic_rules/r1", headers=auth_web).json()[
            "trafficFilter"
        ]
        == port80
    )
    drop = client.put(f"{AS}/applications/{web}/traffic_rules/r1", headers=auth_web,
                      json=rule("r1", "198.18.0.7", action="DROP"))  # fmt: skip
    assert drop.status_code == 200, drop.text
    dropped = [
        s for s in client.get("/service", headers=ADMIN).json() if s["serviceIP"] == "198.18.0.7"
    ]
    assert [(s["action"], s["match"]["protocols"], s["match"]["ports"]) for s in dropped] == [
        ("drop", [], [])
    ]


def test_a_rule_clashing_with_a_tof_service_is_a_conflict_and_rolled_back(
    client: TestClient,
) -> None:
    taken = {"name": "core", "serviceIP": "198.18.0.9", "applicationIP": "10.9.9.9"}
    assert client.post("/service", headers=ADMIN, json=taken).status_code == 200
    app, auth = new_app(client, "cache", "198.18.0.5", "10.0.2.10")
    client.post(
        f"{AS}/applications/{app}/confirm_ready", headers=auth, json={"indication": "READY"}
    )
    clash = client.put(f"{AS}/applications/{app}/traffic_rules/r1", headers=auth,
                       json=rule("r1", "198.18.0.9"))  # fmt: skip
    assert clash.status_code == 409, clash.text
    assert clash.headers["content-type"] == PROBLEM
    assert tof(client)["198.18.0.5"][1] == "10.0.2.10"
    assert tof(client)["198.18.0.9"] == ("core", "10.9.9.9")


def test_an_app_cannot_read_or_change_another_apps_things(client: TestClient) -> None:
    a, auth_a = new_app(client, "a", "198.18.0.5", "10.0.2.10")
    b, auth_b = new_app(client, "b", "198.18.0.6", "10.0.2.11")
    svc = client.post(f"{SM}/applications/{b}/services", headers=auth_b, json=SERVICE)
    assert svc.status_code == 201
    sid = svc.json()["serInstanceId"]
    for method, path, body in [
        ("GET", f"{AS}/applications/{b}/traffic_rules", None),
        ("PUT", f"{AS}/applications/{b}/traffic_rules/r1", rule("r1", "198.18.0.6", "INACTIVE")),
        ("GET", f"{AS}/applications/{b}/dns_rules", None),
        ("POST", f"{AS}/applications/{b}/confirm_ready", {"indication": "READY"}),
        ("GET", f"{SM}/applications/{b}/subscriptions", None),
        ("DELETE", f"{SM}/applications/{b}/services/{sid}", None),
    ]:
        answer = client.request(method, path, headers=auth_a, json=body)
        assert answer.status_code == 403, (method, path, answer.text)
        assert answer.headers["content-type"] == PROBLEM
    # B's service under A's own id is simply not A's: 404. Discovery shows it to everyone.
    assert client.get(f"{SM}/applications/{a}/services/{sid}", headers=auth_a).status_code == 404
    assert client.delete(f"{SM}/applications/{a}/services/{sid}", headers=auth_a).status_code == 404
    assert client.get(f"{SM}/services/{sid}", headers=auth_a).json()["serName"] == "cache"
    # The admin acts for every app; a wrong or missing token is a 401 problem.
    assert client.get(f"{AS}/applications/{b}/traffic_rules", headers=ADMIN).status_code == 200
    bad = client.get(f"{SM}/services", headers={"Authorization": "Bearer fea_000000000000.x"})
    assert bad.status_code == 401
    assert bad.headers["content-type"] == PROBLEM
    assert client.get(f"{SM}/services").status_code == 401


def test_service_registration_update_and_deregistration(client: TestClient) -> None:
    app, auth = new_app(client, "cache", "198.18.0.5", "10.0.2.10")
    created = client.post(f"{SM}/applications/{app}/services", headers=auth, json=SERVICE)
    assert created.status_code == 201
    info = created.json()
    sid = info["serInstanceId"]
    assert created.headers["location"].endswith(f"{SM}/applications/{app}/services/{sid}")
    assert info["scopeOfLocality"] == "MEC_HOST"
    assert info["isLocal"] is True
    again = client.post(f"{SM}/applications/{app}/services", headers=auth, json=SERVICE)
    assert again.status_code == 422  # the stored service's name (MEC 011 has no 409 here)
    assert "already offers a service named 'cache'" in again.json()["detail"]
    given_id = client.post(f"{SM}/applications/{app}/services", headers=auth,
                           json={**SERVICE, "serName": "x", "serInstanceId": "mine"})  # fmt: skip
    assert given_id.status_code == 400
    down = client.put(f"{SM}/applications/{app}/services/{sid}", headers=auth,
                      json={**SERVICE, "state": "INACTIVE"})  # fmt: skip
    assert down.status_code == 200
    assert down.json()["state"] == "INACTIVE"
    found = client.get(f"{SM}/services", headers=auth, params={"ser_name": "cache"}).json()
    assert [s["state"] for s in found] == ["INACTIVE"]
    assert client.delete(f"{SM}/applications/{app}/services/{sid}", headers=auth).status_code == 204
    assert client.get(f"{SM}/services/{sid}", headers=auth).status_code == 404


def test_dns_rules_and_termination_and_timing(client: TestClient) -> None:
    app, auth = new_app(client, "cache", "198.18.0.5", "10.0.2.10")
    dns = client.get(f"{AS}/applications/{app}/dns_rules/d1", headers=auth).json()
    assert dns["domainName"] == "cache.example"
    wrong = client.put(f"{AS}/applications/{app}/dns_rules/d1", headers=auth,
                       json={**dns, "ipAddressType": "IP_V6"})  # fmt: skip
    assert wrong.status_code == 422  # an IPv4 address, said to be IPv6
    off = client.put(f"{AS}/applications/{app}/dns_rules/d1", headers=auth,
                     json={**dns, "state": "INACTIVE"})  # fmt: skip
    assert off.json()["state"] == "INACTIVE"
    nothing = client.post(f"{AS}/applications/{app}/confirm_termination", headers=auth,
                          json={"operationAction": "TERMINATING"})  # fmt: skip
    assert nothing.status_code == 409
    now = client.get(f"{AS}/timing/current_time", headers=auth).json()
    assert now["timeSourceStatus"] in {"TRACEABLE", "NONTRACEABLE"}
    assert 0 <= now["nanoSeconds"] < 1_000_000_000
    caps = client.get(f"{AS}/timing/timing_caps", headers=auth).json()
    assert caps["timeStamp"]["seconds"] >= now["seconds"]


def test_a_terminating_app_drains_its_names_leave_its_rules_stay(tmp_path: Path) -> None:
    """Termination started (a subscriber is told): the app's DNS names leave the responder at
    once, its traffic rules stay in the TOF until it is removed; an app that never was READY
    gets no rules by terminating."""
    config = parse_config({"state_dir": str(tmp_path), "api": {"token": TOKEN}})
    ctx = DaemonContext(config=config, store=Store(tmp_path / "db.sqlite"))
    ctx.parts["tof"] = TofPart(TofConfig(backend="none"), ctx)
    part = ctx.parts["mec"] = create_part({}, ctx)
    platform = part.platform  # type: ignore[attr-defined]
    pushed: list[dict[str, Any]] = []  # what the responder is given (the real one: e2e/mec)
    platform.dns_sink = lambda records: pushed.append(dict(records))
    with TestClient(create_app(ctx)) as client:
        ready, auth = new_app(client, "cache", "198.18.0.5", "10.0.2.10")
        idle, idle_auth = new_app(client, "idle", "198.18.0.6", "10.0.2.11")
        later, later_auth = new_app(client, "later", "198.18.0.7", "10.0.2.12")
        client.post(f"{AS}/applications/{ready}/confirm_ready", headers=auth,
                    json={"indication": "READY"})  # fmt: skip
        for app, headers in ((ready, auth), (idle, idle_auth)):
            sub = client.post(f"{AS}/applications/{app}/subscriptions", headers=headers, json={
                "subscriptionType": "AppTerminationNotificationSubscription",
                "callbackReference": "http://127.0.0.1:9/term", "appInstanceId": app,
            })  # fmt: skip
            assert sub.status_code == 201, sub.text
        assert set(pushed[-1]) == {"cache.example"}
        assert platform.begin_termination(ready) > 0
        assert platform.begin_termination(idle) > 0
        assert client.get(f"/v1/apps/{ready}", headers=ADMIN).json()["state"] == "TERMINATING"
        assert pushed[-1] == {}  # out of the responder before the notice went out
        # another app's change re-syncs the TOF: the terminating app's rule is still wanted
        client.post(f"{AS}/applications/{later}/confirm_ready", headers=later_auth,
                    json={"indication": "READY"})  # fmt: skip
        assert set(pushed[-1]) == {"later.example"}
        assert tof(client)["198.18.0.5"][1] == "10.0.2.10"  # still offloaded: sessions drain
        assert tof(client)["198.18.0.7"][1] == "10.0.2.12"
        assert "198.18.0.6" not in tof(client)  # never READY: nothing to drain
        done = client.post(f"{AS}/applications/{ready}/confirm_termination", headers=auth,
                           json={"operationAction": "TERMINATING"})  # fmt: skip
        assert done.status_code == 204, done.text
        assert client.delete(f"/v1/apps/{ready}", headers=ADMIN).status_code == 200
        assert "198.18.0.5" not in tof(client)


def test_everything_is_restored_from_the_store(tmp_path: Path) -> None:
    with build(tmp_path) as first:
        app, auth = new_app(first, "cache", "198.18.0.5", "10.0.2.10")
        first.post(f"{AS}/applications/{app}/confirm_ready", headers=auth,
                   json={"indication": "READY"})  # fmt: skip
        sid = first.post(f"{SM}/applications/{app}/services", headers=auth,
                         json=SERVICE).json()["serInstanceId"]  # fmt: skip
        sub = first.post(f"{SM}/applications/{app}/subscriptions", headers=auth, json={
            "subscriptionType": "SerAvailabilityNotificationSubscription",
            "callbackReference": "http://127.0.0.1:9/cb",
        })  # fmt: skip
        assert sub.status_code == 201
    with build(tmp_path) as second:
        assert second.get(f"/v1/apps/{app}", headers=ADMIN).json()["state"] == "READY"
        assert second.get(f"{SM}/services/{sid}", headers=auth).status_code == 200
        links = second.get(f"{SM}/applications/{app}/subscriptions", headers=auth).json()
        assert len(links["_links"]["subscriptions"]) == 1
        assert tof(second)["198.18.0.5"][1] == "10.0.2.10"
        second.delete(f"/v1/apps/{app}", headers=ADMIN)
        assert "198.18.0.5" not in tof(second)
        assert second.get(f"{SM}/services/{sid}", headers=ADMIN).status_code == 404
        assert second.get(f"{SM}/services", headers=auth).status_code == 401


def test_a_damaged_or_older_row_is_set_aside_the_rest_restored(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A store written by a laxer version, or damaged: the daemon starts with everything it
    can read, names each row it cannot, and sets those rows aside whole (fluidedge.core.rows):
    nothing is lost, and their keys are free."""
    with build(tmp_path) as first:
        app, auth = new_app(first, "cache", "198.18.0.5", "10.0.2.10")
        other, _ = new_app(first, "video", "198.18.0.6", "10.0.2.11")
        first.post(f"{AS}/applications/{app}/confirm_ready", headers=auth,
                   json={"indication": "READY"})  # fmt: skip
        sid = first.post(f"{SM}/applications/{app}/services", headers=auth,
                         json=SERVICE).json()["serInstanceId"]  # fmt: skip
    db = sqlite3.connect(tmp_path / "db.sqlite")
    damaged = {
        ("app", other): "{not json",
        ("service", sid): "[]",
        ("traffic_rule", f"{app}/r1"): '{"trafficRuleId": 7}',
    }
    with db:
        for (kind, key), doc in damaged.items():
            changed = db.execute(
                "UPDATE mec_objects SET doc = ? WHERE kind = ? AND id = ?", (doc, kind, key)
            )
            assert changed.rowcount == 1, (kind, key)
    with caplog.at_level(logging.ERROR, logger="fluidedge.mec"), build(tmp_path) as second:
        assert second.get(f"/v1/apps/{app}", headers=ADMIN).json()["state"] == "READY"
        assert second.get(f"/v1/apps/{other}", headers=ADMIN).status_code == 404
        assert second.get(f"{SM}/services/{sid}", headers=auth).status_code == 404
        assert "198.18.0.5" not in tof(second)  # its one rule was the damaged one
    for kind, key in damaged:
        assert any(
            f"{kind}/{key}" in r.getMessage() and "mec_objects" in r.getMessage()
            for r in caplog.records
        )
    left = {tuple(r) for r in db.execute("SELECT kind, id FROM mec_objects").fetchall()}
    assert not left & set(damaged)
    aside = {(r.source, r.key): r.row for r in rows.listing(db)}
    for (kind, key), doc in damaged.items():
        assert aside["mec_objects", f"{kind}/{key}"]["doc"] == doc  # nothing lost
    assert len(aside) == len(damaged)
    db.close()


def test_a_descriptor_is_checked_whole(client: TestClient) -> None:
    bad = descriptor("cache", "198.18.0.5", "10.0.2.10")
    bad["trafficRules"].append(rule("r1", "198.18.0.6"))
    answer = client.post("/v1/apps", headers=ADMIN, json=bad)
    assert answer.status_code == 422  # each rule is right; together they clash
    assert "duplicate trafficRuleId" in answer.json()["detail"]
    drop = descriptor("cache", "198.18.0.5", "10.0.2.10")
    drop["trafficRules"] = [rule("r1", "198.18.0.0/24")]  # a TOF service is one address
    assert client.post("/v1/apps", headers=ADMIN, json=drop).status_code == 422
    assert client.get("/v1/apps", headers=ADMIN).json() == []


def test_etags_and_if_match_make_a_stale_put_a_412(client: TestClient) -> None:
    app, auth = new_app(client, "cache", "198.18.0.5", "10.0.2.10")
    url = f"{AS}/applications/{app}/traffic_rules/r1"
    read = client.get(url, headers=auth)
    tag = read.headers["etag"]
    assert tag.startswith('"')
    assert tag.endswith('"')
    off = rule("r1", "198.18.0.5", "INACTIVE")
    done = client.put(url, headers={**auth, "If-Match": tag}, json=off)
    assert done.status_code == 200, done.text
    assert done.headers["etag"] != tag  # the rule changed
    assert client.get(url, headers=auth).headers["etag"] == done.headers["etag"]
    stale = client.put(url, headers={**auth, "If-Match": tag}, json=rule("r1", "198.18.0.6"))
    assert stale.status_code == 412
    assert stale.headers["content-type"] == PROBLEM
    assert "does not match the current ETag" in stale.json()["detail"]
    assert client.get(url, headers=auth).json() == off  # nothing changed
    weak = client.put(url, headers={**auth, "If-Match": f"W/{done.headers['etag']}"}, json=off)
    assert weak.status_code == 412  # If-Match compares strongly
    listed = client.put(url, headers={**auth, "If-Match": f'"x", {done.headers["etag"]}'}, json=off)
    assert listed.status_code == 200
    assert client.put(url, headers={**auth, "If-Match": "*"}, json=off).status_code == 200
    # DNS rules and services carry ETags too.
    dns = f"{AS}/applications/{app}/dns_rules/d1"
    body = client.get(dns, headers=auth).json()
    assert client.put(dns, headers={**auth, "If-Match": '"old"'}, json=body).status_code == 412
    made = client.post(f"{SM}/applications/{app}/services", headers=auth, json=SERVICE)
    sid = made.json()["serInstanceId"]
    svc = f"{SM}/applications/{app}/services/{sid}"
    svc_tag = client.get(svc, headers=auth).headers["etag"]
    assert client.get(f"{SM}/services/{sid}", headers=auth).headers["etag"] == svc_tag
    changed = {**made.json(), "version": "2"}
    ok = client.put(svc, headers={**auth, "If-Match": svc_tag}, json=changed)
    assert ok.status_code == 200, ok.text
    again = client.put(svc, headers={**auth, "If-Match": svc_tag}, json=changed)
    assert again.status_code == 412


def test_an_app_past_its_request_budget_gets_a_429_and_the_admin_none(tmp_path: Path) -> None:
    config = parse_config({"state_dir": str(tmp_path), "api": {"token": TOKEN}})
    ctx = DaemonContext(config=config, store=Store(tmp_path / "db.sqlite"))
    ctx.parts["tof"] = TofPart(TofConfig(backend="none"), ctx)
    ctx.parts["mec"] = create_part({"app_rate": 0.01, "app_burst": 2}, ctx)
    with TestClient(create_app(ctx)) as client:
        app, auth = new_app(client, "cache", "198.18.0.5", "10.0.2.10")
        url = f"{AS}/applications/{app}/traffic_rules"
        assert [client.get(url, headers=auth).status_code for _ in range(2)] == [200, 200]
        over = client.get(url, headers=auth)
        assert over.status_code == 429
        assert over.headers["content-type"] == PROBLEM
        assert int(over.headers["retry-after"]) >= 1
        assert "Mp1 requests/s" in over.json()["detail"]
        assert client.get(url, headers=ADMIN).status_code == 200  # the operator: no budget
        other, other_auth = new_app(client, "other", "198.18.0.6", "10.0.2.11")
        assert (
            client.get(f"{AS}/applications/{other}/traffic_rules", headers=other_auth).status_code
            == 200
        )
