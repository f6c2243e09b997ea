"""The instance manager CLI against a real daemon: run, ls, show, pause/resume, pool, purge;
image import, ls, rm."""

from __future__ import annotations

import json
import logging
import os
import signal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fluidedge.cli import app
from fluidedge.instances import cli as instances_cli
from fluidedge.instances import runc
from tests.e2e.instances.conftest import BRIDGE
from tests.fixtures.daemon import DaemonHandle
from tests.fixtures.images import APP_PORT, AppImage

pytestmark = pytest.mark.root


def test_cli_round_trip_and_offline_purge(
    inst_daemon: DaemonHandle,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    runner = CliRunner(env={"FLUIDEDGE_URL": inst_daemon.url, "FLUIDEDGE_TOKEN": inst_daemon.token})

    def cli(*args: str) -> str:
        result = runner.invoke(app, list(args))
        assert result.exit_code == 0, (args, result.output, result.exception)
        return result.output

    template = tmp_path / "web.json"
    template.write_text(
        json.dumps(
            {
                "name": "cliweb",
                "command": [
                    "/bin/busybox",
                    "sh",
                    "-c",
                    "echo started $FLUIDEDGE_INSTANCE; sleep 999",
                ],
                "interfaces": [{"name": "eth0", "network": "apps"}],
                "pool": {"size": 1},
            }
        )
    )
    assert "created" in cli("template", "create", str(template))
    assert "cliweb" in cli("template", "ls")
    out = cli("instance", "run", "cliweb", "c1", "--addr", "eth0=198.18.30.9/24", "--label", "a=b")
    assert "timing (ms): accept=" in out
    listed = json.loads(cli("instance", "ls", "--json"))
    assert [(i["name"], i["interfaces"][0]["addresses"]) for i in listed] == [
        ("c1", ["198.18.30.9/24"])
    ]
    assert "paused in" in cli("instance", "pause", "c1")
    assert "running in" in cli("instance", "resume", "c1")
    assert "cliweb" in cli("pool")
    assert BRIDGE in cli("network", "ls")
    shown = json.loads(cli("instance", "show", "c1"))
    assert shown["labels"] == {"a": "b"}
    bad = runner.invoke(app, ["instance", "run", "nope", "c2"])
    assert bad.exit_code != 0
    # ls: one page with --limit (the next page's marker on stderr), or every page followed
    cli("instance", "run", "cliweb", "c2", "--addr", "eth0=198.18.30.10/24")
    one = runner.invoke(app, ["instance", "ls", "--json", "--limit", "1"])
    assert one.exit_code == 0, one.output
    assert [i["name"] for i in json.loads(one.stdout)] == ["c1"]
    assert one.stderr.strip() == "more: --after c1"
    rest = runner.invoke(app, ["instance", "ls", "--json", "--after", "c1"])
    assert [i["name"] for i in json.loads(rest.stdout)] == ["c2"]
    monkeypatch.setattr(instances_cli, "LS_PAGE", 1)  # two pages of one, followed
    assert [i["name"] for i in json.loads(cli("instance", "ls", "--json"))] == ["c1", "c2"]
    assert "more:" not in runner.invoke(app, ["instance", "ls", "--limit", "2"]).stderr
    cli("instance", "rm", "c2")
    # c3 comes back on its own (restart = "always"): its workload dies while no daemon runs
    cli("instance", "run", "cliweb", "c3", "--restart", "always")
    c3 = json.loads(cli("instance", "show", "c3"))
    # Leave c1 running, stop the daemon, purge offline: nothing of ours survives, and nothing
    # is made on the way (c3 is not made again only to be destroyed, no pool is filled).
    inst_daemon.stop()
    os.kill(c3["pid"], signal.SIGKILL)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="fluidedge.instances"):
        purged = cli("pool", "purge", "--config", str(inst_daemon.config_path))
    assert "purged" in purged
    made = [r.getMessage() for r in caplog.records if "made again" in r.getMessage()]
    assert made == []
    root = runc.Runc(Path(inst_daemon.config["state_dir"]) / "instances" / "runc")
    assert root.list() == []
    assert runc.leftover_cgroups(shown["id"]) == []
    assert runc.leftover_cgroups(c3["id"]) == []


def test_cli_images(inst_daemon: DaemonHandle, app_image: AppImage) -> None:
    runner = CliRunner(env={"FLUIDEDGE_URL": inst_daemon.url, "FLUIDEDGE_TOKEN": inst_daemon.token})

    def cli(*args: str) -> str:
        result = runner.invoke(app, list(args))
        assert result.exit_code == 0, (args, result.output, result.exception)
        return result.output

    out = cli(
        "image", "import", str(app_image.docker_archive), "--name", "cliapp",
        "--format", "docker-archive",
    )  # fmt: skip
    assert "image cliapp imported (rootfs sha256:" in out
    listed = {i["name"]: i for i in json.loads(cli("image", "ls", "--json"))}
    assert set(listed) >= {"busybox", "cliapp"}
    assert listed["cliapp"]["config"]["ports"] == [APP_PORT]
    assert "cliapp" in cli("image", "ls")
    twice = runner.invoke(
        app, ["image", "import", str(app_image.layout), "--name", "cliapp", "--ref", "app"]
    )
    assert twice.exit_code != 0
    assert "409" in str(twice.exception)  # the CLI entry point prints it; here it is raised
    assert "image cliapp removed" in cli("image", "rm", "cliapp")
    assert "cliapp" not in cli("image", "ls", "--json")
