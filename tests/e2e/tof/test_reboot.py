"""A reboot under the TOF: the namespace its S1 interfaces live in is gone when the daemon
starts, and the operator's set-up makes it again later.

That start used to be refused (the data plane could not open its ports), so every other part
of the node stayed down with the TOF. Now the daemon serves, the TOF *waits* (``/healthz``
degraded, ``/stats`` says why, services are declared and stored as usual) and starts once its
devices are back, with every service, old and new, offloading real UE traffic.
"""

from __future__ import annotations

import httpx
import pytest

from fluidedge.lab.lab import Lab
from fluidedge.tof.launch import s1_pairs, wait_s1_ready
from tests.e2e.tof.conftest import TofEnvFactory, lab_config
from tests.fixtures.wait import wait_until

pytestmark = [pytest.mark.root, pytest.mark.slow]


def test_the_tof_waits_for_its_namespace_and_the_node_serves_meanwhile(
    tof_env: TofEnvFactory,
) -> None:
    env = tof_env()
    web = {"name": "web", "serviceIP": "198.18.50.1", "applicationIP": "198.19.0.10"}
    assert env.client().post("/service", web) == web
    assert "edge-app app1" in env.http("ue1", "198.18.50.1")
    prefix, namespace = env.lab.prefix, env.lab.host_ns

    env.daemon.kill9()
    env.lab.down()  # the reboot: the namespaces and every link in them are gone
    env.daemon.start()  # used to exit: "tof ... failed to start"

    health = httpx.get(f"{env.daemon.url}/healthz").json()
    assert health["status"] == "degraded"
    assert health["waiting"] == {"tof": f"network namespace {namespace!r} does not exist"}
    stats = env.stats()
    assert stats["dataplane"] == f"waiting: network namespace {namespace!r} does not exist"
    assert env.tunnels() == []
    # Declared state stays editable: stored now, in the data plane once it runs.
    web2 = {"name": "web2", "serviceIP": "198.18.50.2", "applicationIP": "198.19.0.11"}
    assert env.client().post("/service", web2) == web2
    assert [s["name"] for s in env.client().get("/service")] == ["web", "web2"]
    assert sorted(env.stats()["services"]) == ["web", "web2"]

    lab = Lab.up(lab_config(), prefix=prefix, mode="tof")  # the operator's set-up, later
    try:
        env.lab = lab
        assert wait_until(lambda: env.stats()["dataplane"] == "running", timeout=30), env.stats()
        assert wait_s1_ready(env.client(), s1_pairs(lab)), "no echo crossed the TOF"
        assert "edge-app app1" in env.http("ue1", "198.18.50.1")
        assert "edge-app app2" in env.http("ue2", "198.18.50.2")
        health = httpx.get(f"{env.daemon.url}/healthz").json()
        assert (health["status"], health["waiting"]) == ("ok", {})
        assert "event=tof_waiting" in env.daemon.log()
        assert "event=tof_started" in env.daemon.log()
    finally:
        lab.down()
