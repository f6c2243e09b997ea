"""The TOF's programs and apps TUN taken away from outside come back inside a running daemon.

``tc qdisc del dev <eNB side> clsact`` under a running daemon: within ``program_check_interval``
(1 s by default) the part's check puts the program back, ``/stats`` counts it, the log says so
at error level, and the UEs reach the PDN through the TOF as before.
"""

from __future__ import annotations

import pytest

from tests.e2e.tof.conftest import SERVICE_IP, TofEnvFactory
from tests.fixtures.wait import wait_until

pytestmark = [pytest.mark.root, pytest.mark.slow]


def test_a_program_taken_off_comes_back_within_the_check_interval(
    tof_env: TofEnvFactory,
) -> None:
    env = tof_env()
    lab = env.lab
    pdn = str(lab.pdn_address)
    assert env.ping("ue1", pdn)
    assert env.stats()["io"].get("programs_reattached", 0) == 0
    code, out = env.run("host", "tc", "qdisc", "del", "dev", lab.enb_side_if, "clsact")
    assert code == 0, out

    assert wait_until(lambda: env.stats()["io"].get("programs_reattached", 0) >= 1, 15)
    assert env.ping("ue1", pdn)
    assert f"on {lab.enb_side_if} ingress taken off from outside; re-attached" in env.daemon.log()


def test_the_apps_tun_deleted_comes_back_within_the_check_interval(
    tof_env: TofEnvFactory,
) -> None:
    """``ip link del tofapps`` under a running daemon: the UEs keep reaching the core (S1 fails
    open meanwhile), the offloaded service answers again once the check re-created the TUN."""
    env = tof_env()
    lab = env.lab
    body = {"name": "web", "serviceIP": SERVICE_IP, "applicationIP": "198.19.0.10"}
    assert env.client().post("/service", body) == body
    assert "edge-app app1" in env.http("ue1", SERVICE_IP)
    code, out = env.run("host", "ip", "link", "del", "tofapps")
    assert code == 0, out

    assert wait_until(lambda: env.stats()["io"].get("apps_tun_recreated", 0) >= 1, 15)
    assert env.stats()["io"]["apps_tun_lost"] == 1
    assert wait_until(lambda: "edge-app app1" in env.http("ue1", SERVICE_IP), 15)
    assert env.ping("ue1", str(lab.pdn_address))
    assert "the apps TUN tofapps re-created; offload resumed" in env.daemon.log()
