"""The chain routes' bodies against their served schema: every rule one field obeys is in the
schema (item patterns, distinct items, prefixes, protocols, reserved chain ids, no coercion),
so a body the schema accepts is never a 400 and one it refuses is; what the schema cannot
state (fields that contradict each other, braces that do not nest, nft's refusal, a part the
daemon does not run) is a documented 422.

The routes run over a real store in ``tmp_path`` with no data plane, answering errors as the
daemon does (a validation error is a 400 with its reason); each row is also judged by the
served OpenAPI document's schema (``jsonschema_rs``, the validator schemathesis checks with).
"""

from __future__ import annotations

import contextlib
import ipaddress
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from fluidedge.chains import functions
from fluidedge.chains.api import (
    CHAIN_ID_PATTERN,
    RESERVED_CHAIN_IDS,
    FlowClassifierBody,
    PortChainBody,
    PortPairGroupBody,
    build_router,
)
from fluidedge.chains.errors import ChainConflict, ChainUnprocessable
from fluidedge.chains.firewall import LiveFirewalls
from fluidedge.chains.model import (
    ID_PATTERN,
    PREFIX_PATTERN,
    PROTOCOL_PATTERN,
    parse_prefix,
    parse_protocol,
)
from fluidedge.chains.persist import Tables
from fluidedge.chains.service import ChainService
from fluidedge.core import openapi
from fluidedge.core.fields import PROTOCOL_NAMES
from fluidedge.core.store import Store
from fluidedge.daemon.edge import error_detail, error_status
from fluidedge.errors import FluidedgeError

jsonschema_rs = pytest.importorskip("jsonschema_rs")


def _not_a_firewall(name: str) -> int:
    raise ChainConflict(f"instance {name} is not a vFirewall")


@contextmanager
def _client(
    tmp_path: Path,
    create_template: Callable[[dict[str, Any]], dict[str, Any]] | None,
    firewalls: LiveFirewalls | None,
) -> Iterator[TestClient]:
    store = Store(tmp_path / f"db{len(list(tmp_path.iterdir()))}.sqlite")
    service = ChainService(Tables(store), lambda: [])
    app = FastAPI()
    app.include_router(build_router(service, create_template, firewalls))

    @app.exception_handler(RequestValidationError)
    async def _bad(_r: Request, exc: RequestValidationError) -> JSONResponse:
        reasons = [
            f"{'.'.join(str(p) for p in e['loc'] if p != 'body')}: {e['msg']}" for e in exc.errors()
        ]
        return JSONResponse(status_code=400, content={"detail": "; ".join(reasons)})

    @app.exception_handler(FluidedgeError)
    async def _domain(_r: Request, exc: FluidedgeError) -> JSONResponse:
        return JSONResponse(status_code=error_status(exc), content={"detail": error_detail(exc)})

    try:
        with TestClient(app) as client:
            yield client
    finally:
        store.close()


def _document(client: TestClient) -> dict[str, Any]:
    return openapi.rewrite(client.get("/openapi.json").json(), open_reads=True)


def _body_validator(document: dict[str, Any], template: str, method: str) -> Any:
    body = document["paths"][template][method.lower()]["requestBody"]
    schema = body["content"]["application/json"]["schema"]
    return jsonschema_rs.validator_for({**schema, "components": document["components"]})


FC = {"id": "c", "logical_source_port": "va", "logical_destination_port": "vb"}
ZEROS = "0" * 1024

