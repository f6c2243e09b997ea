"""On-demand bindings in the fast path's kernel: the ``ondemand`` map holds the ready ones.

The maps are dict-backed stand-ins behind the ``BpfMap`` seam; the same code drives real maps
in tests/e2e/superfluid/test_ondemand_lab.py (kernel offload, the kernel's activity keeping an
instance running, the park sending the next packet to the agent, which wakes the instance).
"""

from __future__ import annotations

import random

from fluidedge.tof.fastpath import layout as L
from fluidedge.tof.fastpath.backend import FastPathBackend
from fluidedge.tof.models import OnDemand, Service
from fluidedge.tof.pipeline import ENB, SGW

from .test_layout import frame
from .test_sync import SGW_IP, FakeMap, backend_with_fake_maps, ip

SIP = ip(50, 1)
APP = bytes([198, 19, 0, 70])
UE1, UE2 = ip(100, 1), ip(100, 2)
ENB_IP = ip(1, 1)


def on_demand(policy: str) -> Service:
    return Service(
        "web",
        "198.18.50.1",
        "0.0.0.0",
        ondemand=OnDemand("edge", policy, 4, 30.0, 300.0, "198.19.0.64/29"),
    )


class Sent:
    """An S1 socket that keeps what the agent sends (the Pinger's probes here)."""

    def __init__(self) -> None:
        self.frames: list[bytes] = []

    def sendmsg(self, parts: list[bytes]) -> int:
        self.frames.append(parts[1])
        return len(parts[1])


def setup(policy: str = "per-ue") -> tuple[FastPathBackend, dict[str, FakeMap]]:
    backend, maps = backend_with_fake_maps()
    maps["ondemand"] = FakeMap()
    backend._s1_tx = {ENB: Sent(), SGW: Sent()}  # type: ignore[dict-item]
    backend.apply({"web": on_demand(policy)})
    return backend, maps


def first_packet(backend: FastPathBackend, ue: bytes, teid: int, port: int = 40000) -> None:
    with backend._lock:
        backend.pipeline.from_s1(frame((ENB_IP, SGW_IP, teid), ue, SIP, port, 80), ENB, 1.0)
        backend._sync()


def set_last_seen(maps: dict[str, FakeMap], name: str, key: bytes, seconds: float) -> None:
    """What the program does on every packet it offloads: stamp the entry's last-seen."""
    raw = maps[name].data[key]
    fmt = L.ONDEMAND_VAL if name == "ondemand" else L.FLOW_VAL
    fields = list(fmt.unpack(raw))
    fields[-1] = int(seconds * 1e9)
    maps[name].data[key] = fmt.pack(*fields)


def ready_then_parked(backend: FastPathBackend) -> float:
    """UE1's first packet, its instance ready, then parked on the activity read back: the
    activity the park was decided on."""
    first_packet(backend, UE1, 0x100)
    backend.ondemand_ready("web", UE1, APP)
    [(_state, idle_since)] = backend.ondemand_activity().values()
    assert backend.ondemand_park("web", UE1, idle_since)
    return idle_since


def test_service_flags_say_on_demand_and_per_ue() -> None:
    for policy, per_ue in (("per-ue", L.SERVICE_PER_UE), ("shared", 0)):
        _backend, maps = setup(policy)
        [value] = maps["services"].data.values()
        app, _slot, flags, *_ = L.SERVICE_VAL.unpack(value)
        assert app == bytes(4)
        assert flags & (L.SERVICE_ONDEMAND | L.SERVICE_PER_UE) == L.SERVICE_ONDEMAND | per_ue


def test_a_pending_binding_has_no_entry_and_a_ready_one_has_its_flows() -> None:
    backend, maps = setup()
    first_packet(backend, UE1, 0x100)
    assert backend.pipeline.ondemand.queued == 1
    assert maps["ondemand"].data == {}  # pending: the kernel punts, the agent queues
    assert maps["flows"].data == {}
    backend.ondemand_ready("web", UE1, APP)
    key = L.ONDEMAND_KEY.pack(SIP, UE1)
    assert L.ONDEMAND_VAL.unpack(maps["ondemand"].data[key])[0] == APP
    # the released packet made the flow, which the kernel now offloads itself
    [flow_key] = maps["flows"].data
    assert L.flow_pipeline_key(flow_key)[1] == APP
    assert L.FLOW_VAL.unpack(maps["flows"].data[flow_key])[0] == SIP
    # a second UE of a per-ue service has no entry until its own instance is ready
    first_packet(backend, UE2, 0x200)
    assert list(maps["ondemand"].data) == [key]


def test_a_shared_binding_is_keyed_by_ue_zero() -> None:
    backend, maps = setup("shared")
    first_packet(backend, UE1, 0x100)
    backend.ondemand_ready("web", b"", APP)
    assert list(maps["ondemand"].data) == [L.ONDEMAND_KEY.pack(SIP, bytes(4))]


def test_kernel_activity_reaches_the_idle_timers_and_refuses_a_stale_park() -> None:
    backend, maps = setup()
    first_packet(backend, UE1, 0x100)
    backend.ondemand_ready("web", UE1, APP)
    key = L.ONDEMAND_KEY.pack(SIP, UE1)
    [(state, seen)] = backend.ondemand_activity().values()
    assert state == "ready"
    later = seen + 5.0
    set_last_seen(maps, "ondemand", key, later)
    [(_state, folded)] = backend.ondemand_activity().values()
    assert abs(folded - later) < 1e-6  # the kernel's packets count: no pause while they flow
    # a packet the kernel forwarded after the look that found it idle: the park is refused
    set_last_seen(maps, "ondemand", key, later + 1.0)
    assert not backend.ondemand_park("web", UE1, folded)
    assert key in maps["ondemand"].data
    # idle since the latest look: parked, and the entry is gone (the next packet: the agent's)
    [(_state, idle_since)] = backend.ondemand_activity().values()
    assert backend.ondemand_park("web", UE1, idle_since)
    assert maps["ondemand"].data == {}
    assert maps["flows"].data  # the flows stay: a resume needs no re-learning


