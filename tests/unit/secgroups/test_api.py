"""``/v1/security-groups`` statuses against the served schema: what one field breaks is a 400
the schema announces, fields that contradict each other or the stored state a documented 422,
and the reserved id ``ports`` refused (pure: the real service and store, no data plane)."""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st

from fluidedge.core import openapi
from fluidedge.daemon.app import _validation_reason
from fluidedge.daemon.edge import error_status
from fluidedge.errors import FluidedgeError
from fluidedge.secgroups.api import IP_PREFIX_PATTERN, PROTOCOL_PATTERN, build_router
from fluidedge.secgroups.errors import InvalidSecgroup
from fluidedge.secgroups.model import parse_network, parse_protocol

from .test_scoping import World


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path / "db.sqlite")


@pytest.fixture
def api(world: World) -> Iterator[TestClient]:
    """The routes as the daemon serves them: a body that breaks its model is a 400 with the
    reason, a fluidedge error its kind's status, the document rewritten (core.openapi)."""
    app = FastAPI()
    app.include_router(build_router(world.service))

    @app.exception_handler(RequestValidationError)
    async def bad_request(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse(status_code=400, content={"detail": _validation_reason(exc)})

    @app.exception_handler(FluidedgeError)
    async def error(_request: Request, exc: FluidedgeError) -> JSONResponse:
        return JSONResponse(status_code=error_status(exc), content={"detail": str(exc)})

    document = openapi.rewrite(app.openapi(), open_reads=True)
    app.openapi = lambda: document  # type: ignore[method-assign]
    with TestClient(app) as client:
        yield client


def _documented(api: TestClient, method: str, path: str) -> set[str]:
    paths = api.app.openapi()["paths"]  # type: ignore[attr-defined]
    matches = [
        t
        for t in paths
        if re.fullmatch(re.sub(r"\\{[^}]+\\}", "[^/]+", re.escape(t)), path)
        and method.lower() in paths[t]
    ]
    # the most specific template answers (/ports before /{group_id}), as the edge decides
    template = min(matches, key=lambda t: t.count("{"))
    return set(paths[template][method.lower()]["responses"])


def _valid(api: TestClient, schema: str, body: Any) -> bool:
    jsonschema_rs = pytest.importorskip("jsonschema_rs")
    document = api.app.openapi()  # type: ignore[attr-defined]
    root = {"$ref": f"#/components/schemas/{schema}", "components": document["components"]}
    return bool(jsonschema_rs.validator_for(root).is_valid(body))


TCP = {"direction": "ingress", "protocol": "tcp", "port_range_min": 80}
# The schemathesis run's body, less its other rules: schema-valid, an ICMP type without icmp.
FOUND = {
    "id": "found",
    "rules": [
        {
            "ethertype": "IPv6",
            "icmp_type": 153,
            "icmp_code": None,
            "remote_group": None,
            "direction": "ingress",
        }
    ],
}


def _rules(*rules: dict[str, Any]) -> dict[str, Any]:
    return {"id": "g", "rules": list(rules)}


# (path, schema, body, status, words in the reason), all POST.
_REFUSALS: list[tuple[str, str, dict[str, Any], int, str]] = [
    ("", "GroupBody", FOUND, 422, "icmp_type: an ICMP type/code needs protocol icmp"),
    ("", "GroupBody", {"id": "ports"}, 400, "reserved"),
    ("", "GroupBody", {"id": "Bad Name"}, 400, "id"),
    ("", "GroupBody", _rules({"direction": "ingress", "protocol": "tcpp"}), 400, "protocol"),
    ("", "GroupBody", _rules({"direction": "ingress", "protocol": -8961}), 400, "protocol"),
    ("", "GroupBody", _rules({"direction": "ingress", "protocol": " tcp"}), 400, "protocol"),
    ("", "GroupBody", _rules({**TCP, "port_range_min": 0}), 400, "port_range_min"),
    ("", "GroupBody", _rules({**TCP, "port_range_min": "80"}), 400, "port_range_min"),
    ("", "GroupBody", _rules({**TCP, "port_range_max": 70000}), 400, "port_range_max"),
    ("", "GroupBody", _rules({**TCP, "port_range_max": 79}), 422, "above port_range_max"),
    ("", "GroupBody", _rules({**TCP, "protocol": "icmp"}), 422, "protocol with ports"),
    ("", "GroupBody", _rules({**TCP, "protocol": None}), 422, "protocol with ports"),
    (
        "",
        "GroupBody",
        _rules({"direction": "ingress", "protocol": 6, "port_range_max": 9}),
        422,
        "without port_range_min",
    ),
    ("", "GroupBody", _rules({"direction": "ingress", "icmp_type": 256}), 400, "icmp_type"),
    ("", "GroupBody", _rules({"direction": "ingress", "icmp_type": True}), 400, "icmp_type"),
    (
        "",
        "GroupBody",
        _rules({"direction": "ingress", "protocol": "icmp", "icmp_code": 0}),
        422,
        "without icmp_type",
    ),
    (
        "",
        "GroupBody",
        _rules({"direction": "ingress", "protocol": "icmpv6", "ethertype": "IPv4"}),
        422,
        "icmpv6 is an IPv6 protocol",
    ),
    ("", "GroupBody", _rules({**TCP, "remote_ip_prefix": "µxn"}), 400, "remote_ip_prefix"),
    ("", "GroupBody", _rules({**TCP, "remote_ip_prefix": "::::"}), 400, "remote_ip_prefix"),
    ("", "GroupBody", _rules({**TCP, "remote_ip_prefix": "fd00::/8"}), 422, "IPv4 prefix"),
    (
        "",
        "GroupBody",
        _rules({**TCP, "remote_ip_prefix": "10.0.0.0/8", "remote_group": "g"}),
        422,
        "not both",
    ),
    ("", "GroupBody", _rules({**TCP, "remote_group": "nope"}), 422, "unknown group 'nope'"),
    ("", "GroupBody", _rules({**TCP, "remote_group": "No"}), 400, "remote_group"),
    ("", "GroupBody", _rules({**TCP, "id": "a"}, {**TCP, "id": "a"}), 422, "appears twice"),
    ("", "GroupBody", _rules(TCP, {**TCP, "port_range_max": 80}), 422, "duplicates"),
    ("", "GroupBody", _rules({"direction": "in"}), 400, "direction"),
    ("/web/rules", "RuleBody", {**TCP, "protocol": "udp", "icmp_type": 3}, 422, "ICMP"),
    ("/web/rules", "RuleBody", {**TCP, "tcp_flags": "S"}, 400, "tcp_flags"),
]


@pytest.mark.parametrize(
    ("path", "schema", "body", "code", "words"),
    _REFUSALS,
    ids=[json.dumps(r[2], ensure_ascii=False)[:80] for r in _REFUSALS],
)
def test_the_schema_decides_400_and_contradictions_422(  # noqa: PLR0917 (the table's row)
    api: TestClient, path: str, schema: str, body: dict[str, Any], code: int, words: str
) -> None:
    made = api.post("/v1/security-groups", json={"id": "web"})
    assert made.status_code == 201, made.text
    answer = api.post(f"/v1/security-groups{path}", json=body)
    assert answer.status_code == code, answer.text
    assert words in answer.json()["detail"]
    assert str(code) in _documented(api, "POST", f"/v1/security-groups{path}")
    # a 400 exactly when the served schema refuses the body
    assert _valid(api, schema, body) == (code != 400)
    assert [g["id"] for g in api.get("/v1/security-groups").json()] == ["default", "web"]


def test_put_and_port_routes_document_their_422(api: TestClient, world: World) -> None:
    assert api.post("/v1/security-groups", json={"id": "web"}).status_code == 201
    bad = api.put("/v1/security-groups/web", json={"rules": [{**TCP, "protocol": "icmp"}]})
    assert bad.status_code == 422
    assert "422" in _documented(api, "PUT", "/v1/security-groups/web")
    world.instance("vm1", ["web"])
    path = "/v1/instances/vm1/interfaces/eth0/security-groups"
    unknown = api.put(path, json={"security_groups": ["web", "nope"]})
    assert unknown.status_code == 422
    assert "no group 'nope'" in unknown.json()["detail"]
    twice = api.put(path, json={"security_groups": ["web", "web"]})
    assert twice.status_code == 400  # the schema says uniqueItems
    assert not _valid(api, "PortGroups", {"security_groups": ["web", "web"]})
    malformed = api.put(path, json={"security_groups": ["Web"]})
    assert malformed.status_code == 400
    assert {"404", "422"} <= _documented(api, "PUT", path)
    assert world.service.get_port("vm1", "eth0").groups == ("web",)


def test_the_id_ports_is_reserved(api: TestClient, world: World) -> None:
    """/v1/security-groups/ports lists ports: a group 'ports' could never be read there."""
    world.instance("vm1")
    refused = api.post("/v1/security-groups", json={"id": "ports"})
    assert refused.status_code == 400
    assert "'ports' is reserved" in refused.json()["detail"]
    assert not _valid(api, "GroupBody", {"id": "ports"})
    assert _valid(api, "GroupBody", {"id": "ports2"})
    assert api.post("/v1/security-groups", json={"id": "ports2"}).status_code == 201
    listing = api.get("/v1/security-groups/ports")
    assert [p["id"] for p in listing.json()] == ["vm1.eth0"]
    # and the service refuses it to every other caller (a site's pass)
    with pytest.raises(InvalidSecgroup, match="reserved"):
        world.service.create_group({"id": "ports"})
    assert not world.service.has_group("ports")


def test_every_422_is_documented_where_it_can_happen(api: TestClient) -> None:
    paths = api.app.openapi()["paths"]  # type: ignore[attr-defined]
    expected = {
        ("post", "/v1/security-groups"),
        ("put", "/v1/security-groups/{group_id}"),
        ("post", "/v1/security-groups/{group_id}/rules"),
        ("put", "/v1/instances/{name}/interfaces/{ifname}/security-groups"),
    }
    documented = {
        (method, path)
        for path, item in paths.items()
        for method, op in item.items()
        if "422" in op["responses"]
    }
    assert documented == expected
    for method, path in expected:
        assert "contradict" in paths[path][method]["responses"]["422"]["description"]


@settings(max_examples=400)
@given(st.from_regex(IP_PREFIX_PATTERN, fullmatch=True))
def test_every_prefix_the_schema_takes_is_read(text: str) -> None:
    """No schema-valid prefix is refused as text (a 400 the schema does not announce)."""
    assert isinstance(
        parse_network("remote_ip_prefix", text), ipaddress.IPv4Network | ipaddress.IPv6Network
    )


@settings(max_examples=200)
@given(st.from_regex(PROTOCOL_PATTERN, fullmatch=True))
def test_every_protocol_the_schema_takes_is_read(text: str) -> None:
    number = parse_protocol(text)
    assert number is None or 0 <= number <= 255


@pytest.mark.parametrize(
    "text", ["fd00::/64", "::", "::/0", "10.1.2.3/8", "::ffff:10.0.0.1", "FE80::1", "1:2::3/48"]
)
def test_common_prefixes_are_in_the_schema(text: str) -> None:
    assert re.fullmatch(IP_PREFIX_PATTERN, text)


def test_a_rule_added_to_a_full_group_is_422(api: TestClient, world: World) -> None:
    """The schema bounds a body's rule list; one more rule on a full group is the stored
    state's limit, not a malformed body."""
    rules = [{**TCP, "port_range_min": port} for port in range(1, 1001)]
    assert api.post("/v1/security-groups", json={"id": "full", "rules": rules}).status_code == 201
    answer = api.post("/v1/security-groups/full/rules", json={**TCP, "port_range_min": 2000})
    assert answer.status_code == 422
    assert "at most 1000 per group" in answer.json()["detail"]
    too_many = {"id": "over", "rules": [*rules, {**TCP, "port_range_min": 2000}]}
    assert api.post("/v1/security-groups", json=too_many).status_code == 400
    assert len(world.service.get_group("full").rules) == 1000


def test_the_check_interval_is_bounded_and_one_second_by_default() -> None:
    from pydantic import ValidationError

    from fluidedge.secgroups.part import SecgroupsConfig

    assert SecgroupsConfig.model_validate({}).check_interval_s == 1.0
    assert SecgroupsConfig.model_validate({"check_interval_s": 0}).check_interval_s == 0.0
    for bad in (-1, 3601, "soon"):
        with pytest.raises(ValidationError, match="check_interval_s"):
            SecgroupsConfig.model_validate({"check_interval_s": bad})