# (method, path, its template, body, status, words in the reason). The first rows are the
# schemathesis run's (/tmp/schema_failures.txt): schema-valid bodies then refused with a 400
# (now refused by the schema too), and ``tap_enabled: 0`` taken as false (now a 400).
_ROWS: list[tuple[str, str, str, dict[str, Any], int, str]] = [
    ("POST", "/v1/chains", "/v1/chains",
     {"chain_id": 1, "description": ZEROS, "failure_policy": "closed", "flow_classifiers": [],
      "id": "a", "port_pair_groups": [""], "symmetric": True}, 400, "port_pair_groups.0"),
    ("POST", "/v1/chains/flow-classifiers", "/v1/chains/flow-classifiers",
     {"description": ZEROS, "destination_ip_prefix": "", "destination_port_range_max": 0,
      "destination_port_range_min": 0, "ethertype": "IPv4", "id": "a",
      "logical_destination_port": "0", "logical_source_port": "0", "protocol": None,
      "source_ip_prefix": "", "source_port_range_max": 0, "source_port_range_min": 0,
      "tof_service": "0"}, 400, "is not an IP prefix"),
    ("POST", "/v1/chains/function-templates", "/v1/chains/function-templates",
     {"kind": "router", "egress_routes": ["\u0093\u0006})", ""], "ingress_routes": ["\u00a2\u00b8"],
      "name": "mec-consumer", "rules": ["", "\u00ac"], "network": "rsq"}, 400, "ingress_routes.0"),
    ("POST", "/v1/chains/port-pair-groups", "/v1/chains/port-pair-groups",
     {"description": "", "id": "a", "port_pairs": [], "tap_enabled": 0}, 400, "tap_enabled"),
    ("POST", "/v1/chains/port-pair-groups", "/v1/chains/port-pair-groups",
     {"description": "", "port_pairs": ["z\U0007a308\x10\u3ef2", "'\x8ahp$s"], "id": "a",
      "tap_enabled": True}, 400, "port_pairs.0"),
    ("PUT", "/v1/chains/firewalls/fw1/rules", "/v1/chains/firewalls/{instance}/rules",
     {"rules": [""]}, 400, "rules.0"),
    # The schema's other single-field rules.
    ("POST", "/v1/chains", "/v1/chains", {"id": "a", "port_pair_groups": ["g", "g"]}, 400,
     "appears twice"),
    ("POST", "/v1/chains", "/v1/chains", {"id": "a", "port_pair_groups": ["g"], "symmetric": 0},
     400, "symmetric"),
    ("POST", "/v1/chains", "/v1/chains", {"id": "a", "port_pair_groups": ["g"], "chain_id": "5"},
     400, "chain_id"),
    ("POST", "/v1/chains", "/v1/chains",
     {"id": "a", "port_pair_groups": ["g"], "flow_classifiers": ["Bad"]}, 400,
     "flow_classifiers.0"),
    ("POST", "/v1/chains/flow-classifiers", "/v1/chains/flow-classifiers",
     {**FC, "protocol": "gre2"}, 400, "protocol"),
    ("POST", "/v1/chains/flow-classifiers", "/v1/chains/flow-classifiers",
     {**FC, "protocol": True}, 400, "protocol"),
    ("POST", "/v1/chains/flow-classifiers", "/v1/chains/flow-classifiers",
     {**FC, "protocol": 256}, 400, "protocol"),
    ("POST", "/v1/chains/flow-classifiers", "/v1/chains/flow-classifiers",
     {**FC, "protocol": " tcp"}, 400, "protocol"),
    ("POST", "/v1/chains/flow-classifiers", "/v1/chains/flow-classifiers",
     {**FC, "source_ip_prefix": "10.0.0.0/33"}, 400, "source_ip_prefix"),
    ("POST", "/v1/chains/flow-classifiers", "/v1/chains/flow-classifiers",
     {**FC, "destination_ip_prefix": "fe80::1%eth0"}, 400, "destination_ip_prefix"),
    ("PUT", "/v1/chains/firewalls/fw1/rules", "/v1/chains/firewalls/{instance}/rules",
     {"rules": ["drop; flush ruleset"]}, 400, "rules.0"),
    # Fields well-formed one by one that contradict each other: 422.
    ("POST", "/v1/chains/flow-classifiers", "/v1/chains/flow-classifiers",
     {**FC, "ethertype": "IPv6", "source_ip_prefix": "10.0.0.0/8"}, 422, "not an IPv6 prefix"),
    ("POST", "/v1/chains/flow-classifiers", "/v1/chains/flow-classifiers",
     {**FC, "destination_port_range_min": 80}, 422, "needs protocol tcp"),
    ("POST", "/v1/chains/flow-classifiers", "/v1/chains/flow-classifiers",
     {**FC, "protocol": "tcp", "source_port_range_max": 80}, 422, "without"),
    ("POST", "/v1/chains/flow-classifiers", "/v1/chains/flow-classifiers",
     {**FC, "protocol": 6, "source_port_range_min": 90, "source_port_range_max": 80}, 422,
     "above"),
    ("POST", "/v1/chains/flow-classifiers", "/v1/chains/flow-classifiers",
     {**FC, "protocol": "ICMPv6"}, 422, "IPv6 protocol"),
    ("POST", "/v1/chains/flow-classifiers", "/v1/chains/flow-classifiers",
     {**FC, "logical_destination_port": "va"}, 422, "logical source port"),
    ("POST", "/v1/chains/flow-classifiers", "/v1/chains/flow-classifiers",
     {**FC, "tof_service": "video", "destination_ip_prefix": "198.19.0.1"}, 422, "TOF service"),
    ("PUT", "/v1/chains/flow-classifiers/e", "/v1/chains/flow-classifiers/{object_id}",
     {**FC, "protocol": "udp", "source_port_range_max": 80}, 422, "without"),
    ("PUT", "/v1/chains/firewalls/fw1/rules", "/v1/chains/firewalls/{instance}/rules",
     {"rules": ["tcp dport { 22"]}, 422, "braces"),
    ("POST", "/v1/chains/function-templates", "/v1/chains/function-templates",
     {"kind": "firewall", "name": "fw", "network": "apps", "rules": ["drop } table ip x {"]},
     422, "braces"),
    # Schema-valid and carried out, or refused for other objects (404, 409).
    ("POST", "/v1/chains/flow-classifiers", "/v1/chains/flow-classifiers",
     {**FC, "id": "d", "protocol": "TCP", "ethertype": "IPv6", "destination_port_range_min": 80,
      "source_ip_prefix": "fd00::1/64", "destination_ip_prefix": "::ffff:198.19.0.1"}, 201, "d"),
    ("POST", "/v1/chains/port-pair-groups", "/v1/chains/port-pair-groups",
     {"id": "g", "port_pairs": [], "tap_enabled": False}, 201, "tap_enabled"),
    ("POST", "/v1/chains", "/v1/chains", {"id": "a", "port_pair_groups": ["h"], "chain_id": 5},
     404, "'h'"),
    ("POST", "/v1/chains/function-templates", "/v1/chains/function-templates",
     {"kind": "router", "name": "rtr", "network": "apps", "ingress_routes": ["10.0.0.0/8"],
      "egress_routes": ["2001:db8::/64", "198.18.0.1"]}, 201, "rtr"),
    ("PUT", "/v1/chains/firewalls/fw1/rules", "/v1/chains/firewalls/{instance}/rules",
     {"rules": ["tcp dport { 22, 23 } drop"]}, 409, "not a vFirewall"),
]  # fmt: skip
_ROWS += [
    ("POST", "/v1/chains", "/v1/chains", {"id": name, "port_pair_groups": ["g"]}, 400, "reserved")
    for name in RESERVED_CHAIN_IDS
]


