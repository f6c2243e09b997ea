"""The pipeline's timers cost what is due: the expiry wheel, and the same behaviour as a full scan.

``ScanPipeline`` below is the pipeline's tick and purge as they were (every bearer every tick,
every bearer, flow and pair every second); a random script runs through both and every call
must give the same frames and leave the same state. A pipeline whose tables refuse to be
iterated must still tick and purge: no periodic work scans them.
"""

from __future__ import annotations

import random

import pytest
from tests.unit.tof.test_pipeline import (
    APP,
    ENB1,
    ENB2,
    PDN,
    SERVICE,
    SGW1,
    SVC_IP,
    gpdu,
    udp_packet,
)

from fluidedge.codec import gtpu
from fluidedge.codec.stack import encapsulate, ethernet_frame
from fluidedge.tof.config import TofConfig
from fluidedge.tof.pipeline import ENB, SGW, Action, Pipeline
from fluidedge.tof.timers import ExpiryWheel

MAC_A = bytes.fromhex("020000000001")
MAC_B = bytes.fromhex("020000000002")


def test_wheel_hands_out_what_is_due_once() -> None:
    wheel: ExpiryWheel[str] = ExpiryWheel()
    wheel.add("a", 10.2)
    wheel.add("b", 12.9)
    wheel.add("c", 11.0)
    assert len(wheel) == 3
    assert wheel.due(9.9) == []
    assert wheel.due(11.5) == ["a", "c"]  # buckets 10 and 11, oldest first
    assert wheel.due(11.9) == []  # already handed out
    assert list(wheel.upto(13.0)) == ["b"]  # a look, not a removal
    assert len(wheel) == 1
    wheel.add("late", 3.0)  # a deadline already passed: handed out by the next call
    assert wheel.due(11.95) == []
    assert wheel.due(12.0) == ["b", "late"]  # the next bucket handed out, b's
    assert wheel.due(100.0) == []
    assert len(wheel) == 0


def test_wheel_jumps_over_long_gaps_without_walking_them() -> None:
    wheel: ExpiryWheel[int] = ExpiryWheel()
    wheel.add(1, 5.0)
    assert wheel.due(5.5) == [1]
    wheel.add(2, 1e9)  # far away: the next call must not walk a billion empty seconds
    assert wheel.due(1e9 + 0.5) == [2]
    wheel.add(3, 7.0)
    wheel.clear()
    assert wheel.due(2e9) == []


class ScanPipeline(Pipeline):
    """The tick and the purge as they were before the wheels: full scans."""

    def tick(self, now: float) -> list[Action]:
        out: list[Action] = []
        self._clock = now
        give_up = self.config.pinger_give_up
        for bearer in list(self.bearers.values()):
            if bearer.pinger_since is not None:
                if bearer.dl_teid is not None:
                    bearer.pinger_since = None
                elif now - bearer.pinger_since > give_up:
                    bearer.pinger_since = None
                    self.counters["pinger_gave_up"] += 1
                elif now >= bearer.pinger_next:
                    out.extend(self._ping(bearer, now))
            queue = bearer.queue
            while queue and queue[0][0] < now:
                queue.popleft()
                self.drops["queue_timeout"] += 1
        if self.ondemand.queued:
            self.ondemand.expire(now)
        if now >= self._next_purge:
            self._next_purge = now + 1.0
            self._purge(now)
        return out

    def _purge(self, now: float) -> None:
        idle = now - self.config.idle_timeout
        for bearer in list(self.bearers.values()):
            if bearer.last_seen < idle:
                self._retire(bearer, "idle", now)
                self.counters["bearers_purged"] += 1
        stale = now - self.config.flow_timeout
        for key, flow in list(self.flows.items()):
            if flow.last_seen < stale:
                del self.flows[key]
                self.counters["flows_expired"] += 1
        for pair, flow in list(self.pairs.items()):
            if flow.last_seen < stale:
                del self.pairs[pair]


def ue(i: int) -> bytes:
    return bytes([198, 18, 100, i])


