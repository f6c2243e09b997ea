"""The ``/v1/cat`` routes on the resctrl emulation: statuses and reasons, and the no-RDT answer."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient
from tests.fixtures.resctrl import SHAPES, FakeResctrl

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
        assert bad.status_code == 400
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
