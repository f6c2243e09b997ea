"""``/v1/chains`` on a real daemon (``fluidedge serve`` with the chains part alone): the bodies
the schemathesis run found refused with a 400 although the served schema took them are now
refused by the served schema too; ``tap_enabled: 0`` is no longer taken as false; what the
schema cannot state is a documented 422 (fields that contradict each other, the function
routes without an ``[instances]`` part); a chain cannot take a collection's name.

Each request is also judged by the daemon's own ``/openapi.json`` (``jsonschema_rs``): a body
it accepts is never answered 400, and every status answered is one the route documents."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.fixtures.daemon import TOKEN, DaemonFactory

jsonschema_rs = pytest.importorskip("jsonschema_rs")

pytestmark = pytest.mark.root


class _Api:
    def __init__(self, client: httpx.Client) -> None:
        self.client = client
        self.document: dict[str, Any] = client.get("/openapi.json").json()

    def template(self, method: str, path: str) -> str:
        """The document's path template that ``path`` answers on (a literal path first)."""
        matches: list[str] = []
        for template, item in self.document["paths"].items():
            regex = re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template))
            if method.lower() in item and re.fullmatch(regex, path):
                matches.append(template)
        assert matches, (method, path)
        return min(matches, key=lambda t: t.count("{"))

    def call(self, method: str, path: str, body: Any = None) -> httpx.Response:
        """The answer, after checking it against the document: documented status, and a 400
        only for a body the schema refuses."""
        answer = self.client.request(method, path, json=body)
        operation = self.document["paths"][self.template(method, path)][method.lower()]
        assert str(answer.status_code) in operation["responses"], (path, answer.text)
        if body is not None:
            schema = operation["requestBody"]["content"]["application/json"]["schema"]
            validator = jsonschema_rs.validator_for(
                {**schema, "components": self.document["components"]}
            )
            assert validator.is_valid(body) == (answer.status_code != 400), (body, answer.text)
        return answer


@pytest.fixture
def api(daemon_factory: DaemonFactory) -> Iterator[_Api]:
    handle = daemon_factory({"chains": {}})
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=handle.url, headers=headers, timeout=30) as client:
        yield _Api(client)


ZEROS = "0" * 1024
FC = {"id": "c", "logical_source_port": "va", "logical_destination_port": "vb"}


def test_the_schema_failures_are_refused_by_the_schema(api: _Api) -> None:
    # The run's bodies (/tmp/schema_failures.txt), each a 400 naming the field.
    for path, body, field in [
        ("/v1/chains", {"chain_id": 1, "description": ZEROS, "failure_policy": "closed",
                        "flow_classifiers": [], "id": "a", "port_pair_groups": [""],
                        "symmetric": True}, "port_pair_groups"),
        ("/v1/chains/flow-classifiers",
         {"description": ZEROS, "destination_ip_prefix": "", "destination_port_range_max": 0,
          "destination_port_range_min": 0, "ethertype": "IPv4", "id": "a",
          "logical_destination_port": "0", "logical_source_port": "0", "protocol": None,
          "source_ip_prefix": "", "source_port_range_max": 0, "source_port_range_min": 0,
          "tof_service": "0"}, "ip_prefix"),
        ("/v1/chains/function-templates",
         {"kind": "router", "egress_routes": ["\u00d6", ""], "ingress_routes": ["\u00a2\u00b8"],
          "name": "mec-consumer", "rules": ["", "\u00ac"], "network": "rsq"}, "routes"),
        ("/v1/chains/port-pair-groups",
         {"description": "", "id": "a", "port_pairs": [], "tap_enabled": 0}, "tap_enabled"),
        ("/v1/chains/port-pair-groups",
         {"description": "", "port_pairs": ["z\U0007a308\x10\u3ef2", "'\x8ahp$s"], "id": "a",
          "tap_enabled": True}, "port_pairs"),
    ]:  # fmt: skip
        answer = api.call("POST", path, body)
        assert answer.status_code == 400, answer.text
        assert field in answer.json()["detail"]
    answer = api.call("PUT", "/v1/chains/firewalls/fw1/rules", {"rules": [""]})
    assert answer.status_code == 400, answer.text
    assert api.call("GET", "/v1/chains/port-pair-groups").json() == []  # nothing was stored


def test_what_the_schema_cannot_state_is_a_422(api: _Api) -> None:
    for body, reason in [
        ({**FC, "ethertype": "IPv6", "source_ip_prefix": "10.0.0.0/8"}, "not an IPv6 prefix"),
        ({**FC, "destination_port_range_min": 80}, "needs protocol tcp"),
        ({**FC, "logical_destination_port": "va"}, "logical source port"),
        ({**FC, "tof_service": "video", "destination_ip_prefix": "198.19.0.1"}, "TOF service"),
    ]:
        answer = api.call("POST", "/v1/chains/flow-classifiers", body)
        assert answer.status_code == 422, answer.text
        assert reason in answer.json()["detail"]
        assert answer.headers["x-fluidedge-error"] == "ChainUnprocessable"
    assert api.call("GET", "/v1/chains/flow-classifiers").json() == []
    created = api.call("POST", "/v1/chains/flow-classifiers", {**FC, "protocol": "TCP"})
    assert created.status_code == 201, created.text
    assert created.json()["protocol"] == 6
    replaced = api.call("PUT", "/v1/chains/flow-classifiers/c", {**FC, "source_port_range_min": 5})
    assert replaced.status_code == 422, replaced.text

    # No [instances] part: the function routes contradict the daemon's configuration.
    for method, path, body in [
        ("POST", "/v1/chains/function-templates", {"kind": "counter", "name": "c", "network": "n"}),
        ("PUT", "/v1/chains/firewalls/fw1/rules", {"rules": ["udp dport 7000 drop"]}),
        ("GET", "/v1/chains/firewalls/fw1/rules", None),
    ]:
        answer = api.call(method, path, body)
        assert answer.status_code == 422, answer.text
        assert "need the [instances] part" in answer.json()["detail"]


def test_a_chain_cannot_take_a_collections_name(api: _Api) -> None:
    assert api.call("POST", "/v1/chains/port-pair-groups", {"id": "g"}).status_code == 201
    for name in ("port-pairs", "port-pair-groups", "flow-classifiers", "function-templates",
                 "firewalls"):  # fmt: skip
        answer = api.call("POST", "/v1/chains", {"id": name, "port_pair_groups": ["g"]})
        assert answer.status_code == 400, answer.text
        assert "reserved" in answer.json()["detail"]
    assert api.call("GET", "/v1/chains").json() == []
    # The collection stays the collection.
    assert [g["id"] for g in api.call("GET", "/v1/chains/port-pair-groups").json()] == ["g"]
    created = api.call("POST", "/v1/chains", {"id": "port-pair", "port_pair_groups": ["g"]})
    assert created.status_code == 201, created.text
    assert api.call("GET", "/v1/chains/port-pair").json()["id"] == "port-pair"
