"""Admission policy of tenants' quotas and the host's limits (pure: no daemon, no kernel)."""

from __future__ import annotations

import re
import threading

import pytest

from fluidedge.instances.models import Resources
from fluidedge.tenants.admission import (
    Admission,
    Demand,
    Ledger,
    TenantDemand,
    Totals,
    check,
    cpu_cap,
    demand_of,
    pids_budget,
    usage_of,
)
from fluidedge.tenants.config import AdmissionConfig
from fluidedge.tenants.errors import Forbidden, LimitExceeded, QuotaExceeded
from fluidedge.tenants.models import Quota, Usage

CONFIG = AdmissionConfig()
PID_MAX = 32768


def test_pids_budget_keeps_the_hosts_share() -> None:
    assert pids_budget(PID_MAX, CONFIG) == 24576
    assert pids_budget(PID_MAX, AdmissionConfig(pids_overcommit=2.0)) == 49152
    assert pids_budget(1000, AdmissionConfig(pids_reserved_fraction=0.5)) == 500


def test_one_instance_may_not_ask_more_pids_than_the_bound() -> None:
    with pytest.raises(LimitExceeded, match=r"resources.pids: 65536 is above the per-instance"):
        check(Demand(1, 32, 65536), config=CONFIG, host_pid_max=PID_MAX, host_pids=0, tenant=None)
    # the bound is also the host's budget when that is lower than max_pids_per_instance
    small = AdmissionConfig(max_pids_per_instance=60000)
    with pytest.raises(LimitExceeded, match="limit 24576"):
        check(Demand(1, 32, 30000), config=small, host_pid_max=PID_MAX, host_pids=0, tenant=None)


def test_the_pids_of_all_instances_fit_the_hosts_budget() -> None:
    config = AdmissionConfig(max_pids_per_instance=16384)
    check(Demand(1, 32, 16384), config=config, host_pid_max=PID_MAX, host_pids=0, tenant=None)
    with pytest.raises(QuotaExceeded, match=r"host pids: .* 16384 in all; 16384 more"):
        check(
            Demand(1, 32, 16384), config=config, host_pid_max=PID_MAX, host_pids=16384, tenant=None
        )


def test_cpu_cap_defaults_and_never_caps_below_the_request() -> None:
    assert cpu_cap(Resources(cpus=0.1), 1.0, tenant=False) == 1.0
    assert cpu_cap(Resources(cpus=3.0), 1.0, tenant=False) == 3.0
    assert cpu_cap(Resources(cpus=0.1, cpu_limit=0.5), 1.0, tenant=False) == 0.5
    assert cpu_cap(Resources(cpus=0.1), None, tenant=False) is None
    assert cpu_cap(Resources(cpus=0.2), None, tenant=True) == 0.2


def _tenant(usage: Usage, **quota: object) -> TenantDemand:
    return TenantDemand("acme", Quota.model_validate(quota), usage, [])


@pytest.mark.parametrize(
    ("quota", "usage", "demand", "reason"),
    [
        ({"instances": 2}, Usage(instances=2), Demand(0.1, 8, 8), "instances 2 used + 1 asked > 2"),
        ({"cpus": 1.0}, Usage(cpus=0.5), Demand(0.75, 8, 8), "cpus 0.5 used + 0.75 asked > 1"),
        ({"memory_mb": 64}, Usage(memory_mb=40), Demand(1, 32, 8), "memory_mb 40 used + 32"),
        ({"pids": 100}, Usage(pids=96), Demand(1, 8, 8), "pids 96 used + 8 asked > 100"),
    ],
)
def test_each_quota_refuses_with_its_reason(
    quota: dict[str, object], usage: Usage, demand: Demand, reason: str
) -> None:
    with pytest.raises(QuotaExceeded, match=re.escape(f"quota of tenant acme: {reason}")):
        check(
            demand,
            config=CONFIG,
            host_pid_max=PID_MAX,
            host_pids=0,
            tenant=_tenant(usage, **quota),
        )


def test_exactly_at_the_quota_is_admitted() -> None:
    tenant = _tenant(Usage(instances=1, cpus=0.5, memory_mb=32, pids=8), instances=2, cpus=1.0)
    check(Demand(0.5, 32, 8), config=CONFIG, host_pid_max=PID_MAX, host_pids=8, tenant=tenant)


def test_capabilities_outside_the_quota_are_forbidden() -> None:
    tenant = TenantDemand("acme", Quota(capabilities=["CAP_NET_BIND_SERVICE"]), Usage(), [])
    check(Demand(1, 8, 8), config=CONFIG, host_pid_max=PID_MAX, host_pids=0, tenant=tenant)
    asking = TenantDemand("acme", tenant.quota, Usage(), ["CAP_NET_ADMIN", "CAP_NET_BIND_SERVICE"])
    with pytest.raises(Forbidden, match="capabilities CAP_NET_ADMIN are outside tenant acme's"):
        check(Demand(1, 8, 8), config=CONFIG, host_pid_max=PID_MAX, host_pids=0, tenant=asking)


