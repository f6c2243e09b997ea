"""``fluidedge chain template`` and ``pair create --routed`` send the bodies the API takes."""

from __future__ import annotations

from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from fluidedge.chains import cli


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str, Any]]:
    calls: list[tuple[str, str, Any]] = []

    def call(method: str, path: str, body: Any = None) -> Any:
        calls.append((method, path, body))
        return body

    monkeypatch.setattr(cli, "call", call)
    return calls


def _run(*argv: str) -> None:
    app = typer.Typer()
    cli.register(app)
    result = CliRunner().invoke(app, ["chain", *argv])
    assert result.exit_code == 0, result.output


def test_template_firewall(sent: list[tuple[str, str, Any]]) -> None:
    _run("template", "firewall", "fw", "--network", "apps", "--rule", "udp dport 7001 drop")
    assert sent == [
        (
            "POST",
            "/v1/chains/function-templates",
            {"kind": "firewall", "name": "fw", "network": "apps",
             "rules": ["udp dport 7001 drop"], "ingress_routes": [], "egress_routes": []},
        )
    ]  # fmt: skip


def test_routed_pair(sent: list[tuple[str, str, Any]]) -> None:
    _run("pair", "create", "r1", "pin", "pout", "--routed")
    assert sent[0][2] == {"id": "r1", "ingress": "pin", "egress": "pout", "kind": "routed"}


def test_tap_group(sent: list[tuple[str, str, Any]]) -> None:
    _run("group", "create", "mirror", "t1", "--tap")
    _run("group", "set", "mirror", "t1", "t2", "--tap")
    assert [body for _, _, body in sent] == [
        {"id": "mirror", "port_pairs": ["t1"], "tap_enabled": True},
        {"id": "mirror", "port_pairs": ["t1", "t2"], "tap_enabled": True},
    ]
