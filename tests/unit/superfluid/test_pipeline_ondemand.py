"""The pipeline with an on-demand service: first packets queued, released to the instance in
order once ready, replies back through the tunnel, pause queues and asks for a resume."""

from __future__ import annotations

import ipaddress

import pytest
from tests.unit.tof.test_pipeline import (
    APP,
    ENB1,
    PDN,
    SGW1,
    SVC_IP,
    UE1,
    UE2,
    gpdu,
    inner_of,
    pipeline,
    udp_packet,
)

from fluidedge.tof.fastpath.dirty import track
from fluidedge.tof.models import Service
from fluidedge.tof.pipeline import APPS, ENB, SGW, Pipeline
from fluidedge.tof.superfluid.model import OnDemand

SPEC = OnDemand("edge", "per-ue", 4, 30.0, 300.0, "198.19.0.64/29")
ONDEMAND = Service("web", "198.18.50.1", "0.0.0.0", SPEC)
APP_A = ipaddress.IPv4Address("198.19.0.65").packed


def learned(p: Pipeline, ue: bytes, ul: int, dl: int) -> None:
    assert p.from_s1(gpdu(ENB1, SGW1, ul, udp_packet(ue, PDN, 1, 53)), ENB, 0.0)[0][0] == SGW
    down = gpdu(SGW1, ENB1, dl, udp_packet(PDN, ue, 53, 1), uplink=False)
    assert p.from_s1(down, SGW, 0.0)[0][0] == ENB


def setup() -> tuple[Pipeline, list[tuple[str, bytes, str, float]]]:
    p = pipeline()
    demands: list[tuple[str, bytes, str, float]] = []
    p.ondemand.sink = lambda *d: demands.append(d)
    p.set_services({"web": ONDEMAND})
    learned(p, UE1, 100, 200)
    learned(p, UE2, 101, 201)
    return p, demands


def test_first_packets_wait_then_go_to_the_new_instance_in_order() -> None:
    p, demands = setup()
    frames = [
        gpdu(ENB1, SGW1, 100, udp_packet(UE1, SVC_IP, 4000, 80, b"m%d" % i)) for i in range(3)
    ]
    for i, frame in enumerate(frames):
        assert p.from_s1(frame, ENB, 1.0 + i / 100) == []
    assert demands == [("web", UE1, "create", 1.0)]
    out = p.ondemand_ready("web", UE1, APP_A, 1.05)
    assert p.ondemand_waited is not None
    assert abs(p.ondemand_waited - 0.05) < 1e-9
    assert [port for port, _ in out] == [APPS, APPS, APPS]
    assert [pkt[16:20] for _, pkt in out] == [APP_A] * 3  # DNAT to the instance
    assert [pkt[-2:] for _, pkt in out] == [b"m0", b"m1", b"m2"]
    # the instance's reply goes back through UE1's tunnel, from the service IP
    reply = p.from_apps(udp_packet(APP_A, UE1, 80, 4000, b"hi"), 1.1)
    assert len(reply) == 1
    assert reply[0][0] == ENB
    inner, teid = inner_of(reply[0][1])
    assert teid == 200
    assert inner[12:16] == SVC_IP
    # later packets go straight through
    later = gpdu(ENB1, SGW1, 100, udp_packet(UE1, SVC_IP, 4000, 80, b"m3"))
    assert [port for port, _ in p.from_s1(later, ENB, 2.0)] == [APPS]


def test_the_instances_replies_are_activity_too() -> None:
    """An instance that only sends toward its UE (a stream the UE does not answer) is busy."""
    p, _demands = setup()
    assert p.from_s1(gpdu(ENB1, SGW1, 100, udp_packet(UE1, SVC_IP, 4000, 80)), ENB, 1.0) == []
    p.ondemand_ready("web", UE1, APP_A, 1.0)
    assert p.ondemand.activity()[("web", UE1)] == ("ready", 1.0)
    for t in (5.0, 9.0):
        assert p.from_apps(udp_packet(APP_A, UE1, 80, 4000, b"frame"), t)[0][0] == ENB
    assert p.ondemand.activity()[("web", UE1)] == ("ready", 9.0)
    # another address's packet on that flow (a stale instance) is not this binding's
    p.ondemand.seen("web", UE1, ipaddress.IPv4Address("198.19.0.66").packed, 12.0)
    assert p.ondemand.activity()[("web", UE1)] == ("ready", 9.0)