def test_usage_sums_demands() -> None:
    demands = [demand_of(Resources(cpus=0.1, cpu_limit=0.5, memory_mb=16, pids=8))] * 3
    assert usage_of(demands) == Usage(instances=3, cpus=1.5, memory_mb=48, pids=24)


def ledger_copy(ledger: Ledger) -> dict[str | None, Totals]:
    return {owner: Totals(**vars(t)) for owner, t in ledger.totals.items()}


def test_ledger_keeps_totals_per_owner() -> None:
    ledger = Ledger()
    ledger.add("a", "acme", Demand(0.5, 16, 8))
    ledger.add("b", "acme", Demand(1.0, 32, 8))
    ledger.add("c", None, Demand(1.0, 8, 100))
    ledger.add("b", "acme", Demand(1.0, 32, 8))  # added twice: counted once
    assert ledger.totals["acme"].usage() == Usage(instances=2, cpus=1.5, memory_mb=48, pids=16)
    ledger.remove("a")
    ledger.remove("gone")
    assert ledger.totals["acme"].usage() == Usage(instances=1, cpus=1.0, memory_mb=32, pids=8)
    ledger.reset([("x", "beta", Demand(0.1, 4, 2))])
    assert set(ledger.totals) == {"beta"}


def test_admission_holds_pending_requests_against_the_quota() -> None:
    ledger = Ledger()
    ledger.add("acme-a", "acme", Demand(0.5, 8, 8))
    admission = Admission(CONFIG, lambda: ledger_copy(ledger), lambda: PID_MAX)
    quota = Quota(instances=2)
    with admission.admit("acme-b", Demand(0.5, 8, 8), ("acme", quota, [])):
        # a second request while the first is still being created: the quota is full
        with (
            pytest.raises(QuotaExceeded, match="instances 2 used"),
            admission.admit("acme-c", Demand(0.5, 8, 8), ("acme", quota, [])),
        ):
            pass
        assert admission.usage("acme").instances == 2
        # another tenant and the admin are not counted against acme
        with admission.admit("other-a", Demand(0.5, 8, 8), ("other", quota, [])):
            assert admission.usage("other").instances == 1
    # released on the way out, created or not
    assert admission.usage("acme").instances == 1
    assert admission.usage().pids == 8


def test_concurrent_requests_never_exceed_the_quota() -> None:
    admission = Admission(CONFIG, dict, lambda: PID_MAX)
    quota = Quota(instances=3)
    admitted: list[str] = []
    refused: list[str] = []
    barrier = threading.Barrier(8)
    release = threading.Event()
    decided = threading.Condition()

    def request(i: int) -> None:
        barrier.wait()
        try:
            with admission.admit(f"acme-{i}", Demand(0.1, 8, 8), ("acme", quota, [])):
                with decided:
                    admitted.append(f"acme-{i}")
                    decided.notify_all()
                release.wait(30)  # hold the quota until every request was decided
        except QuotaExceeded:
            with decided:
                refused.append(f"acme-{i}")
                decided.notify_all()

    threads = [threading.Thread(target=request, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    with decided:
        decided.wait_for(lambda: len(admitted) + len(refused) == 8, timeout=30)
    release.set()
    for thread in threads:
        thread.join()
    assert (len(admitted), len(refused)) == (3, 5)
    assert admission.usage("acme").instances == 0


def test_a_quota_counts_what_the_tenant_holds_on_the_sites_other_nodes() -> None:
    ledger = Ledger()
    ledger.add("acme-a", "acme", Demand(0.5, 8, 8))
    admission = Admission(CONFIG, lambda: ledger_copy(ledger), lambda: PID_MAX)
    elsewhere = {"acme": Usage(instances=1, cpus=1.0, memory_mb=100, pids=10)}
    admission.elsewhere = lambda tenant: elsewhere.get(tenant, Usage())
    quota = Quota(instances=2, memory_mb=200)
    # one here and one on another node: the third is refused, by the site-wide count
    with (
        pytest.raises(QuotaExceeded, match="instances 2 used"),
        admission.admit("acme-b", Demand(0.1, 8, 8), ("acme", quota, [])),
    ):
        pass
    assert admission.usage("acme") == Usage(instances=2, cpus=1.5, memory_mb=108, pids=18)
    # what this node reports of itself leaves the other nodes out (no double count)
    assert admission.local_usages()["acme"] == Usage(instances=1, cpus=0.5, memory_mb=8, pids=8)
    # another tenant's usage elsewhere does not count against acme
    elsewhere = {"beta": Usage(instances=5)}
    with admission.admit("acme-b", Demand(0.1, 8, 8), ("acme", quota, [])):
        pass
