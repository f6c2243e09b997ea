"""The API's edge on a real daemon: private reads, body limits, methods, audit log, file modes,
the token file in state_dir, the Unix socket and the CLI through it, metrics exposition."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.fixtures.daemon import TOKEN, DaemonFactory
from tests.fixtures.prom import sample

AUTH = {"Authorization": f"Bearer {TOKEN}"}
TOF = {"tof": {"backend": "none"}}
SVC = {"name": "web", "serviceIP": "198.18.50.1", "applicationIP": "198.19.0.10"}


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_open_reads_false_makes_every_read_private(daemon_factory: DaemonFactory) -> None:
    daemon = daemon_factory(TOF, api={"open_reads": False})
    for path in ("/metrics", "/openapi.json", "/docs", "/redoc", "/service", "/stats", "/nope"):
        anonymous = httpx.get(f"{daemon.url}{path}")
        assert anonymous.status_code == 401, path
        assert "bearer token" in anonymous.json()["detail"]
        assert anonymous.headers["www-authenticate"] == "Bearer"
        wrong = httpx.get(f"{daemon.url}{path}", headers={"Authorization": "Bearer " + "x" * 32})
        assert wrong.status_code == 401, path
    for path in ("/metrics", "/openapi.json", "/docs", "/redoc", "/service"):
        assert httpx.get(f"{daemon.url}{path}", headers=AUTH).status_code == 200, path
    # A liveness probe carries no token.
    assert httpx.get(f"{daemon.url}/healthz").status_code == 200
    # The schema says so: reads need the bearer token too.
    spec = httpx.get(f"{daemon.url}/openapi.json", headers=AUTH).json()
    assert spec["paths"]["/service"]["get"]["security"] == [{"bearer": []}]
    assert "401" in spec["paths"]["/service"]["get"]["responses"]


def test_default_open_reads_still_guard_mutations_and_document_it(
    daemon_factory: DaemonFactory,
) -> None:
    daemon = daemon_factory(TOF)
    assert httpx.get(f"{daemon.url}/service").status_code == 200
    assert httpx.post(f"{daemon.url}/service", json=SVC).status_code == 401
    spec = httpx.get(f"{daemon.url}/openapi.json").json()
    post = spec["paths"]["/service"]["post"]
    assert post["security"] == [{"bearer": []}]
    assert spec["paths"]["/service"]["get"]["security"] == []
    assert {"400", "401", "409", "413", "500", "507"} <= set(post["responses"])
    assert "422" not in json.dumps(spec["paths"]["/service"])
    ref = post["responses"]["400"]["content"]["application/json"]["schema"]["$ref"]
    model = spec["components"]["schemas"][ref.rsplit("/", 1)[1]]
    assert model["properties"]["detail"]["type"] == "string"


def test_body_limit_answers_413_with_the_limit(daemon_factory: DaemonFactory) -> None:
    daemon = daemon_factory(TOF, api={"max_body_bytes": 4096})
    big = json.dumps({**SVC, "name": "x" * 5000}).encode()
    headers = {**AUTH, "content-type": "application/json"}
    declared = httpx.post(f"{daemon.url}/service", content=big, headers=headers)
    assert declared.status_code == 413
    assert "4096" in declared.json()["detail"]

    def chunks() -> object:
        for _ in range(8):
            yield b"x" * 1024

    streamed = httpx.post(f"{daemon.url}/service", content=chunks(), headers=headers)  # type: ignore[arg-type]
    assert streamed.status_code == 413
    assert "4096" in streamed.json()["detail"]
    # A chunked body under the limit is read and served normally.
    small = json.dumps(SVC).encode()
    ok = httpx.post(
        f"{daemon.url}/service", content=iter([small[:10], small[10:]]), headers=headers
    )
    assert ok.status_code == 200, ok.text
    assert httpx.get(f"{daemon.url}/service").json() == [SVC]


def test_options_and_unknown_methods_answer_with_allow(daemon_factory: DaemonFactory) -> None:
    daemon = daemon_factory(TOF)
    options = httpx.options(f"{daemon.url}/service")
    assert options.status_code == 204
    assert options.headers["allow"] == "GET, HEAD, POST, OPTIONS"
    named = httpx.options(f"{daemon.url}/service/web")
    assert named.headers["allow"] == "PUT, DELETE, OPTIONS"
    patch = httpx.patch(f"{daemon.url}/service", json={}, headers=AUTH)
    assert patch.status_code == 405
    assert patch.headers["allow"] == "GET, HEAD, POST, OPTIONS"
    assert "PATCH" in patch.json()["detail"]


def test_audit_log_records_mutations_and_rotates_private(daemon_factory: DaemonFactory) -> None:
    daemon = daemon_factory(TOF, api={"audit_max_bytes": 4096, "audit_backups": 2})
    assert httpx.post(f"{daemon.url}/service", json=SVC, headers=AUTH).status_code == 200
    assert httpx.post(f"{daemon.url}/service", json=SVC).status_code == 401
    bad = {"Authorization": "Bearer " + "y" * 32}
    assert httpx.delete(f"{daemon.url}/service/web", headers=bad).status_code == 401
    assert httpx.get(f"{daemon.url}/service").status_code == 200  # reads are not audited
    audit = Path(daemon.config["state_dir"]) / "audit.log"
    records = [json.loads(line) for line in audit.read_text().splitlines()]
    assert [(r["method"], r["path"], r["auth"], r["status"]) for r in records] == [
        ("POST", "/service", "token", 200),
        ("POST", "/service", "none", 401),
        ("DELETE", "/service/web", "invalid-token", 401),
    ]
    assert records[0]["name"] == "web"
    assert records[0]["peer"].startswith("127.0.0.1:")
    assert TOKEN not in audit.read_text()
    # Rotation: past audit_max_bytes the file rolls over, keeping audit_backups old ones.
    with httpx.Client(base_url=daemon.url, headers=AUTH) as client:
        for index in range(60):
            client.put("/service/nope", json={**SVC, "name": f"n{index}"})
    rotated = sorted(p.name for p in audit.parent.iterdir() if p.name.startswith("audit.log"))
    assert rotated == ["audit.log", "audit.log.1", "audit.log.2"]
    for name in rotated:
        assert _mode(audit.parent / name) == 0o600
        assert audit.parent.joinpath(name).stat().st_size <= 4096


def test_state_dir_is_private_token_file_in_state_dir(daemon_factory: DaemonFactory) -> None:
    daemon = daemon_factory(TOF, start=False)
    del daemon.config["api"]["token"]
    daemon.write_config()
    daemon.start()
    state = Path(daemon.config["state_dir"])
    token_file = state / "token"
    assert token_file.exists()
    token = token_file.read_text().strip()
    headers = {"Authorization": f"Bearer {token}"}
    assert httpx.post(f"{daemon.url}/service", json=SVC, headers=headers).status_code == 200
    assert _mode(state) == 0o700
    for path in state.iterdir():
        assert _mode(path) == 0o600, path
    assert {"fluidedge.sqlite", "token", "audit.log"} <= {p.name for p in state.iterdir()}
    assert daemon.socket_path is not None
    assert _mode(daemon.socket_path) == 0o600


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("FLUIDEDGE_")}
    return subprocess.run(
        [sys.executable, "-m", "fluidedge", *args],
        capture_output=True,
        text=True,
        env={**clean, **env},
        timeout=60,
        check=False,
    )


def test_cli_finds_socket_and_token_in_state_dir(daemon_factory: DaemonFactory) -> None:
    # Socket at its default place (state_dir/api.sock), token file written by the daemon. The
    # CLI is given only the state directory: it cannot know the daemon's TCP port.
    daemon = daemon_factory(TOF, start=False, api={"socket": "api.sock"})
    del daemon.config["api"]["token"]
    daemon.write_config()
    daemon.socket_path = Path(daemon.config["state_dir"]) / "api.sock"
    daemon.start()
    state = daemon.config["state_dir"]
    added = _cli("--state-dir", state, "service", "add", "web", "198.18.50.1", "198.19.0.10",
                 env={})  # fmt: skip
    assert added.returncode == 0, added.stderr
    listed = _cli("service", "list", "--json", env={"FLUIDEDGE_STATE_DIR": state})
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout) == [SVC]
    # An explicit socket works without the state dir (the token then comes from the env).
    token = (Path(state) / "token").read_text().strip()
    explicit = _cli(
        "--socket",
        str(daemon.socket_path),
        "service",
        "delete",
        "web",
        env={"FLUIDEDGE_TOKEN": token},
    )
    assert explicit.returncode == 0, explicit.stderr
    # Without the token the socket refuses mutations like TCP does.
    refused = _cli("--socket", str(daemon.socket_path), "service", "delete", "web", env={})
    assert refused.returncode == 1
    assert "401" in refused.stderr


def test_metrics_are_prometheus_client_exposition(daemon_factory: DaemonFactory) -> None:
    daemon = daemon_factory(TOF)
    httpx.post(f"{daemon.url}/service", json=SVC, headers=AUTH)
    response = httpx.get(f"{daemon.url}/metrics")
    assert response.headers["content-type"].startswith("text/plain; version=")
    text = response.text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert families["fluidedge_http_request_duration_seconds"].type == "histogram"
    assert "process_resident_memory_bytes" in families
    assert sample(text, "fluidedge_part_metrics_up", part="tof") == 1
    count = sample(
        text,
        "fluidedge_http_request_duration_seconds_count",
        method="POST",
        route="/service",
        status="200",
    )
    assert count == 1
    # The part's own names are kept.
    up = sample(text, "fluidedge_tof_service_packets_total", service="web", direction="up")
    assert up == 0
