"""Live vFirewall rules: the one-transaction script, and what :class:`LiveFirewalls` runs."""

from __future__ import annotations

import subprocess
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from fluidedge.chains import cli
from fluidedge.chains import firewall as fw
from fluidedge.chains.errors import ChainConflict, ChainUnprocessable, InvalidChain
from fluidedge.chains.functions import firewall as firewall_template
from fluidedge.linux.proc import CommandError


def test_replace_script_is_one_transaction_deleting_and_re_adding_the_table() -> None:
    script = fw.replace_script(["udp dport 7000 counter drop"])
    lines = script.splitlines()
    # Declared first (a delete of a missing table would fail the whole transaction).
    assert lines[:3] == ["table bridge fw", "delete table bridge fw", "table bridge fw {"]
    assert "    udp dport 7000 counter drop" in lines
    assert "type filter hook forward priority 0; policy accept;" in script


@pytest.mark.parametrize(
    ("rule", "error"),
    [
        ("udp dport 7000 drop; flush ruleset", InvalidChain),
        ("a\nb", InvalidChain),
        ("}", ChainUnprocessable),
    ],
)
def test_replace_script_refuses_what_the_template_refuses(
    rule: str, error: type[Exception]
) -> None:
    with pytest.raises(error):
        fw.replace_script([rule])


def test_is_firewall_by_image_and_rules_file() -> None:
    body = firewall_template("fw", "apps", ["udp dport 7001 drop"])
    assert fw.is_firewall(body["image"], body["files"])
    assert not fw.is_firewall("busybox", body["files"])
    assert not fw.is_firewall(body["image"], {})


class _Run:
    def __init__(self, fail: str | None = None) -> None:
        self.calls: list[tuple[list[str], str | None]] = []
        self.fail = fail

    def __call__(self, argv: list[str], *, input_text: str | None = None) -> Any:
        self.calls.append((list(argv), input_text))
        if self.fail is not None and argv[-2:] == ["-f", "-"]:
            raise CommandError(argv, 1, self.fail)
        return subprocess.CompletedProcess(argv, 0, "table bridge fw {}\n", "")


def test_replace_runs_nft_in_the_instance_netns(monkeypatch: pytest.MonkeyPatch) -> None:
    ran = _Run()
    monkeypatch.setattr(fw, "run", ran)
    live = fw.LiveFirewalls(lambda name: {"fw1": 4242}[name])
    got = live.replace("fw1", ["tcp dport 22 drop"])
    assert got == {"instance": "fw1", "ruleset": "table bridge fw {}\n"}
    (apply, script), (show, _) = ran.calls
    assert apply == ["nsenter", "--net=/proc/4242/ns/net", "--", "nft", "-f", "-"]
    assert script == fw.replace_script(["tcp dport 22 drop"])
    assert show[-4:] == ["list", "table", "bridge", "fw"]


def test_a_rule_nft_refuses_is_a_422_naming_nfts_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    """The rule has the allowed form (the schema holds): nft's refusal is the host's answer to
    what the request asks, a 422 and not a 400."""
    monkeypatch.setattr(fw, "run", _Run(fail="Error: syntax error"))
    live = fw.LiveFirewalls(lambda name: 1)
    with pytest.raises(ChainUnprocessable, match="nft refused the rules: Error: syntax error"):
        live.replace("fw1", ["udp dport nope drop"])


def test_a_bad_rule_is_refused_before_the_instance_is_looked_up() -> None:
    def lookup(name: str) -> int:
        raise ChainConflict("not looked up")

    with pytest.raises(InvalidChain):
        fw.LiveFirewalls(lookup).replace("fw1", ["drop; flush ruleset"])


def test_cli_firewall_set_and_show(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, str, Any]] = []

    def call(method: str, path: str, body: Any = None) -> Any:
        calls.append((method, path, body))
        return {"instance": "fw1", "ruleset": "table bridge fw {}\n"}

    monkeypatch.setattr(cli, "call", call)
    app = typer.Typer()
    cli.register(app)
    runner = CliRunner()
    result = runner.invoke(app, ["chain", "firewall", "set", "fw1", "--rule", "udp dport 1 drop"])
    assert result.exit_code == 0, result.output
    assert result.output == "table bridge fw {}\n"
    assert runner.invoke(app, ["chain", "firewall", "show", "fw1"]).exit_code == 0
    assert calls == [
        ("PUT", "/v1/chains/firewalls/fw1/rules", {"rules": ["udp dport 1 drop"]}),
        ("GET", "/v1/chains/firewalls/fw1/rules", None),
    ]
