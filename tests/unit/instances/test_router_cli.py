"""``fluidedge router create`` sends the body ``POST /v1/routers`` takes, and refuses a leg
that is not NETWORK=ADDRESS/PREFIX before sending anything."""

from __future__ import annotations

from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from fluidedge.instances import cli


class Recorder:
    def __init__(self) -> None:
        self.sent: list[tuple[str, Any]] = []

    def post(self, path: str, body: Any = None) -> Any:
        self.sent.append((path, body))
        return body


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> Recorder:
    rec = Recorder()
    monkeypatch.setattr(cli, "_client", lambda: rec)
    return rec


def _run(*argv: str) -> Any:
    app = typer.Typer()
    cli._register_router(app)
    return CliRunner().invoke(app, ["router", *argv])


def test_create_sends_each_leg(recorder: Recorder) -> None:
    result = _run("create", "r1", "--leg", "net-a=10.1.0.1/24", "--leg", "net-b=fd00::1/64")
    assert result.exit_code == 0, result.output
    assert recorder.sent == [
        (
            "/v1/routers",
            {"name": "r1", "interfaces": [
                {"network": "net-a", "address": "10.1.0.1/24"},
                {"network": "net-b", "address": "fd00::1/64"},
            ]},
        )
    ]  # fmt: skip


def test_a_leg_without_its_network_is_refused(recorder: Recorder) -> None:
    result = _run("create", "r1", "--leg", "10.1.0.1/24")
    assert result.exit_code != 0
    assert "NETWORK=ADDRESS/PREFIX" in result.output
    assert recorder.sent == []