def test_other_ue_asks_for_its_own_instance_and_pass_through_is_untouched() -> None:
    p, demands = setup()
    p.ondemand_ready("web", UE1, APP_A, 0.5)
    frame = gpdu(ENB1, SGW1, 101, udp_packet(UE2, SVC_IP, 5000, 80))
    assert p.from_s1(frame, ENB, 1.0) == []
    assert demands == [("web", UE2, "create", 1.0)]
    other = gpdu(ENB1, SGW1, 101, udp_packet(UE2, PDN, 5000, 80))
    assert p.from_s1(other, ENB, 1.0) == [(SGW, other)]


def test_paused_binding_queues_and_asks_for_resume() -> None:
    p, demands = setup()
    p.ondemand_ready("web", UE1, APP_A, 0.0)
    assert p.ondemand.park("web", UE1)
    frame = gpdu(ENB1, SGW1, 100, udp_packet(UE1, SVC_IP, 4000, 80))
    assert p.from_s1(frame, ENB, 3.0) == []
    assert demands[-1] == ("web", UE1, "resume", 3.0)
    out = p.ondemand_ready("web", UE1, APP_A, 3.001)
    assert [port for port, _ in out] == [APPS]


@pytest.mark.parametrize("indexed", [False, True])
def test_forget_drops_only_the_forgotten_instances_flows(indexed: bool) -> None:
    """With the fast path's service index, forget looks at the service's flows only (not
    every flow); with or without it, exactly the forgotten instance's flows and pairs go."""
    p, _ = setup()
    if indexed:
        track(p)
    app_b = ipaddress.IPv4Address("198.19.0.66").packed
    p.ondemand_ready("web", UE1, APP_A, 1.0)
    p.ondemand_ready("web", UE2, app_b, 1.0)
    for port in (4000, 4001):
        p.from_s1(gpdu(ENB1, SGW1, 100, udp_packet(UE1, SVC_IP, port, 80)), ENB, 1.0)
        p.from_s1(gpdu(ENB1, SGW1, 101, udp_packet(UE2, SVC_IP, port, 80)), ENB, 1.0)
    assert sum(f.application_ip == APP_A for f in p.flows.values()) == 2
    assert sum(f.application_ip == app_b for f in p.flows.values()) == 2
    p.ondemand.park("web", UE1)
    assert p.ondemand_forget("web", UE1)
    assert not any(f.application_ip == APP_A for f in p.flows.values())
    assert not any(f.application_ip == APP_A for f in p.pairs.values())
    assert sum(f.application_ip == app_b for f in p.flows.values()) == 2  # UE2's stay
    assert any(f.application_ip == app_b for f in p.pairs.values())


def test_queue_timeout_in_tick_and_forget_drops_flows() -> None:
    p, _ = setup()
    p.from_s1(gpdu(ENB1, SGW1, 100, udp_packet(UE1, SVC_IP, 4000, 80)), ENB, 0.0)
    p.tick(10.0)
    assert p.stats()["onDemand"]["drops"] == {"queue_timeout": 1}  # type: ignore[index]
    p.ondemand_ready("web", UE1, APP_A, 10.0)
    p.from_s1(gpdu(ENB1, SGW1, 100, udp_packet(UE1, SVC_IP, 4000, 80)), ENB, 10.0)
    assert any(f.application_ip == APP_A for f in p.flows.values())
    p.ondemand.park("web", UE1)
    assert p.ondemand_forget("web", UE1)
    assert not any(f.application_ip == APP_A for f in p.flows.values())


def test_static_services_unchanged_next_to_on_demand() -> None:
    p, _ = setup()
    static = Service("static", "198.18.50.2", "198.19.0.10")
    p.set_services({"web": ONDEMAND, "static": static})
    svc2 = ipaddress.IPv4Address("198.18.50.2").packed
    out = p.from_s1(gpdu(ENB1, SGW1, 100, udp_packet(UE1, svc2, 4000, 80)), ENB, 1.0)
    assert [port for port, _ in out] == [APPS]
    assert out[0][1][16:20] == APP