@pytest.mark.parametrize(("method", "path", "template", "body", "status", "reason"), _ROWS)
def test_what_the_schema_accepts_is_never_a_400_and_the_rest_is_documented(  # noqa: PLR0917
    tmp_path: Path,
    method: str,
    path: str,
    template: str,
    body: dict[str, Any],
    status: int,
    reason: str,
) -> None:
    with _client(tmp_path, lambda template: template, LiveFirewalls(_not_a_firewall)) as client:
        # One classifier to replace (on ports no row uses).
        existing = {**FC, "id": "e", "logical_source_port": "xa", "logical_destination_port": "xb"}
        assert client.post("/v1/chains/flow-classifiers", json=existing).status_code == 201
        answer = client.request(method, path, json=body)
        document = _document(client)
    assert answer.status_code == status, answer.text
    assert reason in answer.text
    schema_valid = _body_validator(document, template, method).is_valid(body)
    assert schema_valid == (status != 400), (schema_valid, answer.text)
    assert str(status) in document["paths"][template][method.lower()]["responses"]


@pytest.mark.parametrize(
    ("method", "path", "template", "body"),
    [
        ("POST", "/v1/chains/function-templates", "/v1/chains/function-templates",
         {"kind": "counter", "name": "ctr", "network": "apps"}),
        ("PUT", "/v1/chains/firewalls/fw1/rules", "/v1/chains/firewalls/{instance}/rules",
         {"rules": ["udp dport 1 drop"]}),
        ("GET", "/v1/chains/firewalls/fw1/rules", "/v1/chains/firewalls/{instance}/rules", None),
    ],
)  # fmt: skip
def test_without_the_instances_part_the_function_routes_are_unprocessable(
    tmp_path: Path, method: str, path: str, template: str, body: dict[str, Any] | None
) -> None:
    """A schema-valid request that the daemon's configuration cannot serve: 422, documented."""
    with _client(tmp_path, None, None) as client:
        answer = client.request(method, path, json=body)
        document = _document(client)
    assert answer.status_code == 422, answer.text
    assert "need the [instances] part" in answer.text
    responses = document["paths"][template][method.lower()]["responses"]
    assert "[instances]" in responses["422"]["description"]


