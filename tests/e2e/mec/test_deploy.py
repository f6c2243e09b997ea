"""Apps deployed as instances (seed §4.4.1.1.2) by a real daemon: ``POST /v1/apps`` with a
``deploy`` section starts an instance with a data and a platform interface; its Mp1 token is a
file inside it, and it calls Mp1 from its own network namespace over the platform network;
security groups keep another tenant's app off both its interfaces; a restart and a kill -9
restore the app and re-adopt its instance; deleting the app deletes the instance and its
template."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from fluidedge.mec import examples
from fluidedge.secgroups.nft import table_name
from tests.fixtures.daemon import TOKEN, DaemonHandle, purge_instances_state
from tests.fixtures.wait import scaled, wait_for

pytestmark = [pytest.mark.root, pytest.mark.slow]

ADMIN = {"Authorization": f"Bearer {TOKEN}"}
AS = "/mec_app_support/v1"
TAG = os.getpid() % 10000
DATA_NET, DATA_BR = f"mecd{TAG}", f"fem3d{TAG}"
PLAT_NET, PLAT_BR = f"mecp{TAG}", f"fem3p{TAG}"
DATA = "198.18.57"
PLAT = f"10.231.{TAG % 200}"
MP1_PORT = 20000 + TAG % 20000


def _nsenter_curl(pid: int, url: str, *headers: str, method: str = "GET") -> tuple[int, str]:
    """``curl`` from an instance's network namespace: (HTTP status or 0, body)."""
    argv = ["nsenter", "-t", str(pid), "-n", "curl", "-s", "-m", "3", "-X", method,
            "-o", "-", "-w", "\n%{http_code}"]  # fmt: skip
    for header in headers:
        argv += ["-H", header]
    done = subprocess.run([*argv, url], capture_output=True, text=True, timeout=30, check=False)
    body, _, code = done.stdout.rpartition("\n")
    return int(code or 0), body


def _page(pid: int, address: str) -> str:
    return _nsenter_curl(pid, f"http://{address}:8080/")[1].strip()


@pytest.fixture
def mec_daemon(daemon_factory: Callable[..., DaemonHandle]) -> Iterator[DaemonHandle]:
    handle = daemon_factory(
        parts={
            "instances": {
                "pool_scale": 0,
                "memory_mb": 2048,
                "networks": {
                    DATA_NET: {"bridge": DATA_BR, "subnet": f"{DATA}.0/24"},
                    PLAT_NET: {"bridge": PLAT_BR, "subnet": f"{PLAT}.0/24"},
                },
            },
            "secgroups": {},
            "mec": {
                "platform_network": PLAT_NET,
                "platform_address": f"{PLAT}.1/24",
                "mp1_port": MP1_PORT,
                "allow_plain_http": True,  # the busybox apps' wget does not verify TLS
            },
        },
        start=False,
    )
    try:
        handle.start(timeout=120)
        yield handle
    finally:
        handle.stop()
        purge_instances_state(Path(handle.config["state_dir"]))
        for net in (DATA_NET, PLAT_NET):
            for family in ("bridge", "inet"):
                subprocess.run(["nft", "delete", "table", family, table_name(net)],
                               capture_output=True, check=False)  # fmt: skip
        for bridge in (DATA_BR, PLAT_BR):
            subprocess.run(["ip", "link", "del", bridge], capture_output=True, check=False)


def _deploy(
    daemon: DaemonHandle, name: str, tenant: str, index: int, **deploy: Any
) -> dict[str, Any]:
    body = {
        "name": name,
        "tenant": tenant,
        "deploy": {
            "template": "httpd",
            "data": {"network": DATA_NET, "address": f"{DATA}.{index}/24"},
            **deploy,
        },
        "trafficRules": [
            {"trafficRuleId": "r1", "filterType": "FLOW", "priority": 1,
             "trafficFilter": [{"dstAddress": ["198.18.0.5/32"]}],
             "action": "FORWARD_DECAPSULATED", "state": "INACTIVE"},
        ],
    }  # fmt: skip
    answer = httpx.post(f"{daemon.url}/v1/apps", headers=ADMIN, json=body, timeout=180)
    assert answer.status_code == 201, answer.text
    created: dict[str, Any] = answer.json()
    return created


def _instance(daemon: DaemonHandle, name: str) -> httpx.Response:
    return httpx.get(f"{daemon.url}/v1/instances/{name}", headers=ADMIN, timeout=30)


