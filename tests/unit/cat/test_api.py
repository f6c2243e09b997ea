"""The ``/v1/cat`` routes on the resctrl emulation: statuses and reasons, and the no-RDT answer."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, get_args

import pytest
from fastapi.testclient import TestClient
from tests.fixtures.resctrl import SHAPES, FakeResctrl

from fluidedge.cat.layout import MODELS
from fluidedge.cat.models import CosModel
from fluidedge.core.config import parse_config
from fluidedge.core.store import Store
from fluidedge.daemon.app import build_context, create_app

TOKEN = "t" * 32
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def _client(tmp_path: Path, fs: FakeResctrl | None) -> TestClient:
    mount = fs.root if fs is not None else tmp_path / "absent"
    config = parse_config(
        {"state_dir": str(tmp_path), "api": {"token": TOKEN}, "cat": {"mount": str(mount)}}
    )
    context = build_context(config, Store(tmp_path / "db.sqlite"))
    if fs is not None:
        context.parts["cat"].manager.fs = fs  # type: ignore[attr-defined]
    return TestClient(create_app(context, TOKEN))


def test_routes_answer_with_the_kernels_reasons(tmp_path: Path) -> None:
    fs = FakeResctrl(tmp_path / "r", SHAPES["12w-4c-mba-mon"])
    with _client(tmp_path, fs) as client:
        status = client.get("/v1/cat").json()
        assert status["supported"]
        assert status["host"]["num_closids"] == 4
        made = client.post(
            "/v1/cat/classes", json={"name": "vfw", "l3": "f0", "mb": 45}, headers=AUTH
        )
        assert made.status_code == 201
        assert made.json()["schemata"]["L3"] == {"0": "0f0"}
        again = client.post("/v1/cat/classes", json={"name": "vfw", "l3": "f0"}, headers=AUTH)
        assert again.status_code == 409
        bad = client.put("/v1/cat/classes/vfw", json={"name": "vfw", "l3": "f0f"}, headers=AUTH)
        assert bad.status_code == 422  # hex, but this host's cache takes no holes
        assert "non-consecutive" in bad.json()["detail"]
        typo = client.post("/v1/cat/classes", json={"name": "x", "l4": "f"}, headers=AUTH)
        assert typo.status_code == 400
        preset = client.post("/v1/cat/presets/3-3-3-3", json={}, headers=AUTH)
        assert preset.status_code == 409
        assert "out of CLOSIDs" in preset.json()["detail"]
        good = client.post("/v1/cat/presets/6-4-2", json={"names": {"target": "vfw"}}, headers=AUTH)
        assert good.status_code == 200, good.text
        assert good.json()["ways"] == {"noisy": 6, "default": 4, "vfw": 2}
        assert client.post("/v1/cat/presets/9-3", json={}, headers=AUTH).status_code == 400
        names = [c["name"] for c in client.get("/v1/cat/classes").json()]
        assert names == ["default", "noisy", "vfw"]
        assert client.delete("/v1/cat/classes/nope", headers=AUTH).status_code == 404
        assert client.delete("/v1/cat/classes/noisy", headers=AUTH).status_code == 204
        assert client.post("/v1/cat/classes", json={"name": "y", "l3": "f"}).status_code == 401
        reset = client.post("/v1/cat/reset", headers=AUTH)
        assert reset.status_code == 200
        assert [c["name"] for c in reset.json()] == ["default"]
        assert reset.json()[0]["schemata"]["L3"] == {"0": "fff"}
        assert "fluidedge_cat_supported 1" in client.get("/metrics").text


def test_without_resctrl_the_routes_say_so_and_the_daemon_runs(tmp_path: Path) -> None:
    with _client(tmp_path, None) as client:
        assert client.get("/healthz").status_code == 200
        status = client.get("/v1/cat").json()
        assert status["supported"] is False
        assert status["reason"].startswith("not supported on this host: no RDT (checked: ")
        answer = client.get("/v1/cat/classes")
        assert answer.status_code == 501
        assert "absent" in answer.json()["detail"]
        post = client.post("/v1/cat/classes", json={"name": "a", "l3": "f"}, headers=AUTH)
        assert post.status_code == 501


# ---------------------------------------------------------------------------- statuses vs schema

# A request for every operation but GET /v1/cat, with a body the schema takes.
_OPERATIONS: list[tuple[str, str, dict[str, Any] | None]] = [
    ("GET", "/v1/cat/classes", None),
    ("POST", "/v1/cat/classes", {"name": "a", "l3": "f"}),
    ("GET", "/v1/cat/classes/a", None),
    ("PUT", "/v1/cat/classes/a", {"name": "a", "l3": "f"}),
    ("DELETE", "/v1/cat/classes/a", None),
    ("POST", "/v1/cat/layout", {"classes": [{"name": "a", "l3": "f"}]}),
    ("POST", "/v1/cat/presets/4-4-4", {}),
    ("POST", "/v1/cat/reset", None),
    ("GET", "/v1/cat/instances", None),
    ("GET", "/v1/cat/instances/a", None),
    ("POST", "/v1/cat/classes/a/instances", {"instance": "a"}),
    ("DELETE", "/v1/cat/instances/a", None),
]


def _documented(client: TestClient, method: str, path: str) -> set[str]:
    document = client.get("/openapi.json").json()
    for template, item in document["paths"].items():
        pattern = "^" + re.sub(r"\\{[^}]+\\}", "[^/]+", re.escape(template)) + "$"
        if re.match(pattern, path) and method.lower() in item:
            return set(item[method.lower()]["responses"])
    raise AssertionError(f"{method} {path} is not in the document")


def test_every_cat_operation_documents_501(tmp_path: Path) -> None:
    """Every route but GET /v1/cat touches resctrl and answers 501 on a host without it: the
    OpenAPI document says so, and says why."""
    with _client(tmp_path, None) as client:
        document = client.get("/openapi.json").json()
    operations = [
        (method, path, op)
        for path, item in document["paths"].items()
        if path.startswith("/v1/cat/")
        for method, op in item.items()
    ]
    assert len(operations) == len(_OPERATIONS)
    for method, path, op in operations:
        entry = op["responses"].get("501")
        assert entry is not None, f"{method.upper()} {path} does not document 501"
        assert "no RDT" in entry["description"]
        assert entry["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/Error"
        }
    assert "501" not in document["paths"]["/v1/cat"]["get"]["responses"]


@pytest.mark.parametrize(("method", "path", "body"), _OPERATIONS)
def test_without_resctrl_every_answer_is_documented(
    tmp_path: Path, method: str, path: str, body: dict[str, Any] | None
) -> None:
    with _client(tmp_path, None) as client:
        answer = client.request(method, path, json=body, headers=AUTH)
        # assigning an instance that does not run is a 404 before resctrl is asked
        assert answer.status_code in (404, 501), answer.text
        assert str(answer.status_code) in _documented(client, method, path)


def _schema_of(client: TestClient, name: str) -> Any:
    jsonschema_rs = pytest.importorskip("jsonschema_rs")
    document = client.get("/openapi.json").json()
    root = {"$ref": f"#/components/schemas/{name}", "components": document["components"]}
    return jsonschema_rs.validator_for(root)


# (method, path, body, status, words in the reason): what only the host, the declared state or
# two fields together refuse is a 422 for a body the schema takes; what the schema refuses is a
# 400 at the boundary. Each row is also checked against the served schema below.
_REFUSALS: list[tuple[str, str, str, dict[str, Any], int, str]] = [
    ("PUT", "/v1/cat/classes/a", "CosSpec", {"name": "b", "l3": "f"}, 422, "the path 'a'"),
    ("POST", "/v1/cat/classes", "CosSpec", {"name": "a", "cpus": "Ø"}, 400, "cpus"),
    ("POST", "/v1/cat/classes", "CosSpec", {"name": "a", "cpus": " 1"}, 400, "cpus"),
    ("POST", "/v1/cat/classes", "CosSpec", {"name": "a", "cpus": "3-1"}, 422, "backwards"),
    ("POST", "/v1/cat/classes", "CosSpec", {"name": "a", "cpus": "9999999"}, 422, "beyond"),
    ("POST", "/v1/cat/classes", "CosSpec", {"name": "a", "cpus": "7"}, 422, "online CPUs"),
    ("POST", "/v1/cat/classes", "CosSpec", {"name": "a", "exclusive": 0}, 400, "exclusive"),
    ("POST", "/v1/cat/classes", "CosSpec", {"name": "info", "l3": "f"}, 400, "reserved"),
    ("POST", "/v1/cat/classes", "CosSpec", {"name": "a", "l3": "0xf"}, 400, "l3"),
    ("POST", "/v1/cat/classes", "CosSpec", {"name": "a", "l3": {"x": "f"}}, 400, "l3"),
    ("POST", "/v1/cat/classes", "CosSpec", {"name": "a", "l3": {"7": "f"}}, 422, "unknown cache"),
    ("POST", "/v1/cat/classes", "CosSpec", {"name": "a", "l3": "1000"}, 422, "out of range"),
    ("POST", "/v1/cat/classes", "CosSpec", {"name": "a", "l2": "f"}, 422, "'L2'"),
    ("POST", "/v1/cat/classes", "CosSpec", {"name": "a", "mb": 5}, 422, "MB value 5"),
    ("POST", "/v1/cat/classes", "CosSpec", {"name": "a", "mb": -1}, 400, "mb"),
    ("POST", "/v1/cat/classes", "CosSpec", {"name": "a", "mb": "50"}, 400, "mb"),
    ("POST", "/v1/cat/classes", "CosSpec", {"name": "a"}, 422, "at least one of"),
    ("POST", "/v1/cat/classes", "CosSpec", {"name": "default", "cpus": "1"}, 422, "default"),
    (
        "POST",
        "/v1/cat/layout",
        "LayoutRequest",
        {"classes": [{"name": "a", "l3": "f"}, {"name": "a", "l3": "f0"}]},
        422,
        "unique",
    ),
    (
        "POST",
        "/v1/cat/layout",
        "LayoutRequest",
        {"classes": [{"name": "a", "cpus": "1"}, {"name": "b", "cpus": "0-1"}]},
        422,
        "CPU 1 is in both",
    ),
    ("POST", "/v1/cat/layout", "LayoutRequest", {"classes": [], "replace": 0}, 400, "classes"),
    ("POST", "/v1/cat/presets/4-4-4", "PresetRequest", {"names": {"target2": "x"}}, 422, "target2"),
    ("POST", "/v1/cat/presets/4-4-4", "PresetRequest", {"resource": "L2"}, 422, "L2"),
    ("POST", "/v1/cat/presets/4-4-4", "PresetRequest", {"names": {"rest": "x"}}, 400, "rest"),
    ("POST", "/v1/cat/presets/4-4-4", "PresetRequest", {"names": {"top": "x"}}, 400, "top"),
    ("POST", "/v1/cat/presets/4-4-4", "PresetRequest", {"cpus": {"rest": "1"}}, 400, "rest"),
    ("POST", "/v1/cat/presets/4-4-4", "PresetRequest", {"cpus": {"noisy": "x"}}, 400, "cpus"),
    ("POST", "/v1/cat/presets/4-4-4", "PresetRequest", {"replace": 0}, 400, "replace"),
]


@pytest.mark.parametrize(
    ("method", "path", "schema", "body", "code", "words"),
    _REFUSALS,
    ids=[f"{r[1]}-{json.dumps(r[3])}" for r in _REFUSALS],
)
def test_the_schema_decides_400_and_the_host_422(  # noqa: PLR0917 (the table's row)
    tmp_path: Path,
    method: str,
    path: str,
    schema: str,
    body: dict[str, Any],
    code: int,
    words: str,
) -> None:
    fs = FakeResctrl(tmp_path / "r", SHAPES["12w-4c-mba-mon"])
    with _client(tmp_path, fs) as client:
        if method == "PUT":
            made = client.post("/v1/cat/classes", json={"name": "a", "l3": "f"}, headers=AUTH)
            assert made.status_code == 201, made.text
        answer = client.request(method, path, json=body, headers=AUTH)
        assert answer.status_code == code, answer.text
        assert words in answer.json()["detail"]
        assert str(code) in _documented(client, method, path)
        # a 400 exactly when the served schema refuses the body
        assert _schema_of(client, schema).is_valid(body) == (code != 400)


def test_the_other_routes_refusals(tmp_path: Path) -> None:
    fs = FakeResctrl(tmp_path / "r", SHAPES["12w-4c-mba-mon"])
    with _client(tmp_path, fs) as client:
        unknown = client.post("/v1/cat/presets/9-3", json={}, headers=AUTH)
        assert unknown.status_code == 400
        assert "model" in unknown.json()["detail"]
        gone = client.delete("/v1/cat/classes/default", headers=AUTH)
        assert gone.status_code == 422
        assert "default group" in gone.json()["detail"]
        # no instance manager here: every instance is one that is not running
        absent = client.post(
            "/v1/cat/classes/default/instances", json={"instance": "web"}, headers=AUTH
        )
        assert absent.status_code == 404
        assert "not running" in absent.json()["detail"]
        assert "422" in _documented(client, "DELETE", "/v1/cat/classes/default")
        assert "404" in _documented(client, "POST", "/v1/cat/classes/default/instances")


def test_preset_models_are_the_layouts() -> None:
    """The path's enum is the seed's models, no more, no less."""
    assert set(get_args(CosModel)) == set(MODELS)