def test_only_the_classifier_routes_of_the_four_resources_document_a_422(tmp_path: Path) -> None:
    with _client(tmp_path, None, None) as client:
        paths = _document(client)["paths"]
    for template in ("/v1/chains", "/v1/chains/port-pairs", "/v1/chains/port-pair-groups"):
        assert "422" not in paths[template]["post"]["responses"]
    assert (
        "contradict"
        in paths["/v1/chains/flow-classifiers"]["post"]["responses"]["422"]["description"]
    )
    assert "422" in paths["/v1/chains/flow-classifiers/{object_id}"]["put"]["responses"]


def test_every_route_beside_a_chain_id_is_a_reserved_id(tmp_path: Path) -> None:
    """``/v1/chains/{id}`` shares its depth with the collections: each literal segment under
    ``/v1/chains`` must be refused as a chain id (a chain of that id could never be read)."""
    with _client(tmp_path, None, None) as client:
        paths = _document(client)["paths"]
    segments = {
        p.split("/")[3]
        for p in paths
        if p.startswith("/v1/chains/") and not p.split("/")[3].startswith("{")
    }
    assert segments <= set(RESERVED_CHAIN_IDS)
    assert set(RESERVED_CHAIN_IDS) - segments <= {"firewalls"}  # only under /firewalls/{..}/..
    for name in RESERVED_CHAIN_IDS:
        with pytest.raises(ValidationError, match="reserved"):
            PortChainBody.model_validate({"id": name, "port_pair_groups": ["g"]})


def test_the_chain_id_pattern_is_the_validation(tmp_path: Path) -> None:
    """The schema's pattern (a lookahead pydantic's regex engine lacks) and the model's checks
    agree, in Python's dialect and in the schema validator's."""
    with _client(tmp_path, None, None) as client:
        document = _document(client)
    served = document["components"]["schemas"]["PortChainBody"]["properties"]["id"]
    assert served["pattern"] == CHAIN_ID_PATTERN
    validator = jsonschema_rs.validator_for(served)
    for name in [*RESERVED_CHAIN_IDS, "port-pair", "port-pairs-2", "a", "firewall", "Bad", ""]:
        try:
            PortChainBody.model_validate({"id": name, "port_pair_groups": ["g"]})
            accepted = True
        except ValidationError:
            accepted = False
        assert accepted == bool(re.fullmatch(CHAIN_ID_PATTERN, name)), name
        assert accepted == validator.is_valid(name), name


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.from_regex(ID_PATTERN, fullmatch=True) | st.sampled_from(RESERVED_CHAIN_IDS))
def test_chain_ids_the_schema_allows_are_the_ones_validation_allows(name: str) -> None:
    try:
        PortChainBody.model_validate({"id": name, "port_pair_groups": ["g"]})
        accepted = True
    except ValidationError:
        accepted = False
    assert accepted == bool(re.fullmatch(CHAIN_ID_PATTERN, name))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.from_regex(PREFIX_PATTERN, fullmatch=True))
def test_every_prefix_the_schema_allows_is_a_prefix(text: str) -> None:
    prefix = parse_prefix("source_ip_prefix", text)
    assert prefix is not None
    ipaddress.ip_network(text, strict=False)
    ethertype = "IPv4" if prefix.version == 4 else "IPv6"
    FlowClassifierBody.model_validate({**FC, "ethertype": ethertype, "source_ip_prefix": text})
    functions.router_routes([text], [text])


@pytest.mark.parametrize(
    "text",
    ["0.0.0.0/0", "198.18.0.1", "::", "::1/128", "fe80::/10", "1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7::",
     "::2:3:4:5:6:7:8", "::ffff:1.2.3.4/128", "1:2:3:4:5::1.2.3.4", "1:2:3:4:5:6:1.2.3.4",
     "2001:DB8::/32"],
)  # fmt: skip
def test_prefix_forms_the_schema_allows(text: str) -> None:
    assert re.fullmatch(PREFIX_PATTERN, text)