def test_deploy_token_isolation_restart_delete(mec_daemon: DaemonHandle) -> None:
    daemon = mec_daemon
    for tenant in ("acme", "beta"):
        made = httpx.post(
            f"{daemon.url}/v1/tenants", headers=ADMIN, json={"name": tenant}, timeout=30
        )
        assert made.status_code == 201, made.text

    a1 = _deploy(daemon, "cache", "acme", 10)
    assert a1["dataAddress"] == f"{DATA}.10"
    assert a1["instance"].startswith("acme-mec-")
    assert a1["mp1Url"] == f"http://{PLAT}.1:{MP1_PORT}"
    inst = _instance(daemon, a1["instance"]).json()
    assert inst["state"] == "running"
    ifaces = {i["name"]: i for i in inst["interfaces"]}
    assert (ifaces["eth0"]["network"], ifaces["eth0"]["addresses"]) == (
        DATA_NET, [f"{DATA}.10/24"],
    )  # fmt: skip
    assert (ifaces["eth1"]["network"], ifaces["eth1"]["addresses"]) == (
        PLAT_NET, [a1["platformAddress"]],
    )  # fmt: skip
    pid = inst["pid"]

    # The token is a file inside the instance (its root, seen through /proc), and the app
    # calls Mp1 with it from its own network namespace, over its platform interface.
    root = Path(f"/proc/{pid}/root/.fe/mec")
    assert (root / "token").read_text() == a1["token"]
    assert a1["appInstanceId"] in (root / "app.json").read_text()
    bearer = f"Authorization: Bearer {a1['token']}"
    rules_url = f"{a1['mp1Url']}{AS}/applications/{a1['appInstanceId']}/traffic_rules"
    status, body = _nsenter_curl(pid, rules_url, bearer)
    assert status == 200, body
    assert '"trafficRuleId":"r1"' in body.replace(" ", "")
    # only Mp1 on the platform network: the operator's API is not there, not even its reads
    assert _nsenter_curl(pid, f"{a1['mp1Url']}/v1/instances")[0] == 404
    assert _nsenter_curl(pid, rules_url)[0] == 401  # no token

    # Isolation: same tenant reaches both interfaces; another tenant's app neither.
    a2 = _deploy(daemon, "peer", "acme", 11)
    b1 = _deploy(daemon, "other", "beta", 12)
    pid_a2 = _instance(daemon, a2["instance"]).json()["pid"]
    pid_b1 = _instance(daemon, b1["instance"]).json()["pid"]
    page = f"fluidedge instance {a1['instance']}"
    a1_platform = a1["platformAddress"].split("/")[0]
    assert _page(pid_a2, f"{DATA}.10") == page
    assert _page(pid_a2, a1_platform) == page
    assert _page(pid_b1, f"{DATA}.10") == ""
    assert _page(pid_b1, a1_platform) == ""
    # a1's token does not act for b1 (403), whichever interface it comes from
    other = f"{a1['mp1Url']}{AS}/applications/{b1['appInstanceId']}/traffic_rules"
    assert _nsenter_curl(pid, other, bearer)[0] == 403

    # Restart and kill -9: the app is restored, its instance re-adopted, Mp1 served again on
    # the platform network (after a kill -9 the bridge still has the address: adopted).
    for crash in (False, True):
        if crash:
            daemon.kill9()
            daemon.start(timeout=120)
        else:
            daemon.restart()
        apps = httpx.get(f"{daemon.url}/v1/apps", headers=ADMIN, timeout=30).json()
        assert {a["appInstanceId"]: a["instance"] for a in apps} == {
            a["appInstanceId"]: a["instance"] for a in (a1, a2, b1)
        }
        assert _instance(daemon, a1["instance"]).json()["pid"] == pid
        assert _nsenter_curl(pid, rules_url, bearer)[0] == 200
        assert _page(pid_b1, f"{DATA}.10") == ""
        assert _page(pid_a2, f"{DATA}.10") == page

    # Deleting the app deletes its instance and its template.
    for app in (a1, a2, b1):
        gone = httpx.delete(
            f"{daemon.url}/v1/apps/{app['appInstanceId']}", headers=ADMIN, timeout=60
        )
        assert gone.status_code == 200, gone.text
        assert _instance(daemon, app["instance"]).status_code == 404
        template = httpx.get(
            f"{daemon.url}/v1/templates/{app['instance']}", headers=ADMIN, timeout=30
        )
        assert template.status_code == 404
    assert not Path(f"/proc/{pid}").exists() or _nsenter_curl(pid, rules_url, bearer)[0] == 0