def test_a_packet_the_kernel_forwarded_after_the_park_wakes_the_frozen_instance() -> None:
    backend, maps = setup()
    woken: list[tuple[str, bytes]] = []
    backend.set_waker(lambda service, ue: woken.append((service, ue)) is None)
    idle_since = ready_then_parked(backend)
    # nothing slipped through: frozen stays frozen
    assert backend.ondemand_frozen("web", UE1)
    assert woken == []
    assert backend.pipeline.ondemand.bindings[("web", UE1)].state == "paused"
    # again, with a flow stamped after the park's look (the instant before the entry went)
    backend.pipeline.ondemand.bindings[("web", UE1)].state = "ready"
    assert backend.ondemand_park("web", UE1, idle_since)
    [flow_key] = maps["flows"].data
    set_last_seen(maps, "flows", flow_key, idle_since + 0.001)
    assert backend.ondemand_frozen("web", UE1)
    assert woken == [("web", UE1)]
    assert backend.pipeline.ondemand.bindings[("web", UE1)].state == "ready"
    assert L.ONDEMAND_KEY.pack(SIP, UE1) in maps["ondemand"].data
    assert backend.io["ondemand_slipped_wakes"] == 1


def test_forget_removes_the_flows_and_a_new_instance_gets_its_own() -> None:
    backend, maps = setup()
    ready_then_parked(backend)
    assert backend.ondemand_forget("web", UE1)
    assert maps["ondemand"].data == {}
    assert maps["flows"].data == {}
    other = bytes([198, 19, 0, 71])
    first_packet(backend, UE1, 0x100, port=40001)
    backend.ondemand_ready("web", UE1, other)
    assert L.ONDEMAND_VAL.unpack(maps["ondemand"].data[L.ONDEMAND_KEY.pack(SIP, UE1)])[0] == other
    assert [L.flow_pipeline_key(k)[1] for k in maps["flows"].data] == [other]


def test_a_binding_pointed_elsewhere_takes_its_old_flows_out_of_the_kernel() -> None:
    backend, maps = setup()
    first_packet(backend, UE1, 0x100)
    backend.ondemand_ready("web", UE1, APP)
    assert len(maps["flows"].data) == 1
    backend.ondemand_ready("web", UE1, bytes([198, 19, 0, 71]))  # e.g. re-adopted elsewhere
    assert maps["flows"].data == {}  # the old instance's flow is no longer the kernel's


def test_a_wake_on_the_packet_path_reinstalls_the_entry_after_the_batch() -> None:
    backend, maps = setup()
    backend.set_waker(lambda service, ue: True)
    ready_then_parked(backend)
    assert backend.ondemand_frozen("web", UE1)
    assert maps["ondemand"].data == {}
    first_packet(backend, UE1, 0x100)  # punted (no entry): the pipeline wakes it in line
    assert backend.pipeline.ondemand.bindings[("web", UE1)].state == "ready"
    assert L.ONDEMAND_KEY.pack(SIP, UE1) in maps["ondemand"].data


def test_moving_the_service_moves_its_entries_and_removing_it_drops_them() -> None:
    backend, maps = setup()
    first_packet(backend, UE1, 0x100)
    backend.ondemand_ready("web", UE1, APP)
    moved = Service("web", "198.18.50.9", "0.0.0.0", ondemand=on_demand("per-ue").ondemand)
    backend.apply({"web": moved})
    assert list(maps["ondemand"].data) == [L.ONDEMAND_KEY.pack(ip(50, 9), UE1)]
    backend.apply({})
    assert maps["ondemand"].data == {}
    assert backend._installed_ondemand == {}


def test_entries_follow_the_table_through_random_steps() -> None:
    """Whatever the order of creations, parks, wakes, forgets and refusals, the map holds the
    ready bindings exactly."""
    rng = random.Random(7)
    backend, maps = setup()
    backend.set_waker(lambda service, ue: rng.random() < 0.7)
    ues = [ip(100, n) for n in range(1, 7)]
    for step in range(400):
        ue = rng.choice(ues)
        teid = 0x100 + ues.index(ue)
        op = rng.random()
        if op < 0.35:
            first_packet(backend, ue, teid, port=40000 + step % 5)
        elif op < 0.55:
            backend.ondemand_ready("web", ue, bytes([198, 19, 0, 64 + ues.index(ue)]))
        elif op < 0.75:
            binding = backend.pipeline.ondemand.bindings.get(("web", ue))
            if binding is not None and backend.ondemand_park("web", ue, binding.last_active):
                backend.ondemand_frozen("web", ue)
        elif op < 0.85:
            backend.ondemand_forget("web", ue, force=rng.random() < 0.5)
        elif op < 0.95:
            backend.ondemand_refuse("web", ue, "full")
        else:
            backend.ondemand_restore("web", ue, bytes([198, 19, 0, 80]), paused=True)
        with backend._lock:
            backend._sync()
        table = backend.pipeline.ondemand
        want = {
            L.ONDEMAND_KEY.pack(SIP, k[1]): b.app_ip
            for k, b in table.bindings.items()
            if b.state == "ready"
        }
        got = {k: L.ONDEMAND_VAL.unpack(v)[0] for k, v in maps["ondemand"].data.items()}
        assert got == want, step
        # ... and the flows map the flows bound to a binding's current instance
        flows = L.project(backend.pipeline, backend._slots).flows
        assert maps["flows"].data.keys() == flows.keys(), step
