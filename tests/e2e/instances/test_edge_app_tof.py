"""An edge app instance created through the API serves a TOF service, end to end in the lab.

Lab in "tof" mode + one daemon running both parts: the TOF on the lab's host namespace and the
instance manager with a network on the lab's apps bridge (``apps0`` in ``<prefix>-host``). A UE
behind an eNodeB fetches the service IP through its GTP-U tunnel; the TOF offloads it to the
instance, whose page names it.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable

import pytest

from fluidedge.lab.lab import Lab
from tests.e2e.instances.conftest import purge_daemon
from tests.e2e.tof.conftest import tof_section
from tests.fixtures.daemon import DaemonHandle
from tests.fixtures.wait import wait_until

pytestmark = [pytest.mark.root, pytest.mark.slow]

_COUNTER = itertools.count()
SERVICE_IP = "198.18.50.1"
APP_ADDRESS = "198.19.0.20"


def test_instance_serves_a_tof_service(daemon_factory: Callable[..., DaemonHandle]) -> None:
    prefix = f"ins{os.getpid() % 100000}{next(_COUNTER)}"
    lab = Lab.up(prefix=prefix, mode="tof")
    daemon: DaemonHandle | None = None
    try:
        daemon = daemon_factory(
            parts={
                "instances": {
                    "pool_scale": 0.5,
                    "networks": {
                        "apps": {
                            "bridge": lab.apps_bridge,
                            "netns": lab.host_ns,
                            "subnet": lab.apps_subnet,
                        }
                    },
                },
                "tof": tof_section(lab),
            }
        )
        client = daemon.client()
        try:
            client.post(
                "/v1/templates",
                {
                    "name": "edge",
                    "command": ["/bin/busybox", "httpd", "-f", "-p", "80", "-h", "/.fe/www"],
                    "files": {"www/index.html": "edge instance {name}\n"},
                    "capabilities": ["CAP_NET_BIND_SERVICE"],
                    "interfaces": [{"name": "eth0", "network": "apps"}],
                    "readiness": {"kind": "tcp", "port": 80},
                    "pool": {"size": 2},
                },
            )
            view = client.post(
                "/v1/instances",
                {
                    "name": "edge1",
                    "template": "edge",
                    "interfaces": {
                        "eth0": {
                            "addresses": [f"{APP_ADDRESS}/24"],
                            "gateway": str(lab.apps_gateway),
                        }
                    },
                },
            )
            assert view["state"] == "running"
            body = {"name": "edge", "serviceIP": SERVICE_IP, "applicationIP": APP_ADDRESS}
            assert client.post("/service", body) == body
            answers = [""]

            def answered() -> bool:
                result = lab.run("ue1", ["curl", "-s", "-m", "3", f"http://{SERVICE_IP}/"])
                answers[0] = result.stdout
                return "edge instance edge1" in answers[0]

            wait_until(answered, 20, period=0.5)  # the diagnostics below say why if not
            got = answers[0]
            if got != "edge instance edge1\n":
                import subprocess

                def sh(*argv: str) -> str:
                    r = subprocess.run(list(argv), capture_output=True, text=True, check=False)
                    return r.stdout + r.stderr

                pid = str(view["pid"])
                print("DIAG inst addr", sh("nsenter", "-t", pid, "-n", "ip", "addr"))
                print("DIAG inst route", sh("nsenter", "-t", pid, "-n", "ip", "route"))
                print("DIAG host links", sh("ip", "-n", lab.host_ns, "-br", "link"))
                print("DIAG host addr", sh("ip", "-n", lab.host_ns, "-br", "addr"))
                print(
                    "DIAG ping",
                    sh("ip", "netns", "exec", lab.host_ns, "ping", "-c1", "-W1", APP_ADDRESS),
                )
                print(
                    "DIAG curl",
                    sh(
                        "ip",
                        "netns",
                        "exec",
                        lab.host_ns,
                        "curl",
                        "-s",
                        "-m2",
                        f"http://{APP_ADDRESS}/",
                    ),
                )
                print("DIAG app1", lab.run("ue1", ["curl", "-s", "-m", "3", "http://198.18.50.1/"]))
                print("DIAG services", client.get("/service"))
                print("DIAG log", daemon.log()[-3000:])
            assert got == "edge instance edge1\n"
            # Another UE on the other eNB gets the same instance; the instance can be paused
            # (service stops answering) and resumed (answers again).
            assert (
                "edge instance edge1"
                in lab.run("ue3", ["curl", "-s", "-m", "5", f"http://{SERVICE_IP}/"]).stdout
            )
            client.post("/v1/instances/edge1/pause")
            paused = lab.run("ue1", ["curl", "-s", "-m", "1", f"http://{SERVICE_IP}/"])
            assert paused.returncode != 0
            client.post("/v1/instances/edge1/resume")
            assert (
                "edge instance edge1"
                in lab.run("ue1", ["curl", "-s", "-m", "5", f"http://{SERVICE_IP}/"]).stdout
            )
            client.delete("/service/edge")
            client.delete("/v1/instances/edge1")
        finally:
            client.close()
    finally:
        if daemon is not None:
            daemon.stop()
            purge_daemon(daemon)
        lab.down()