def test_an_app_that_asks_for_restart_comes_back_with_its_token(mec_daemon: DaemonHandle) -> None:
    """``deploy.restart = "always"``: the app's workload killed, its instance is made again
    (same id and addresses, a new process) and calls Mp1 with the same token."""
    daemon = mec_daemon
    app = _deploy(daemon, "keeper", "default", 20, restart="always")
    first = _instance(daemon, app["instance"]).json()
    assert (first["restart"], first["restarts"]) == ("always", 0)
    os.kill(first["pid"], signal.SIGKILL)

    def again() -> bool:
        now = _instance(daemon, app["instance"]).json()
        return now["state"] == "running" and now["pid"] not in (None, first["pid"])

    wait_for(
        again,
        30,
        lambda: (
            f"the app's instance running again ({_instance(daemon, app['instance']).json()}"
            f"; the log: {daemon.log()[-3000:]})"
        ),
    )
    now = _instance(daemon, app["instance"]).json()
    assert (now["id"], now["restarts"]) == (first["id"], 1)
    assert [i["addresses"] for i in now["interfaces"]] == [
        i["addresses"] for i in first["interfaces"]
    ]
    root = Path(f"/proc/{now['pid']}/root/.fe/mec")
    assert (root / "token").read_text() == app["token"]
    rules = f"{app['mp1Url']}{AS}/applications/{app['appInstanceId']}/traffic_rules"
    status, body = _nsenter_curl(now["pid"], rules, f"Authorization: Bearer {app['token']}")
    assert status == 200, body


def test_mp1_comes_back_after_the_platform_bridge_is_deleted(mec_daemon: DaemonHandle) -> None:
    """``ip link del`` of the platform bridge: the instances part makes it again with its
    ports, but not with the platform address, and no app reached Mp1 (before, for good). The
    MEC part's check adds it again; the log and the metrics say so."""
    daemon = mec_daemon
    made = httpx.post(f"{daemon.url}/v1/tenants", headers=ADMIN, json={"name": "acme"}, timeout=30)
    assert made.status_code == 201, made.text
    app = _deploy(daemon, "cache", "acme", 10)
    pid = _instance(daemon, app["instance"]).json()["pid"]
    bearer = f"Authorization: Bearer {app['token']}"
    rules_url = f"{app['mp1Url']}{AS}/applications/{app['appInstanceId']}/traffic_rules"
    assert _nsenter_curl(pid, rules_url, bearer)[0] == 200

    subprocess.run(["ip", "link", "del", PLAT_BR], check=True)
    # (the app's first SYNs find no platform address until the checks have run: curl's own
    # retries may already see it back, so only the log and the counter prove it was gone)
    wait_for(lambda: _nsenter_curl(pid, rules_url, bearer)[0] == 200, 15, "Mp1 back")
    shown = subprocess.run(
        ["ip", "-br", "addr", "show", "dev", PLAT_BR], capture_output=True, text=True, check=True
    ).stdout
    assert f"{PLAT}.1/24" in shown
    said = f"mec: the platform address {PLAT}.1/24 on {PLAT_BR} was gone"
    assert said in daemon.log()
    # one event, one error line of ours (the bridge's own is the instances part's)
    assert "the check of the platform address failed" not in daemon.log()
    metrics = httpx.get(f"{daemon.url}/metrics", headers=ADMIN, timeout=30).text
    assert "fluidedge_mec_platform_address_restored_total 1" in metrics


def test_the_example_consumer_discovers_and_calls_the_producer(mec_daemon: DaemonHandle) -> None:
    daemon = mec_daemon
    producer = httpx.post(
        f"{daemon.url}/v1/apps", headers=ADMIN, timeout=180,
        json=examples.descriptor("producer", DATA_NET, f"{DATA}.20/24"),
    )  # fmt: skip
    assert producer.status_code == 201, producer.text
    consumer = httpx.post(
        f"{daemon.url}/v1/apps", headers=ADMIN, timeout=180,
        json=examples.descriptor("consumer", DATA_NET, f"{DATA}.21/24"),
    )  # fmt: skip
    assert consumer.status_code == 201, consumer.text
    produced = producer.json()
    # The producer registered its service and confirmed ready by itself, with its own token.
    services = httpx.get(f"{daemon.url}/mec_service_mgmt/v1/services", headers=ADMIN,
                         timeout=30).json()  # fmt: skip
    offered = [(s["serName"], s["transportInfo"]["endpoint"]["addresses"][0]["host"])
               for s in services]  # fmt: skip
    assert offered == [("greeting", produced["platformAddress"].split("/")[0])]
    consumer_ip = consumer.json()["platformAddress"].split("/")[0]

    def page() -> str:
        done = subprocess.run(["curl", "-s", "-m", "3", f"http://{consumer_ip}:8080/"],
                              capture_output=True, text=True, timeout=30, check=False)  # fmt: skip
        return done.stdout.strip()

    got = wait_for(lambda: page().startswith("consumer got:") and page(), scaled(60),
                   lambda: f"the consumer's call to the producer (page: {page()!r})")  # fmt: skip
    assert got == f"consumer got: producer {produced['appInstanceId']}"
    apps = httpx.get(f"{daemon.url}/v1/apps", headers=ADMIN, timeout=30).json()
    states = {a["name"]: a["state"] for a in apps}
    assert states == {"producer": "READY", "consumer": "READY"}
