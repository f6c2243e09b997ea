"""``fluidedge intercept ...``: the calls it makes and what it prints (a fake client)."""

from __future__ import annotations

from typing import Any

import pytest
from typer.testing import CliRunner

from fluidedge.cli import app
from fluidedge.tof import cli as tof_cli

ROW = {
    "name": "case-7",
    "target": {"ue": "198.18.100.1", "enb": None, "sgw": None},
    "destination": {"interface": None, "pcap": "/s/intercepts/c7.pcap"},
    "state": "active",
    "stats": {"copied": 3, "queued": 0, "dropped": 1, "errors": 0, "error": None},
}


class FakeClient:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str, Any]] = []

    def post(self, path: str, body: Any) -> Any:
        self.calls.append(("POST", path, body))
        return ROW

    def get(self, path: str) -> Any:
        self.calls.append(("GET", path, None))
        return [ROW] if path == "/v1/intercepts" else ROW

    def delete(self, path: str) -> Any:
        self.calls.append(("DELETE", path, None))
        return ROW


def test_intercept_commands(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeClient()
    monkeypatch.setattr(tof_cli, "_client", lambda: fake)
    runner = CliRunner()
    out = runner.invoke(
        app, ["intercept", "add", "case-7", "198.18.100.1", "--pcap", "c7.pcap", "--enb", "1.2.3.4"]
    )
    assert out.exit_code == 0, out.output
    assert fake.calls[-1] == (
        "POST",
        "/v1/intercepts",
        {
            "name": "case-7",
            "target": {"ue": "198.18.100.1", "enb": "1.2.3.4", "sgw": None},
            "destination": {"interface": None, "pcap": "c7.pcap"},
        },
    )
    assert "case-7: UE 198.18.100.1" in out.output
    assert "copied 3 dropped 1" in out.output
    listed = runner.invoke(app, ["intercept", "list", "--json"])
    assert listed.exit_code == 0
    assert '"case-7"' in listed.output
    assert runner.invoke(app, ["intercept", "show", "case-7"]).exit_code == 0
    assert fake.calls[-1] == ("GET", "/v1/intercepts/case-7", None)
    stopped = runner.invoke(app, ["intercept", "delete", "case-7"])
    assert stopped.exit_code == 0
    assert fake.calls[-1] == ("DELETE", "/v1/intercepts/case-7", None)
    assert "stopped case-7" in stopped.output
