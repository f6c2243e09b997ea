"""The served OpenAPI document of the ME platform's routes tells the truth, through the daemon's
whole ASGI stack: every schema it references is defined, a body its schema accepts is not
refused with a 400 (unknown members with null, integral numbers, the query's enum), what only
the stored resources or the path can refuse is a documented 422, and MEC 011's exclusive
query filters stay a 400 that the parameters' descriptions state."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from tests.unit.mec.test_mp1_api import ADMIN, AS, PROBLEM, SERVICE, SM, build, new_app, rule

DST = "198.18.0.5"


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    with build(tmp_path) as c:
        yield c


def refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from refs(item)


def resolve(document: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), ref  # the document is self-contained
    node: Any = document
    for token in ref[2:].split("/"):
        part = token.replace("~1", "/").replace("~0", "~")
        assert isinstance(node, dict), ref
        assert part in node, f"unresolvable reference {ref}"
        node = node[part]
    return node


def operation(document: dict[str, Any], operation_id: str) -> dict[str, Any]:
    for item in document["paths"].values():
        for op in item.values():
            if isinstance(op, dict) and op.get("operationId") == operation_id:
                return op
    raise AssertionError(f"no operation {operation_id}")


def test_every_reference_in_the_served_document_resolves(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    found = set(refs(document))
    assert "#/components/schemas/ProblemDetails" in found
    for ref in sorted(found):
        resolve(document, ref)
    problem = document["components"]["schemas"]["ProblemDetails"]
    assert set(problem["properties"]) == {"type", "title", "status", "detail", "instance"}
    assert not list(refs(problem))


def test_path_identifiers_are_never_empty(client: TestClient) -> None:
    """An empty segment would be another resource's URL (``.../services/`` is the
    collection's, where DELETE is a 405): the schema says an id has a character at least."""
    document = client.get("/openapi.json").json()
    seen = 0
    for path, item in document["paths"].items():
        if not path.startswith(("/mec_", "/v1/apps")):
            continue
        for op in item.values():
            for param in op.get("parameters", []):
                if param["in"] == "path":
                    assert param["schema"].get("minLength") == 1, (path, param["name"])
                    seen += 1
    assert seen > 20