def state(p: Pipeline) -> tuple[object, ...]:
    stats = p.stats()
    return (
        sorted(p.bearers),
        sorted((k, b.ul_teid, b.dl_teid, b.pinger_since, len(b.queue)) for k, b in p.up.items()),
        sorted(p.flows),
        sorted(p.pairs),
        stats["counters"],
        stats["drops"],
        stats["queued"],
        stats["bearerEvents"],
        p.bearer_events(),
    )


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_wheels_behave_like_the_full_scans(seed: int) -> None:
    rng = random.Random(seed)
    settings = {
        "idle_timeout": 3.0,
        "flow_timeout": 2.0,
        "pinger_interval": 0.3,
        "pinger_give_up": 2.0,
        "queue_timeout": 0.7,
        "queue_limit": 3,
    }
    wheel = Pipeline(TofConfig(backend="none", **settings))  # type: ignore[arg-type]
    scan = ScanPipeline(TofConfig(backend="none", **settings))  # type: ignore[arg-type]
    for p in (wheel, scan):
        p.set_services({"web": SERVICE})
    now = 0.0
    kinds: set[str] = set()
    for _step in range(1500):
        now += rng.choice([0.0, 0.01, 0.05, 0.05, 0.3, 1.1])
        i = rng.randrange(12)
        enb = ENB1 if i % 2 else ENB2
        op = rng.random()
        if op < 0.25:  # uplink to the PDN (learns, keeps alive)
            kind, args = "s1", (gpdu(enb, SGW1, 0x100 + i, udp_packet(ue(i), PDN, 1, 2)), ENB)
        elif op < 0.45:  # uplink to the service: a flow, maybe a Pinger
            port = 40000 + rng.randrange(3)
            frame = gpdu(enb, SGW1, 0x100 + i, udp_packet(ue(i), SVC_IP, port, 8080))
            kind, args = "s1", (frame, ENB)
        elif op < 0.55:  # downlink: the TEID the Pinger waits for
            frame = gpdu(SGW1, enb, 0x200 + i, udp_packet(PDN, ue(i), 2, 1), uplink=False)
            kind, args = "s1", (frame, SGW)
        elif op < 0.7:  # an app reply: encapsulated, or queued while no downlink TEID
            port = 40000 + rng.randrange(3)
            kind, args = "apps", (udp_packet(APP, ue(i), 8080, port),)
        elif op < 0.75:  # End Marker on the downlink: forgotten, replies queue again
            msg = gtpu.end_marker(0x200 + i)
            frame = ethernet_frame(MAC_A, MAC_B, encapsulate(SGW1, enb, msg))
            kind, args = "s1", (frame, SGW)
        else:
            kind, args = "tick", ()
        kinds.add(kind)
        outs = []
        for p in (wheel, scan):
            if kind == "s1":
                out = p.from_s1(args[0], args[1], now)  # type: ignore[arg-type]
            elif kind == "apps":
                out = p.from_apps(args[0], now)  # type: ignore[arg-type]
            else:
                out = p.tick(now)
            outs.append(sorted(out))
        assert outs[0] == outs[1]
        assert state(wheel) == state(scan)
    counters = scan.counters
    # The script did reach every timer: purges, expiries, Pinger requests, queue time-outs.
    for name in ("bearers_purged", "flows_expired", "pinger_requests_sent"):
        assert counters[name], counters
    assert scan.drops["queue_timeout"], scan.drops
    assert kinds == {"s1", "apps", "tick"}


class NoScan(dict):  # type: ignore[type-arg]
    """A table the periodic work must not walk (lookups and writes are fine)."""

    def values(self):  # type: ignore[no-untyped-def]
        raise AssertionError("scanned")

    def items(self):  # type: ignore[no-untyped-def]
        raise AssertionError("scanned")

    def __iter__(self):  # type: ignore[no-untyped-def]
        raise AssertionError("scanned")


def test_tick_and_purge_never_walk_the_tables() -> None:
    p = Pipeline(TofConfig(backend="none", idle_timeout=10.0, flow_timeout=5.0))
    p.set_services({"web": SERVICE})
    p.bearers, p.flows, p.pairs, p.up, p.down = NoScan(), NoScan(), NoScan(), NoScan(), NoScan()
    for i in range(200):
        p.from_s1(gpdu(ENB1, SGW1, 0x100 + i, udp_packet(ue(i % 250), PDN, 1, 2)), ENB, 0.0)
    p.from_s1(gpdu(ENB1, SGW1, 0x100, udp_packet(ue(0), SVC_IP, 40000, 8080)), ENB, 0.0)
    for t in range(1, 12):
        p.tick(float(t))  # Pinger, queue, purge and expiry on every bearer and flow
    assert p.counters["flows_expired"] == 1
    assert p.counters["bearers_purged"] == len({i % 250 for i in range(200)})
    assert dict.__len__(p.bearers) == 0


def test_expiring_lists_only_what_is_near_its_deadline() -> None:
    p = Pipeline(TofConfig(backend="none", idle_timeout=100.0, flow_timeout=50.0))
    p.set_services({"web": SERVICE})
    for i in range(20):
        p.from_s1(gpdu(ENB1, SGW1, 0x100 + i, udp_packet(ue(i), PDN, 1, 2)), ENB, 1000.0)
    p.from_s1(gpdu(ENB1, SGW1, 0x200, udp_packet(ue(99), SVC_IP, 7, 8080)), ENB, 900.5)
    (old,) = [b for b in p.bearers.values() if b.ue == ue(99)]
    assert p.bearers_expiring(1002.0) == [old]
    assert p.bearers_expiring(1000.0) == []
    assert len(p.flows_expiring(951.0)) == 1
    old.last_seen = 999.0  # seen since (a fold of the kernel's counters): not expiring
    assert p.bearers_expiring(1002.0) == []
    assert len(p.bearers_expiring(1100.5)) == 21
