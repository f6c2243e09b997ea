"""``fluidedge tenant ...`` and ``fluidedge whoami`` against a real daemon (no parts needed):
create with a quota, a token printed once that the daemon then takes for the tenant, list,
quota change, revoke, delete."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from fluidedge.cli import app
from tests.fixtures.daemon import DaemonFactory


def test_tenant_cli_round_trip(daemon_factory: DaemonFactory) -> None:
    daemon = daemon_factory({})
    admin = CliRunner(env={"FLUIDEDGE_URL": daemon.url, "FLUIDEDGE_TOKEN": daemon.token})

    def cli(runner: CliRunner, *args: str) -> str:
        result = runner.invoke(app, list(args))
        assert result.exit_code == 0, (args, result.output, result.exception)
        return result.stdout

    created = json.loads(
        cli(admin, "tenant", "create", "acme", "--instances", "3", "--cap", "CAP_NET_RAW")
    )
    assert created["quota"]["instances"] == 3
    assert created["quota"]["capabilities"] == ["CAP_NET_RAW"]
    assert created["quota"]["pids"] == 2048  # the default quota's, not given
    token = cli(admin, "tenant", "token", "create", "acme", "--description", "ci").strip()
    assert token.startswith("fet_")

    tenant = CliRunner(env={"FLUIDEDGE_URL": daemon.url, "FLUIDEDGE_TOKEN": token})
    me = json.loads(cli(tenant, "whoami"))
    assert (me["principal"], me["tenant"], me["quota"]["instances"]) == ("tenant", "acme", 3)
    refused = tenant.invoke(app, ["tenant", "ls"])
    assert refused.exit_code != 0
    assert "HTTP 403" in str(refused.exception) or "HTTP 403" in refused.output

    listed = json.loads(cli(admin, "tenant", "ls", "--json"))
    assert [(t["name"], t["tokens"]) for t in listed] == [("acme", 1)]
    assert "acme" in cli(admin, "tenant", "ls")
    quota = json.loads(cli(admin, "tenant", "quota", "acme", "--pids", "512"))
    assert (quota["pids"], quota["instances"]) == (512, 3)  # the others kept
    tokens = json.loads(cli(admin, "tenant", "token", "ls", "acme", "--json"))
    assert [t["description"] for t in tokens] == ["ci"]
    assert token not in json.dumps(tokens)
    assert "revoked" in cli(admin, "tenant", "token", "rm", "acme", tokens[0]["id"])
    assert json.loads(cli(tenant, "whoami"))["principal"] == "anonymous"  # token gone
    assert "deleted acme" in cli(admin, "tenant", "rm", "acme")
    assert json.loads(cli(admin, "tenant", "ls", "--json")) == []