def test_the_unprocessable_routes_document_their_422(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    for operation_id in (
        "AppServices_POST",
        "AppServicesServiceId_PUT",
        "ApplicationsTrafficRule_PUT",
        "ApplicationsDnsRule_PUT",
        "AppSupport_ApplicationsSubscriptions_POST",
        "ApplicationsConfirmReady_POST",
    ):
        answer = operation(document, operation_id)["responses"]["422"]
        assert list(answer["content"]) == [PROBLEM], operation_id
    # The service availability subscription has no appInstanceId to contradict the path.
    assert "422" not in operation(document, "ApplicationsSubscriptions_POST")["responses"]
    assert "422" in document["paths"]["/v1/apps"]["post"]["responses"]


def test_the_query_says_its_enum_and_its_exclusive_filters(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    for operation_id in ("Services_GET", "AppServices_GET"):
        params = {p["name"]: p for p in operation(document, operation_id)["parameters"]}
        scope = resolve(document, params["scope_of_locality"]["schema"]["$ref"])
        assert scope["enum"] == [
            "MEC_SYSTEM", "MEC_HOST", "NFVI_POP", "ZONE", "ZONE_GROUP", "NFVI_NODE",
        ]  # fmt: skip
        for name in ("ser_instance_id", "ser_name", "ser_category_id"):
            assert (
                "At most one of ser_instance_id, ser_name and ser_category_id"
                in (params[name]["description"])
            )
        assert params["ser_name"]["schema"]["maxItems"] == 64
    refused = client.get(f"{SM}/services", headers=ADMIN, params={"scope_of_locality": "0" * 32})
    assert refused.status_code == 400  # the schema refuses it too
    assert refused.headers["content-type"] == PROBLEM
    zone = client.get(f"{SM}/services", headers=ADMIN, params={"scope_of_locality": "ZONE"})
    assert zone.status_code == 200
    both = client.get(
        f"{SM}/services", headers=ADMIN, params={"ser_name": "a", "ser_category_id": "x"}
    )
    assert both.status_code == 400  # MEC 011's rule across parameters
    assert "only one of" in both.json()["detail"]


def test_unknown_members_with_null_are_ignored(client: TestClient) -> None:
    app, auth = new_app(client, "cache", DST, "10.0.2.10")
    base = f"{AS}/applications/{app}"
    ready = client.post(f"{base}/confirm_ready", headers=auth,
                        json={"__main__": None, "indication": "READY"})  # fmt: skip
    assert ready.status_code == 204, ready.text
    nothing = client.post(f"{base}/confirm_termination", headers=auth,
                          json={"": None, "operationAction": "STOPPING"})  # fmt: skip
    assert nothing.status_code == 409, nothing.text  # past the body: nothing to confirm
    flt = {"dstAddress": [DST], "8\u00bfG": None}
    put = client.put(f"{base}/traffic_rules/r1", headers=auth,
                     json={**rule("r1", DST), "trafficFilter": [flt]})  # fmt: skip
    assert put.status_code == 200, put.text
    assert put.json() == rule("r1", DST)
    made = client.post(f"{SM}/applications/{app}/services", headers=auth, json=SERVICE)
    sid = made.json()["serInstanceId"]
    again = client.put(f"{SM}/applications/{app}/services/{sid}", headers=auth,
                       json={**SERVICE, "_": None})  # fmt: skip
    assert again.status_code == 200, again.text
    known = client.put(f"{SM}/applications/{app}/services/{sid}", headers=auth,
                       json={**SERVICE, "serCategory": None})  # fmt: skip
    assert known.status_code == 400  # a member of the type: absent or typed
    assert "serCategory: null is not allowed" in known.json()["detail"]


def test_contradictions_with_the_path_or_the_stored_resources_are_422(
    client: TestClient,
) -> None:
    app, auth = new_app(client, "cache", DST, "10.0.2.10")
    sub = client.post(
        f"{AS}/applications/{app}/subscriptions",
        headers=auth,
        json={"subscriptionType": "AppTerminationNotificationSubscription",
              "callbackReference": "http://10.1.0.5:8080/notify", "appInstanceId": "other"},
    )  # fmt: skip
    assert sub.status_code == 422
    assert sub.headers["content-type"] == PROBLEM
    assert "differs from the path's" in sub.json()["detail"]
    other_rule = client.put(f"{AS}/applications/{app}/traffic_rules/r1", headers=auth,
                            json=rule("r9", DST))  # fmt: skip
    assert other_rule.status_code == 422
    dns = client.get(f"{AS}/applications/{app}/dns_rules/d1", headers=auth).json()
    other_dns = client.put(f"{AS}/applications/{app}/dns_rules/d1", headers=auth,
                           json={**dns, "dnsRuleId": "d9"})  # fmt: skip
    assert other_dns.status_code == 422
    services = f"{SM}/applications/{app}/services"
    given_id = client.post(services, headers=auth, json={**SERVICE, "serInstanceId": "mine"})
    assert given_id.status_code == 400  # read-only in the schema: a request has none
    sid = client.post(services, headers=auth, json=SERVICE).json()["serInstanceId"]
    assert client.post(services, headers=auth, json=SERVICE).status_code == 422  # same name
    own = client.put(f"{services}/{sid}", headers=auth, json={**SERVICE, "serInstanceId": sid})
    assert own.status_code == 200, own.text  # the path's own id may be repeated
    for change in ({"serInstanceId": "another"}, {"serName": "renamed"}):
        answer = client.put(f"{services}/{sid}", headers=auth, json={**SERVICE, **change})
        assert answer.status_code == 422, (change, answer.text)


def test_a_callback_that_is_no_http_url_is_a_400_the_schema_states(client: TestClient) -> None:
    app, auth = new_app(client, "cache", DST, "10.0.2.10")
    body = {"subscriptionType": "SerAvailabilityNotificationSubscription",
            "callbackReference": "0" * 300}  # fmt: skip
    answer = client.post(f"{SM}/applications/{app}/subscriptions", headers=auth, json=body)
    assert answer.status_code == 400
    assert "callbackReference" in answer.json()["detail"]
    document = client.get("/openapi.json").json()
    schema = document["components"]["schemas"]["SerAvailabilityNotificationSubscription"]
    assert "pattern" in schema["properties"]["callbackReference"]


def test_a_dns_rules_ttl_is_an_integer_given_as_any_integral_number(client: TestClient) -> None:
    app, auth = new_app(client, "cache", DST, "10.0.2.10")
    url = f"{AS}/applications/{app}/dns_rules/d1"
    dns = client.get(url, headers=auth).json()
    whole = client.put(url, headers=auth, json={**dns, "ttl": 2147483646.0})
    assert whole.status_code == 200, whole.text
    assert whole.json()["ttl"] == 2147483646
    for bad in (True, 1.5, 2147483648):
        assert client.put(url, headers=auth, json={**dns, "ttl": bad}).status_code == 400, bad


def test_a_descriptor_whose_members_contradict_each_other_is_a_422(client: TestClient) -> None:
    data = {"address": "198.18.3.10/24", "gateway": "198.18.3.1", "network": "apps"}
    neither = {"name": "a", "deploy": {"data": data, "template": None, "image": None}}
    answer = client.post("/v1/apps", headers=ADMIN, json=neither)
    assert answer.status_code == 422, answer.text
    assert "exactly one of template and image" in answer.json()["detail"]
    both = {"name": "a", "dataAddress": "10.0.2.10", "deploy": {"data": data, "image": "x"}}
    assert client.post("/v1/apps", headers=ADMIN, json=both).status_code == 422
    assert client.get("/v1/apps", headers=ADMIN).json() == []


def test_graceful_timeout_is_a_number_never_a_boolean(client: TestClient) -> None:
    body: dict[str, Any] = {"name": "a", "dataAddress": "10.0.2.10"}
    refused = client.post("/v1/apps", headers=ADMIN, json={**body, "gracefulTimeout": False})
    assert refused.status_code == 400
    assert "gracefulTimeout" in refused.json()["detail"]
    assert (
        client.post("/v1/apps", headers=ADMIN, json={**body, "gracefulTimeout": "3"}).status_code
        == 400
    )
    made = client.post("/v1/apps", headers=ADMIN, json={**body, "gracefulTimeout": 3})
    assert made.status_code == 201, made.text  # a JSON integer is a number
    other = client.post(
        "/v1/apps", headers=ADMIN, json={**body, "name": "b", "gracefulTimeout": 2.5}
    )
    assert other.status_code == 201, other.text
