"""On-demand services end to end in the lab: real UEs, real GTP-U through the userspace TOF,
real instances from the warm pool (runc, freezer cgroups), real captures (issue 17)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from ipaddress import IPv4Address

import pytest

from fluidedge.lab.capture import Capture
from fluidedge.lab.lab import Lab
from fluidedge.lab.packets import dissect, read_pcap
from tests.e2e.superfluid.conftest import (
    Env,
    cpu_ticks,
    frozen,
    make_env,
    service_body,
)
from tests.fixtures.daemon import DaemonFactory
from tests.fixtures.prom import sample
from tests.fixtures.wait import wait_for

pytestmark = [pytest.mark.root, pytest.mark.slow]

SERVICE_IP = "198.18.50.1"
SHARED_IP = "198.18.50.2"


def _answered_by(body: str) -> str:
    assert body.startswith("edge instance "), body
    return body.rsplit(maxsplit=1)[-1]


def test_first_request_answered_by_a_fresh_instance_nothing_lost(
    env: Env, s1_capture: Callable[..., Capture]
) -> None:
    lab = env.lab
    env.client.post("/service", service_body("web", SERVICE_IP, lab, "per-ue", idlePause=600))
    assert env.instances("web") == []
    ue1 = str(lab.ues["ue1"])
    enb = s1_capture(lab, "enb", ["udp", "port", "2152"])
    apps = s1_capture(lab, (lab.host_ns, lab.apps_bridge), ["tcp", "port", "80"])
    with enb, apps:
        body = env.http("ue1", SERVICE_IP)
    first = _answered_by(body)
    [instance] = env.instances("web")
    assert instance["instance"] == first
    assert instance["ue"] == ue1
    assert instance["state"] == "running"
    assert env.view(first)["path"] == "warm"
    # Every uplink packet of the flow that crossed S1 reached the instance (none lost while
    # it was queued), and the SYN was sent once (a lost one would have been retransmitted).
    uplink = [
        d
        for _, f in read_pcap(enb.path)
        if (d := dissect(f)).inner_src == IPv4Address(ue1)
        and d.inner_dst == IPv4Address(SERVICE_IP)
    ]
    delivered = [
        d
        for _, f in read_pcap(apps.path)
        if (d := dissect(f)).src == IPv4Address(ue1) and d.dst == IPv4Address(instance["address"])
    ]
    assert len(uplink) >= 4  # SYN, ACK, request, ACK/FIN at least
    assert len(delivered) == len(uplink)
    syns = [
        f for _, f in read_pcap(apps.path) if dissect(f).dst == IPv4Address(instance["address"])
    ]
    assert sum(1 for f in syns if f[14 + 20 + 13] & 0x02) == 1
    stats = env.client.get("/stats")["onDemand"]
    assert stats["counters"]["demand_create"] == 1
    assert stats["counters"]["flushed"] >= 1
    assert stats["drops"] == {}
    # the same UE again: the same instance, no new demand
    assert _answered_by(env.http("ue1", SERVICE_IP)) == first
    # a second UE gets its own instance under per-ue
    second = _answered_by(env.http("ue3", SERVICE_IP))
    assert second != first
    assert {i["ue"] for i in env.instances("web")} == {ue1, str(lab.ues["ue3"])}
    assert env.events("web")["created"] == 2
    shown = env.cli("service", "show", "web", "--json")
    assert [(i["instance"], i["ue"], i["state"]) for i in json.loads(shown)["instances"]] == [
        (i["instance"], i["ue"], "running") for i in env.instances("web")
    ]
    table = env.cli("service", "show", "web")
    assert first in table
    assert "per-ue" in table
    metrics = env.client.get("/metrics")
    assert sample(metrics, "fluidedge_superfluid_events_total", service="web", event="created") == 2
    assert sample(metrics, "fluidedge_superfluid_first_packet_seconds_count", service="web") == 2
    assert sample(metrics, "fluidedge_superfluid_queue_depth") == 0


def test_shared_service_one_instance_for_every_ue(env: Env) -> None:
    env.client.post("/service", service_body("shr", SHARED_IP, env.lab, "shared"))
    got = {_answered_by(env.http(ue, SHARED_IP)) for ue in ("ue1", "ue2", "ue3", "ue4")}
    assert len(got) == 1
    [instance] = env.instances("shr")
    assert instance["ue"] is None
    assert got == {instance["instance"]}


def test_idle_pause_resume_delete_recreate(env: Env) -> None:
    env.client.post(
        "/service",
        service_body("idle", SERVICE_IP, env.lab, "per-ue", idlePause=1.0, idleDelete=2.5),
    )
    name = _answered_by(env.http("ue2", SERVICE_IP))
    view = env.view(name)
    [record] = env.instances("idle")
    # T1 without traffic: paused, frozen by the kernel, no CPU time spent
    wait_for(lambda: env.instances("idle")[0]["state"] == "paused", 15, "the pause after T1")
    assert env.view(name)["state"] == "paused"
    assert frozen(view["id"])
    ticks = cpu_ticks(view["pid"])
    time.sleep(0.3)  # part of the scenario: let time pass, of which a frozen process spends none
    assert cpu_ticks(view["pid"]) == ticks
    # the next request resumes it and is answered by the same instance
    assert _answered_by(env.http("ue2", SERVICE_IP)) == name
    assert not frozen(view["id"])  # thawed before the request went in
    assert env.events("idle")["resumed"] == 1
    # ... and recorded as running right after (off the first exchange's path)
    wait_for(lambda: env.view(name)["state"] == "running", 5, "the resume recorded")
    assert env.instances("idle")[0]["state"] == "running"
    # paused again, then after T2 deleted (scale to zero) and its address freed
    wait_for(lambda: not env.instances("idle"), 20, "the delete after T1 + T2")
    assert env.events("idle")["deleted"] == 1
    assert name not in {v["name"] for v in env.client.get("/v1/instances")}
    # the next request creates a new one
    again = _answered_by(env.http("ue2", SERVICE_IP))
    assert again != name
    # ... at the address the deleted one had (the host's stale neighbour entry is forgotten)
    assert env.instances("idle")[0]["address"] == record["address"]
    assert env.events("idle")["created"] == 2


@pytest.mark.parametrize("how", ["restart", "kill9"])
def test_restart_restores_instances_and_idle_timers(env: Env, how: str) -> None:
    _restart_restores(env, how)


def test_fast_path_restart_restores_its_kernel_bindings(
    lab: Lab, daemon_factory: DaemonFactory
) -> None:
    """kill -9 of a fast-path daemon with a running on-demand instance: after the start its
    restored binding is the kernel's again (its packets offloaded by the program, to the same
    instance), and the idle timer still pauses it."""
    with make_env(lab, daemon_factory, "fastpath") as env:
        env.client.post(
            "/service",
            service_body("keep", SERVICE_IP, lab, "per-ue", idlePause=3.0, idleDelete=600),
        )
        first = _answered_by(env.http("ue4", SERVICE_IP))
        env.daemon.kill9()
        env.daemon.start()
        env.reconnect()
        assert {i["instance"]: i["state"] for i in env.instances("keep")} == {first: "running"}
        before = env.client.get("/stats")["fastpath"]
        ping = lab.run("ue4", ["ping", "-n", "-c", "5", "-i", "0.2", "-W", "2", SERVICE_IP])
        assert " 5 received" in ping.stdout, ping.stdout
        after = env.client.get("/stats")["fastpath"]
        assert after["offloaded_uplink"] - before.get("offloaded_uplink", 0) >= 4
        assert after.get("punt_ondemand_not_ready", 0) == before.get("punt_ondemand_not_ready", 0)
        assert env.events("keep").get("created", 0) == 0  # the same instance, re-adopted
        wait_for(lambda: env.instances("keep")[0]["state"] == "paused", 15, "the pause after T1")


def _restart_restores(env: Env, how: str) -> None:
    lab: Lab = env.lab
    env.client.post(
        "/service",
        service_body("keep", SERVICE_IP, lab, "per-ue", idlePause=2.0, idleDelete=600),
    )
    first = _answered_by(env.http("ue1", SERVICE_IP))
    second = _answered_by(env.http("ue4", SERVICE_IP))
    wait_for(lambda: {i["state"] for i in env.instances("keep")} == {"paused"}, 15, "both paused")
    assert _answered_by(env.http("ue4", SERVICE_IP)) == second  # ue4's running, ue1's paused
    if how == "restart":
        env.daemon.restart()
    else:
        env.daemon.kill9()
        env.daemon.start()
    env.reconnect()
    states = {i["instance"]: i["state"] for i in env.instances("keep")}
    assert states[first] == "paused"
    assert set(states) == {first, second}
    # the paused one answers (resumed on traffic), and the running one's idle timer still runs
    assert _answered_by(env.http("ue1", SERVICE_IP)) == first
    wait_for(
        lambda: {i["instance"]: i["state"] for i in env.instances("keep")}.get(second) == "paused",
        15,
        "the restored instance to be paused after T1",
    )


def test_fast_path_offloads_ready_bindings_in_the_kernel(
    lab: Lab, daemon_factory: DaemonFactory
) -> None:
    """On the fast path the kernel punts an on-demand service's packets until its binding is
    ready (the agent queues and creates), then offloads them itself; the packets it offloads
    keep the instance running; a park sends the next packet to the agent, which resumes it."""
    with make_env(lab, daemon_factory, "fastpath") as env:
        # On a loaded machine ue1's instance may be paused while ue3's is being created: its
        # next request is then answered by a resume, never stalled behind the creation.
        env.client.post("/service", service_body("fp", SERVICE_IP, lab, "per-ue", idlePause=1.0))
        first = _answered_by(env.http("ue1", SERVICE_IP))
        assert _answered_by(env.http("ue3", SERVICE_IP)) != first
        assert _answered_by(env.http("ue1", SERVICE_IP)) == first
        stats = env.client.get("/stats")
        assert stats["backend"] == "fastpath"
        assert stats["onDemand"]["counters"]["demand_create"] == 2
        assert stats["onDemand"]["drops"] == {}
        # 15 pings over 3 s (3 x T1) to ue1's instance: after the first (a new flow, the
        # agent's) the kernel carries them both ways, and its activity keeps them going to a
        # running instance (a pause would show as a resume: the next ping wakes it).
        resumed = env.events("fp").get("resumed", 0)
        before = stats["fastpath"]
        ping = lab.run("ue1", ["ping", "-n", "-c", "15", "-i", "0.2", "-W", "2", SERVICE_IP])
        assert " 15 received" in ping.stdout, ping.stdout
        after = env.client.get("/stats")["fastpath"]
        assert after["offloaded_uplink"] - before["offloaded_uplink"] >= 13
        assert after["offloaded_downlink"] - before["offloaded_downlink"] >= 13
        assert env.events("fp").get("resumed", 0) == resumed
        [mine] = [i for i in env.instances("fp") if i["instance"] == first]
        assert mine["state"] == "running"
        # idle: both paused; the next request is punted (no ready binding) and resumes it
        wait_for(lambda: {i["state"] for i in env.instances("fp")} == {"paused"}, 30, "both paused")
        punted = env.client.get("/stats")["fastpath"].get("punt_ondemand_not_ready", 0)
        assert _answered_by(env.http("ue1", SERVICE_IP)) == first
        assert env.events("fp")["resumed"] >= resumed + 1
        fast = env.client.get("/stats")["fastpath"]
        assert fast.get("punt_ondemand_not_ready", 0) > punted
