"""Mp1 conformance: schemathesis, every check, driven by the official MEC 011 OpenAPI documents
(vendored in tests/fixtures/mec/, see ORIGIN.md there) against a real daemon, and by the
daemon's own document for the same routes. A schema-valid request never meets a 5xx, and every
answer's status, content type, headers and body are what the documents say.

Bounded for CI (``EXAMPLES`` per operation, fixed seed)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import yaml

from tests.fixtures.daemon import TOKEN, DaemonFactory, DaemonHandle
from tests.functional.mec.conftest import up

pytestmark = [pytest.mark.slow]

HERE = Path(__file__).parent
CONFIG = HERE / "schemathesis-mp1.toml"
OFFICIAL = Path(__file__).parents[2] / "fixtures" / "mec"
EXAMPLES = 15
# No Mp1 request budget: the runs send thousands of requests with the app's token (429 is
# tested in tests/unit/mec/test_mp1_api.py).
PARTS = {"tof": {"backend": "none"}, "mec": {"app_rate": 0}}
SERVICE = {
    "serName": "conformance", "version": "1", "state": "ACTIVE", "serializer": "JSON",
    "transportInfo": {
        "id": "t1", "name": "REST", "type": "REST_HTTP", "protocol": "HTTP", "version": "1.1",
        "endpoint": {"uris": ["http://10.0.3.10/"]}, "security": {},
    },
}  # fmt: skip


def prepare(daemon: DaemonHandle) -> dict[str, str]:
    """An app instance (with rule r1 and DNS rule d1) whose token the runs use, a service it
    offers and one subscription of each kind: the path parameters of the runs."""
    body = {
        "name": "conformance",
        "dataAddress": "10.0.2.10",
        "trafficRules": [
            {"trafficRuleId": "r1", "filterType": "FLOW", "priority": 1,
             "trafficFilter": [{"dstAddress": ["198.18.0.5"]}],
             "action": "FORWARD_DECAPSULATED", "state": "ACTIVE"},
        ],
        "dnsRules": [
            {"dnsRuleId": "d1", "domainName": "app.example", "ipAddressType": "IP_V4",
             "ipAddress": "198.18.0.5", "state": "ACTIVE"},
        ],
    }  # fmt: skip
    answer = httpx.post(
        f"{daemon.url}/v1/apps",
        headers={"Authorization": f"Bearer {TOKEN}"},
        json=body,
        timeout=30,
    )
    answer.raise_for_status()
    app_id, token = answer.json()["appInstanceId"], answer.json()["token"]
    auth = {"Authorization": f"Bearer {token}"}
    base = f"{daemon.url}/mec_service_mgmt/v1/applications/{app_id}"
    service = httpx.post(f"{base}/services", headers=auth, json=SERVICE, timeout=30)
    service.raise_for_status()
    subs = {}
    for api, kind in (
        ("mec_service_mgmt", "SerAvailability"),
        ("mec_app_support", "AppTermination"),
    ):
        sub = httpx.post(
            f"{daemon.url}/{api}/v1/applications/{app_id}/subscriptions",
            headers=auth,
            json={
                "subscriptionType": f"{kind}NotificationSubscription",
                "callbackReference": "http://127.0.0.1:9/unused",
                "appInstanceId": app_id,
            },
            timeout=30,
        )
        sub.raise_for_status()
        subs[api] = sub.headers["location"].rsplit("/", 1)[1]
    return {
        "MEC_APP_ID": app_id,
        "MEC_TOKEN": token,
        "MEC_SERVICE_ID": service.json()["serInstanceId"],
        "MEC_SVC_SUB_ID": subs["mec_service_mgmt"],
        "MEC_TERM_SUB_ID": subs["mec_app_support"],
    }


# Operations (by the documents' operationId) where a well-formed request can contradict the
# path or the stored resources, answered 422 (ETSI GS MEC 009: "Unprocessable Entity", a
# syntactically correct body whose content cannot be processed), as our document says.
UNPROCESSABLE = {
    "MecServiceMgmtApi.yaml": (
        "/applications/{appInstanceId}/services", "post",  # a serName the app already offers
        "/applications/{appInstanceId}/services/{serviceId}", "put",  # another id, a new name
    ),
    "MecAppSupportApi.yaml": (
        "/applications/{appInstanceId}/traffic_rules/{trafficRuleId}", "put",  # id; the TOF
        "/applications/{appInstanceId}/dns_rules/{dnsRuleId}", "put",  # id; ipAddressType
        "/applications/{appInstanceId}/subscriptions", "post",  # appInstanceId not the path's
        "/applications/{appInstanceId}/confirm_ready", "post",  # active rules and no TOF
    ),
}  # fmt: skip


def corrected(document: str, target: Path) -> str:
    """The official ``document``, with its one unusable schema corrected, as a JSON file.

    MecServiceMgmtApi.yaml's ``AppServices_POST`` request body is ``oneOf: [{type: object},
    {type: object}]``: every object matches both branches, so no body can satisfy ``oneOf``
    (schemathesis: "Nothing satisfies oneOf"). Its description, and MEC 011, say the body is a
    ServiceInfo: that is what it becomes here. MecAppSupportApi.yaml's ``confirm_ready`` and
    ``confirm_termination`` document no 400, yet a body the schema refuses must be answered
    with one (every other operation with a body has it): it is added. The operations of
    ``UNPROCESSABLE`` get the 422 of ETSI GS MEC 009 (SAPI's common status codes), which MEC
    011's documents leave out: a body that contradicts the path's id or the stored resources
    is understood, and refused for what it asks. The vendored files stay as ETSI published
    them.
    """
    spec = yaml.safe_load((OFFICIAL / document).read_text())
    post = spec["paths"].get("/applications/{appInstanceId}/services", {}).get("post")
    if post is not None:
        schema = post["requestBody"]["content"]["application/json"]["schema"]
        assert schema["oneOf"] == [{"type": "object"}, {"type": "object"}], schema
        post["requestBody"]["content"]["application/json"]["schema"] = {
            "$ref": "#/components/schemas/ServiceInfo"
        }
    for path in ("confirm_ready", "confirm_termination"):
        operation = spec["paths"].get(f"/applications/{{appInstanceId}}/{path}", {}).get("post")
        if operation is not None:
            assert "400" not in operation["responses"]
            operation["responses"]["400"] = {
                "description": "Bad Request (added: a malformed body is refused with a reason)",
                "content": {
                    "application/problem+json": {
                        "schema": {"$ref": "#/components/schemas/ProblemDetails"}
                    }
                },
            }
    pairs = UNPROCESSABLE.get(document, ())
    for path, method in zip(pairs[::2], pairs[1::2], strict=True):
        operation = spec["paths"][path][method]
        assert "422" not in operation["responses"]
        operation["responses"]["422"] = {
            "description": "Unprocessable Entity (added: ETSI GS MEC 009's status for a "
            "well-formed body whose content cannot be processed)",
            "content": {
                "application/problem+json": {
                    "schema": {"$ref": "#/components/schemas/ProblemDetails"}
                }
            },
        }
    target.write_text(json.dumps(spec))
    return str(target)


def run(schema: str, env: dict[str, str], *extra: str) -> subprocess.CompletedProcess[str]:
    argv = [
        str(Path(sys.executable).with_name("schemathesis")),
        "--config-file", str(CONFIG),
        "run", schema,
        "--checks", "all",
        "--header", f"Authorization: Bearer {env['MEC_TOKEN']}",
        "--max-examples", str(EXAMPLES),
        "--seed", "1",
        "--workers", "1",
        *extra,
    ]  # fmt: skip
    return subprocess.run(
        argv,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
        env={**os.environ, **env},
    )


def report(result: subprocess.CompletedProcess[str]) -> str:
    return result.stdout[-6000:] + result.stderr[-2000:]


@pytest.mark.timeout(1200)
@pytest.mark.parametrize(
    ("document", "prefix"),
    [
        ("MecServiceMgmtApi.yaml", "/mec_service_mgmt/v1"),
        ("MecAppSupportApi.yaml", "/mec_app_support/v1"),
    ],
)
def test_the_official_documents_find_nothing(
    daemon_factory: DaemonFactory, tmp_path: Path, document: str, prefix: str
) -> None:
    daemon = up(daemon_factory, PARTS)
    env = prepare(daemon)
    schema = corrected(document, tmp_path / f"{document}.json")
    result = run(schema, env, "--url", f"{daemon.url}{prefix}")
    assert result.returncode == 0, report(result)
    assert "No issues found" in result.stdout or "passed" in result.stdout, report(result)


@pytest.mark.timeout(1200)
def test_our_own_document_of_the_mp1_routes_tells_the_truth(daemon_factory: DaemonFactory) -> None:
    daemon = up(daemon_factory, PARTS)
    env = prepare(daemon)
    result = run(f"{daemon.url}/openapi.json", env, "--include-path-regex", "^/mec_")
    assert result.returncode == 0, report(result)
