"""50 UEs start at once against a per-ue service with a pool of 8 (issue 17): every UE is
answered by its own instance, creation stays within the node-wide rate bound, and packets
above the queue bound are refused and counted (TCP retransmits them; they are not lost
silently)."""

from __future__ import annotations

import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from fluidedge.lab.config import default_text, loads
from fluidedge.lab.lab import Lab
from fluidedge.tof.launch import s1_pairs, wait_s1_ready
from tests.e2e.instances.conftest import purge_daemon
from tests.e2e.superfluid.conftest import TEMPLATE, Env, service_body
from tests.fixtures.daemon import DaemonFactory
from tests.fixtures.prom import sample
from tests.fixtures.wait import scaled, wait_for

pytestmark = [pytest.mark.root, pytest.mark.slow]

UES = 50
RATE = 10.0  # [tof] ondemand_create_rate
BURST = 8  # [tof] ondemand_create_burst
QUEUE_TOTAL = 8  # [tof] ondemand_queue_total: far below 50 UEs' first SYNs
SERVICE_IP = "198.18.50.1"


def _many_ues() -> str:
    text = default_text()
    first = text.index("[[ue]]")
    blocks = [
        f'[[ue]]\nname = "ue{i}"\naddress = "198.18.100.{i}"\nenb = "enb{1 + i % 2}"\n'
        f'sgw = "sgw{1 + (i // 2) % 2}"\n'
        for i in range(1, UES + 1)
    ]
    rest = re.sub(r"\[\[ue\]\]\n(?:[a-z_0-9]+ = [^\n]*\n)+\n?", "", text[first:])
    return text[:first] + "\n".join(blocks) + "\n" + rest


@pytest.fixture(scope="module")
def lab(module_lab_factory: Callable[..., Lab]) -> Lab:
    return module_lab_factory(loads(_many_ues()), mode="tof")


def test_fifty_ues_at_once_per_ue_pool_of_eight(
    lab: Lab, daemon_factory: DaemonFactory, tmp_path: Path
) -> None:
    assert len(lab.ues) == UES
    daemon = daemon_factory(
        parts={
            "instances": {
                "builtin_templates": False,
                "networks": {
                    "apps": {
                        "bridge": lab.apps_bridge,
                        "netns": lab.host_ns,
                        "subnet": lab.apps_subnet,
                    }
                },
            },
            "tof": {
                "backend": "userspace",
                "netns": lab.host_ns,
                "enb_interface": lab.enb_side_if,
                "sgw_interface": lab.sgw_side_if,
                "ue_pools": [str(lab.config.ue_pool.subnet)],
                "pinger_target": str(lab.pdn_address),
                "ondemand_create_rate": RATE,
                "ondemand_create_burst": BURST,
                "ondemand_queue_total": QUEUE_TOTAL,
            },
        }
    )
    env = Env(lab, daemon, daemon.client())
    try:
        env.client.post("/v1/templates", {**TEMPLATE, "pool": {"size": 8}})
        wait_for(
            lambda: all(p["ready"] >= 8 for p in env.client.get("/v1/pools")), 120, "pool of 8"
        )
        assert wait_s1_ready(env.client, s1_pairs(lab), timeout=scaled(20))
        body = service_body(
            "flood", SERVICE_IP, lab, "per-ue", maxInstances=UES, idlePause=600,
            addressPool="198.19.0.64/26",
        )  # fmt: skip
        env.client.post("/service", body)
        with ThreadPoolExecutor(max_workers=UES) as pool:
            answers = list(pool.map(lambda ue: env.http(ue, SERVICE_IP, 60.0), sorted(lab.ues)))
        instances = env.instances("flood")
        by_ue = {i["ue"]: i["instance"] for i in instances}
        for ue, body_text in zip(sorted(lab.ues), answers, strict=True):
            assert body_text == f"edge instance {by_ue[str(lab.ues[ue])]}\n", (ue, body_text)
        assert len(set(by_ue.values())) == UES
        assert env.events("flood")["created"] == UES
        # Creation never outran the token bucket: any k consecutive grants span at least
        # (k - BURST) / RATE seconds (createdAt is the grant; a bound, whatever the load).
        created = sorted(i["createdAt"] for i in instances)
        for i in range(len(created)):
            for j in range(i + BURST, len(created)):
                assert created[j] - created[i] >= (j - i + 1 - BURST) / RATE - 0.002
        stats = env.client.get("/stats")["onDemand"]
        refused = stats["drops"].get("queue_full_total", 0)
        assert refused > 0  # 50 first SYNs against a queue of 8: refusals, counted
        metrics = env.client.get("/metrics")
        assert (
            sample(metrics, "fluidedge_superfluid_queue_drops_total", reason="queue_full_total")
            == refused
        )
        assert stats["queued"] == 0
        pools = {p["template"]: p for p in env.client.get("/v1/pools")}
        assert pools["edge"]["consumed"] >= 8
    finally:
        env.client.close()
        daemon.stop()
        purge_daemon(daemon)
