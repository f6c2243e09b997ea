"""Security-group statuses on a real daemon: the schemathesis run's finding (an ICMP type on a
rule without icmp, a schema-valid body refused with 400) is now a documented 422; what one
field breaks stays a 400 the schema announces; the id ``ports`` is refused, so that
``/v1/security-groups/ports`` always lists the ports."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.fixtures.daemon import DaemonFactory, DaemonHandle
from tests.functional.daemon.conftest import purge_instances

pytestmark = pytest.mark.root

TCP = {"direction": "ingress", "protocol": "tcp", "port_range_min": 80}


@pytest.fixture
def daemon(daemon_factory: DaemonFactory) -> Iterator[DaemonHandle]:
    handle = daemon_factory({"instances": {"pool_scale": 0, "memory_mb": 1024}, "secgroups": {}})
    try:
        yield handle
    finally:
        handle.stop()
        purge_instances(handle)


@pytest.fixture
def http(daemon: DaemonHandle) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {daemon.token}"}
    with httpx.Client(base_url=daemon.url, headers=headers, timeout=60) as client:
        yield client


def _documented(http: httpx.Client, method: str, template: str) -> set[str]:
    return set(http.get("/openapi.json").json()["paths"][template][method]["responses"])


def _post(http: httpx.Client, path: str, body: dict[str, Any]) -> tuple[int, str]:
    answer = http.post(f"/v1/security-groups{path}", json=body)
    return answer.status_code, answer.json().get("detail", "") if answer.content else ""


def test_contradictions_are_422_and_malformed_fields_400(http: httpx.Client) -> None:
    assert {"400", "422"} <= _documented(http, "post", "/v1/security-groups")
    assert {"400", "422"} <= _documented(http, "post", "/v1/security-groups/{group_id}/rules")
    assert {"400", "422"} <= _documented(http, "put", "/v1/security-groups/{group_id}")
    found = {
        "id": "found",
        "rules": [
            {"ethertype": "IPv6", "icmp_type": 153, "icmp_code": None, "direction": "ingress"}
        ],
    }
    status, why = _post(http, "", found)
    assert (status, "icmp_type: an ICMP type/code needs protocol icmp" in why) == (422, True)
    assert _post(http, "", {"id": "web", "rules": [TCP]})[0] == 201
    cases: list[tuple[dict[str, Any], int, str]] = [
        ({**TCP, "protocol": "icmp"}, 422, "port_range_min"),
        ({**TCP, "port_range_max": 79}, 422, "above port_range_max"),
        ({**TCP, "remote_group": "nope"}, 422, "unknown group 'nope'"),
        ({**TCP, "remote_ip_prefix": "fd00::/8"}, 422, "IPv4 prefix"),
        ({**TCP, "protocol": -8961}, 400, "protocol"),
        ({**TCP, "remote_ip_prefix": "µxn"}, 400, "remote_ip_prefix"),
        ({**TCP, "port_range_min": 455.5}, 400, "port_range_min"),
        ({**TCP, "port_range_min": "80"}, 400, "port_range_min"),
    ]
    for rule, expected, words in cases:
        status, why = _post(http, "/web/rules", rule)
        assert (status, words in why) == (expected, True), (rule, status, why)
    # JSON's integer 81.0 is an integer: accepted as 81
    status, _ = _post(http, "/web/rules", {**TCP, "port_range_min": 81.0})
    assert status == 201
    rules = http.get("/v1/security-groups/web").json()["rules"]
    assert sorted(r["port_range_min"] for r in rules) == [80, 81]


def test_the_id_ports_is_refused_and_the_ports_listing_stays(http: httpx.Client) -> None:
    status, why = _post(http, "", {"id": "ports"})
    assert (status, "'ports' is reserved" in why) == (400, True)
    schema = http.get("/openapi.json").json()["components"]["schemas"]["GroupBody"]
    assert schema["properties"]["id"]["not"] == {"enum": ["ports"]}
    listing = http.get("/v1/security-groups/ports")
    assert listing.status_code == 200
    assert listing.json() == []
    assert "ports" not in [g["id"] for g in http.get("/v1/security-groups").json()]
