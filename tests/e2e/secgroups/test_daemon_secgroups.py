"""Security groups inside a real daemon: REST, instances naming groups per interface, groups
changed after create, 400s and 422s with reasons, restart and kill -9 with the rules restored
and the installed tables reconciled (one pair per network, none left when the ports are gone)."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from typer.testing import CliRunner

from fluidedge.cli import app
from fluidedge.core.client import ClientError
from fluidedge.secgroups.nft import table_name
from tests.e2e.secgroups.scenario import get, purge, run, web_and_clients
from tests.fixtures.daemon import DaemonHandle
from tests.fixtures.wait import wait_until

pytestmark = pytest.mark.root

NET = f"sg{os.getpid() % 100000}"
BRIDGE = f"fesg{os.getpid() % 100000}"[:15]
SUBNET = "198.18.41"


@pytest.fixture
def sg_daemon(
    daemon_factory: Callable[..., DaemonHandle], request: pytest.FixtureRequest
) -> Iterator[DaemonHandle]:
    secgroups = getattr(request, "param", {})  # the [secgroups] table (indirect parameter)
    handle = daemon_factory(
        parts={
            "instances": {
                "pool_scale": 1,
                "memory_mb": 2048,
                "networks": {NET: {"bridge": BRIDGE, "subnet": f"{SUBNET}.0/24"}},
            },
            "secgroups": secgroups,
        }
    )
    try:
        yield handle
    finally:
        handle.stop()
        purge(handle)
        _nft_tables()  # and the tables, if a failure left any
        for family in ("bridge", "inet"):
            subprocess.run(
                ["nft", "delete", "table", family, table_name(NET)],
                capture_output=True,
                check=False,
            )


def _nft_tables() -> list[str]:
    out = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True, check=True)
    return [line for line in out.stdout.splitlines() if line.endswith(" " + table_name(NET))]


def _reason(call: Callable[[], Any]) -> tuple[int, str]:
    with pytest.raises(ClientError) as info:
        call()
    return info.value.status, str(info.value)


def test_groups_through_the_api_restart_and_kill9(sg_daemon: DaemonHandle) -> None:
    client = sg_daemon.client()
    scene = web_and_clients(client, NET, SUBNET, "sg")
    app_ip, c1, c2 = scene.app_ip, scene.c1, scene.c2
    ports = {p["id"]: p for p in client.get("/v1/security-groups/ports")}
    assert ports["c2.eth0"]["groups"] == ["default"]
    assert ports["app.eth0"]["groups"] == ["web"]
    assert ports["c1.eth0"]["fixed_ips"] == [f"{SUBNET}.11"]

    # 400s (the schema refuses) and 422s (schema-valid, contradicting) with reasons, nothing changed
    status, why = _reason(
        lambda: client.post(
            "/v1/security-groups/web/rules",
            {"direction": "ingress", "protocol": "icmp", "port_range_min": 1},
        )
    )
    assert status == 422  # schema-valid, fields that contradict each other
    assert "port_range_min" in why
    status, why = _reason(
        lambda: client.post(
            "/v1/security-groups/web/rules", {"direction": "ingress", "remote_group": "nope"}
        )
    )
    assert (status, "remote_group" in why) == (422, True)  # names no stored group
    status, why = _reason(lambda: client.post("/v1/security-groups", {"id": "Bad Name"}))
    assert status == 400
    status, why = _reason(lambda: client.delete("/v1/security-groups/clients"))
    assert status == 409
    assert "c1.eth0" in why
    status, why = _reason(lambda: run(client, SUBNET, "c3", "sgcli", 13, security_groups=["nope"]))
    assert (status, "nope" in why) == (422, True)
    assert len(client.get("/v1/security-groups/web")["rules"]) == 1

    # c2's groups changed after create
    client.put("/v1/instances/c2/interfaces/eth0/security-groups", {"security_groups": ["clients"]})
    assert get(c2["pid"], app_ip) == "edge app app"

    for crash in (False, True):
        client.close()
        if crash:
            sg_daemon.kill9()
            sg_daemon.start()
        else:
            sg_daemon.restart()
        client = sg_daemon.client()
        assert [g["id"] for g in client.get("/v1/security-groups")] == [
            "clients",
            "default",
            "web",
        ]
        assert sorted(_nft_tables()) == [
            f"table bridge {table_name(NET)}",
            f"table inet {table_name(NET)}",
        ]
        assert get(c1["pid"], app_ip) == "edge app app"
        assert get(c2["pid"], app_ip) == "edge app app"

    # the CLI: a rule removed takes effect, added back too; ports and groups listed
    runner = CliRunner(env={"FLUIDEDGE_URL": sg_daemon.url, "FLUIDEDGE_TOKEN": sg_daemon.token})

    def cli(*args: str) -> str:
        result = runner.invoke(app, ["secgroup", *args])
        assert result.exit_code == 0, (args, result.output, result.exception)
        return result.output

    assert "deleted rule http" in cli("rule", "rm", "web", "http")
    assert get(c1["pid"], app_ip) == ""
    out = cli("rule", "add", "web", "--protocol", "tcp", "--port", "8080-8081",
              "--remote-group", "clients", "--id", "http2")  # fmt: skip
    assert "added rule http2" in out
    assert get(c1["pid"], app_ip) == "edge app app"
    shown = json.loads(cli("show", "web", "--json"))
    assert [(r["id"], r["port_range_min"], r["port_range_max"]) for r in shown["rules"]] == [
        ("http2", 8080, 8081)
    ]
    ports = json.loads(cli("ports", "--json"))
    assert sorted(p["instance"] for p in ports) == ["app", "c1", "c2"]
    assert "c2/eth0: default" in cli("port-set", "c2", "eth0", "default")
    assert get(c2["pid"], app_ip) == ""
    assert "clients" in cli("ls")

    # the port of a deleted instance goes
    for name in ("app", "c1", "c2"):
        client.delete(f"/v1/instances/{name}")
    wait_until(lambda: not client.get("/v1/security-groups/ports"), 10)
    assert client.get("/v1/security-groups/ports") == []
    client.close()
    # the check of the installed rules ran throughout (restarts, a kill -9, re-renders) and
    # never took one of our own changes for a loss
    assert "rules re-installed" not in sg_daemon.log()


@pytest.mark.parametrize(
    ("sg_daemon", "deadline"),
    [({}, 15.0), ({"check_interval_s": 3600}, 3.0)],
    ids=["defaults", "check-an-hour-away"],
    indirect=["sg_daemon"],
)
def test_tables_removed_from_outside_come_back(sg_daemon: DaemonHandle, deadline: float) -> None:
    """Someone deletes the network's tables under the running daemon (as an `nft flush
    ruleset` would): every port is unfiltered until the daemon installs them again and says so
    in its log. The kernel's announcement of the deletion wakes the check at once
    (fluidedge.secgroups.nftwatch): with the periodic check an hour away, they are back within
    moments all the same."""
    client = sg_daemon.client()
    try:
        scene = web_and_clients(client, NET, SUBNET, "sg")
    finally:
        client.close()
    assert len(_nft_tables()) == 2
    time.sleep(0.5)  # the watcher of the network's namespace has subscribed
    for family in ("bridge", "inet"):
        subprocess.run(["nft", "delete", "table", family, table_name(NET)], check=True)
    assert wait_until(lambda: len(_nft_tables()) == 2, deadline), "the tables never came back"
    assert get(scene.c2["pid"], scene.app_ip) == ""
    assert get(scene.c1["pid"], scene.app_ip) == "edge app app"
    assert wait_until(lambda: "rules re-installed" in sg_daemon.log(), 5), sg_daemon.log()[-2000:]
    assert f"network {NET}: table" in sg_daemon.log()
