"""On-demand instances go through the instance manager's admission, for real: the default CPU
cap, and the host's pid budget refusing a creation (counted, the UE's packets dropped) until a
deleted instance gives its share back."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from fluidedge.lab.lab import Lab
from fluidedge.tenants.admission import pid_max
from tests.e2e.superfluid.conftest import TEMPLATE, Env, make_env, service_body
from tests.fixtures.daemon import DaemonFactory
from tests.fixtures.wait import wait_for

pytestmark = [pytest.mark.root, pytest.mark.slow]

SERVICE_IP = "198.18.50.9"


@pytest.fixture
def budget_env(lab: Lab, daemon_factory: DaemonFactory) -> Iterator[tuple[Env, int]]:
    host_max = pid_max()
    fraction = max(0.25, 1 - 40000 / host_max)  # a budget of about 40,000 pids
    budget = int(host_max * (1 - fraction))
    admission = {
        "max_pids_per_instance": 65536,
        "pids_reserved_fraction": fraction,
        "default_cpu_limit": 0.5,
    }
    with make_env(lab, daemon_factory, "userspace", admission=admission) as env:
        big = {**TEMPLATE, "name": "big", "resources": {"pids": budget // 2 + 1}}
        big["pool"] = {"size": 2, "refill_delay_ms": 0}
        env.client.post("/v1/templates", big)
        yield env, budget


def test_ondemand_instances_are_admitted_like_the_apis(budget_env: tuple[Env, int]) -> None:
    env, _ = budget_env
    # T1 long: ue1's instance holds its share until the test shortens T1 and T2 (below)
    body = service_body("adm", SERVICE_IP, env.lab, "per-ue", idlePause=3600, idleDelete=1.0)
    body["onDemand"]["template"] = "big"
    env.client.post("/service", body)
    first = env.http("ue1", SERVICE_IP)
    assert first.startswith("edge instance adm-"), first
    name = first.split()[-1]
    assert env.view(name)["resources"]["cpu_limit"] == 0.5  # the default cap, as the API's
    assert [i["ue"] for i in env.instances("adm")] == ["198.18.100.1"]
    # a second instance would take the host's pid budget past its bound: refused, counted
    refused = env.http("ue2", SERVICE_IP, timeout=3.0)
    assert refused.startswith("<curl exit"), refused
    assert env.events("adm").get("refused_admission", 0) >= 1
    assert env.client.get("/stats")["onDemand"]["drops"].get("refused_admission", 0) >= 1
    assert "198.18.100.2" not in [i["ue"] for i in env.instances("adm")]
    # once ue1's instance is paused and deleted (timers apply live), its share is free again
    body["onDemand"].update(idlePause=0.2, idleDelete=0.2)
    env.client.put("/service/adm", body)
    wait_for(lambda: not env.instances("adm"), 30, "ue1's instance deleted")
    again = env.http("ue2", SERVICE_IP, timeout=10.0)
    assert again.startswith("edge instance adm-"), again