@pytest.mark.parametrize(
    "text",
    ["", "10.0.0.0/33", "01.2.3.4", "1:2:3:4:5:6:7:8:9", "1::2::3", "::1.2.3.4.5", "::/129",
     "1:2:3:4:5:6:7::8", "1:2:3:4:5:6::1.2.3.4", "12345::", " 10.0.0.0", "10.0.0.0\n",
     "fe80::1%eth0", "10.0.0.0/255.0.0.0", "10.0.0.0/08", "\u00a2\u00b8"],
)  # fmt: skip
def test_prefix_forms_the_schema_refuses(text: str) -> None:
    assert not re.fullmatch(PREFIX_PATTERN, text)


@settings(max_examples=300, deadline=None)
@given(st.from_regex(PROTOCOL_PATTERN, fullmatch=True))
def test_every_protocol_the_schema_allows_parses(text: str) -> None:
    parse_protocol(text, "IPv4")
    parse_protocol(text, "IPv6")


@pytest.mark.parametrize("name", [*PROTOCOL_NAMES, "any", "", "0", "007", "255"])
def test_every_protocol_name_in_any_case_is_allowed(name: str) -> None:
    for text in (name, name.upper(), name.title()):
        assert re.fullmatch(PROTOCOL_PATTERN, text), text


@settings(max_examples=300, deadline=None)
@given(st.lists(st.from_regex(functions.RULE_PATTERN, fullmatch=True), max_size=4))
def test_rules_the_schema_allows_are_never_malformed(rules: list[str]) -> None:
    """A rule of the schema's pattern either makes a ruleset or is a 422 (its braces), never
    the 400 of a malformed rule."""
    with contextlib.suppress(ChainUnprocessable):  # an InvalidChain fails the test
        functions.firewall_ruleset(rules)


def test_booleans_are_not_coerced_and_integers_stay_integers() -> None:
    with pytest.raises(ValidationError, match="tap_enabled"):
        PortPairGroupBody.model_validate({"id": "g", "tap_enabled": 0})
    with pytest.raises(ValidationError, match="symmetric"):
        PortChainBody.model_validate({"id": "c", "port_pair_groups": ["g"], "symmetric": 1})
    body = PortChainBody.model_validate({"id": "c", "port_pair_groups": ["g"], "chain_id": 7})
    assert body.chain_id == 7
    fc = FlowClassifierBody.model_validate({**FC, "protocol": 17, "source_port_range_min": 5})
    assert (fc.protocol, fc.source_port_range_min) == (17, 5)


def test_integer_fields_take_json_integers_written_with_a_point() -> None:
    """JSON Schema's ``integer`` admits ``1.0``; strict bodies take it as 1 (never ``1.5``,
    ``true`` or ``"1"``), so a schema-valid body is not a 400."""
    from fluidedge.chains.api import FlowClassifierBody, PortChainBody

    body = FlowClassifierBody.model_validate_json(
        '{"id": "a", "logical_source_port": "p1", "logical_destination_port": "p2",'
        ' "protocol": 6.0, "destination_port_range_min": 80.0, "destination_port_range_max": 81}'
    )
    assert (body.protocol, body.destination_port_range_min) == (6, 80)
    assert (
        PortChainBody.model_validate_json(
            '{"id": "c", "port_pair_groups": ["g"], "chain_id": 1.0}'
        ).chain_id
        == 1
    )
    for bad in ("1.5", "true", '"1"'):
        with pytest.raises(ValidationError):
            PortChainBody.model_validate_json(
                f'{{"id": "c", "port_pair_groups": ["g"], "chain_id": {bad}}}'
            )


def test_optional_integer_fields_state_their_bounds_in_the_schema() -> None:
    """Without explicit bounds the schema of ``JsonInt | None`` had none, so a generated
    ``chain_id: 0`` was schema-valid and refused (a 400)."""
    from fluidedge.chains.api import FlowClassifierBody, PortChainBody

    chain = PortChainBody.model_json_schema()["properties"]["chain_id"]["anyOf"][0]
    assert (chain["minimum"], chain["maximum"]) == (1, 255)
    port = FlowClassifierBody.model_json_schema()["properties"]["source_port_range_min"]
    assert (port["anyOf"][0]["minimum"], port["anyOf"][0]["maximum"]) == (0, 65535)
