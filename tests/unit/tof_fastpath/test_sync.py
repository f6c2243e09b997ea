"""Incremental sync: the maps follow the pipeline through its dirty set, at the cost of the change.

The kernel maps are replaced by dict-backed stand-ins behind the ``BpfMap`` seam (the functional
tests in tests/functional/tof_fastpath drive the same code against real maps); after every step
the maps must equal the full projection, and one change must cost a handful of writes whatever
the number of bearers.
"""

from __future__ import annotations

import errno
import random
import struct

from fluidedge.codec.stack import encapsulate, ethernet_frame
from fluidedge.linux.libbpf import BPF_NOEXIST, BpfError
from fluidedge.tof.config import TofConfig
from fluidedge.tof.fastpath import layout as L
from fluidedge.tof.fastpath.backend import FastPathBackend
from fluidedge.tof.models import OnDemand, Service
from fluidedge.tof.pipeline import ENB, SGW

from .test_layout import MAC_A, MAC_B, frame

SGW_IP = bytes([198, 18, 0, 21])
ON_DEMAND = OnDemand("edge", "per-ue", 4, 30.0, 300.0, "198.19.0.64/29")


def ip(*tail: int) -> bytes:
    return bytes([198, 18, *tail])


class FakeMap:
    """Hash-map semantics the agent relies on: NOEXIST, capacity (E2BIG), lookup, delete."""

    def __init__(self, capacity: int = 1 << 30, value_size: int = 0) -> None:
        self.data: dict[bytes, bytes] = {}
        self.capacity = capacity
        self.cpus = 1
        self.value_size = value_size
        self.writes = 0

    def update(self, key: bytes, value: bytes, flags: int = 0) -> None:
        self.writes += 1
        if flags == BPF_NOEXIST and key in self.data:
            raise BpfError("exists", errno.EEXIST)
        if key not in self.data and len(self.data) >= self.capacity:
            raise BpfError("full", errno.E2BIG)
        self.data[key] = value

    def delete(self, key: bytes) -> bool:
        self.writes += 1
        return self.data.pop(key, None) is not None

    def lookup(self, key: bytes) -> bytes | None:
        return self.data.get(key)

    def lookup_percpu(self, key: bytes) -> list[bytes]:
        return [self.data.get(key, bytes(self.value_size))]


def backend_with_fake_maps(**caps: int) -> tuple[FastPathBackend, dict[str, FakeMap]]:
    backend = FastPathBackend(TofConfig(backend="none"))
    maps = {
        "tunnels": FakeMap(caps.get("tunnels", 1 << 30)),
        "flows": FakeMap(caps.get("flows", 1 << 30)),
        "downlink": FakeMap(caps.get("downlink", 1 << 30)),
        "services": FakeMap(),
        "service_stats": FakeMap(value_size=L.SERVICE_STATS.size),
    }
    backend._maps = maps  # type: ignore[assignment]
    return backend, maps


def assert_maps_match_projection(backend: FastPathBackend, maps: dict[str, FakeMap]) -> None:
    want = L.project(backend.pipeline, backend._slots)
    no_flags = {k: v[:8] for k, v in maps["services"].data.items()}  # flags: agent policy
    assert no_flags == {k: v[:8] for k, v in want.services.items()}
    tunnels = {k: L.TUNNEL_VAL.unpack(v)[4] for k, v in maps["tunnels"].data.items()}
    assert tunnels == want.tunnel_ues
    assert maps["flows"].data == want.flows
    assert maps["downlink"].data == want.downlink


def ue_of(i: int) -> bytes:
    return bytes([10, (i >> 16) & 255, (i >> 8) & 255, i & 255])


def bearer_frames(i: int) -> tuple[bytes, bytes]:
    enb, ue = ip(1, i % 200), ue_of(i)
    return (
        frame((enb, SGW_IP, 0x10000 + i), ue, ip(200, 10), 1000, 53),
        frame((SGW_IP, enb, 0x20000 + i), ip(200, 10), ue, 53, 1000),
    )


def test_random_changes_keep_the_maps_equal_to_the_projection() -> None:
    rng = random.Random(14)
    backend, maps = backend_with_fake_maps()
    p = backend.pipeline
    services = {
        "web": Service("web", "198.18.50.1", "198.19.0.10"),
        "alt": Service("alt", "198.18.50.2", "198.19.0.11"),
    }
    backend.apply(services)
    now = 1.0
    seen = {"flows": 0, "downlink": 0, "reattach": 0, "service_changes": 0}
    for step in range(600):
        now += 0.01
        op = rng.random()
        i = rng.randrange(60)
        up, down = bearer_frames(i)
        if op < 0.3:
            p.from_s1(up, ENB, now)
        elif op < 0.5:
            p.from_s1(down, SGW, now)
        elif op < 0.72:  # a flow to one of the services (created by its first packet)
            enb, ue = ip(1, i % 200), ue_of(i)
            svc = ip(50, rng.choice([1, 2, 3]))
            p.from_s1(frame((enb, SGW_IP, 0x10000 + i), ue, svc, 40000 + step, 80), ENB, now)
        elif op < 0.8:  # a service change: incremental, only that service's flows
            name = rng.choice(["web", "alt", "new"])
            choice = rng.random()
            if choice < 0.3:
                services.pop(name, None)
            elif choice < 0.5:  # moved to another service IP
                services[name] = Service(name, f"198.18.50.{rng.choice([1, 2, 3])}", "198.19.0.12")
                services = {  # one service per service IP
                    n: s
                    for n, s in services.items()
                    if n == name or s.service_ip != services[name].service_ip
                }
            elif choice < 0.8:  # re-pointed to another application
                ip_of = {"web": 1, "alt": 2, "new": 3}[name]
                services = {
                    n: s for n, s in services.items() if s.service_ip != f"198.18.50.{ip_of}"
                }
                services[name] = Service(
                    name, f"198.18.50.{ip_of}", f"198.19.0.{rng.choice([10, 11])}"
                )
            elif choice < 0.9 and name in services:  # on demand: its flows stay in the
                old = services[name]  # pipeline, but no longer in the kernel
                services[name] = Service(name, old.service_ip, "0.0.0.0", ondemand=ON_DEMAND)
            else:
                backend.set_service_flags(name, rng.choice([0, L.SERVICE_PUNT]))
            backend.apply(services)
            seen["service_changes"] += 1
        elif op < 0.9:  # TEID re-used by another UE (re-attach)
            enb = ip(1, i % 200)
            p.from_s1(
                frame((enb, SGW_IP, 0x10000 + i), ue_of(i + 1000), ip(200, 10), 1, 2), ENB, now
            )
        elif op < 0.97:
            p.tick(now + rng.choice([0.0, 400.0]))  # sometimes past the idle/flow timeouts
        else:
            backend.purge()
        backend._sync()
        assert_maps_match_projection(backend, maps)
        index: dict[str, set[object]] = {}  # the service index follows the flows table
        for key, flow in p.flows.items():
            index.setdefault(flow.service, set()).add(key)
        assert backend._dirty.by_service == index
        seen["flows"] = max(seen["flows"], len(maps["flows"].data))
        seen["downlink"] = max(seen["downlink"], len(maps["downlink"].data))
    assert seen["flows"] > 0
    seen["reattach"] = p.counters["tunnels_replaced_uplink"] + sum(
        v for k, v in p.counters.items() if k.startswith("bearers_retired")
    )
    assert min(seen.values()) > 0, seen  # the run did install and change every kind of entry


def test_one_change_costs_the_same_at_any_size() -> None:
    costs = []
    for n in (10, 2000):
        backend, maps = backend_with_fake_maps()
        for i in range(n):
            up, down = bearer_frames(i)
            backend.pipeline.from_s1(up, ENB, 1.0)
            backend.pipeline.from_s1(down, SGW, 1.0)
        backend._sync()
        assert len(maps["tunnels"].data) == 2 * n
        writes = sum(m.writes for m in maps.values())
        backend.pipeline.from_s1(bearer_frames(n)[0], ENB, 2.0)  # one new bearer
        backend._sync()
        costs.append(sum(m.writes for m in maps.values()) - writes)
        assert_maps_match_projection(backend, maps)
    assert costs[0] == costs[1] == 1  # one tunnel entry, nothing else re-written


def test_one_service_change_costs_the_same_at_any_size() -> None:
    """A service change re-projects its own service entry and its flows, nothing else: the
    same map writes with 10 or 2,000 bearers, each with a flow to another service."""
    web = Service("web", "198.18.50.1", "198.19.0.10")
    costs = []
    for n in (10, 2000):
        backend, maps = backend_with_fake_maps()
        p = backend.pipeline
        backend.apply({"web": web, "b": Service("b", "198.18.50.2", "198.19.0.11")})
        for i in range(n):
            enb, ue = ip(1, i % 200), ue_of(i)
            up, down = bearer_frames(i)
            p.from_s1(up, ENB, 1.0)
            p.from_s1(down, SGW, 1.0)
            p.from_s1(frame((enb, SGW_IP, 0x10000 + i), ue, ip(50, 1), 40000, 80), ENB, 1.0)
            if i < 3:  # three flows to service b, whatever n
                p.from_s1(frame((enb, SGW_IP, 0x10000 + i), ue, ip(50, 2), 40001, 80), ENB, 1.0)
        backend._sync()
        assert len(maps["flows"].data) == n + 3
        b2 = Service("b", "198.18.50.2", "198.19.0.12")
        c = Service("c", "198.18.50.3", "198.19.0.13")
        step_costs = []
        for change in (
            {"web": web, "b": b2},  # b re-pointed: its entry + its 3 flows (stale: removed)
            {"web": web, "b": b2, "c": c},  # a new service: its entry + its counters reset
            "flag",  # a policy flag on web (n flows): its entry only
        ):
            writes = sum(m.writes for m in maps.values())
            if isinstance(change, dict):
                backend.apply(change)
            else:
                backend.set_service_flags("web", L.SERVICE_PUNT)
            step_costs.append(sum(m.writes for m in maps.values()) - writes)
            assert_maps_match_projection(backend, maps)
        assert len(maps["flows"].data) == n  # web's flows all kept
        costs.append(step_costs)
    assert costs[0] == costs[1] == [4, 2, 1]


def test_a_full_map_refuses_counts_and_takes_the_entry_once_room_is_made() -> None:
    backend, maps = backend_with_fake_maps(tunnels=2)
    p = backend.pipeline
    for i in range(2):
        p.from_s1(bearer_frames(i)[0], ENB, 1.0)
    backend._sync()
    p.from_s1(bearer_frames(2)[0], ENB, 1.0)
    backend._sync()
    report = backend.map_report()["tunnels"]
    assert (report["entries"], report["waiting"], report["full"]) == (2, 1, True)
    assert report["fullFailures"] == 1
    # A retry while still full fails again (counted), nothing else changes.
    backend._retry_waiting()
    backend._sync()
    assert backend.map_report()["tunnels"]["fullFailures"] == 2
    # Room: bearer 0's key goes; the waiting key is written in the same sync.
    key0 = next(iter(maps["tunnels"].data))
    del p.up[key0]
    backend._retry_waiting()  # the removal and the waiting key in one sync: removal first
    backend._sync()
    report = backend.map_report()["tunnels"]
    assert (report["entries"], report["waiting"], report["full"]) == (2, 0, False)
    assert_maps_match_projection(backend, maps)


class CountingMap(FakeMap):
    def __init__(self) -> None:
        super().__init__()
        self.lookups = 0

    def lookup(self, key: bytes) -> bytes | None:
        self.lookups += 1
        return super().lookup(key)


def test_the_periodic_fold_reads_only_entries_close_to_expiry() -> None:
    backend = FastPathBackend(TofConfig(backend="none", idle_timeout=100.0))
    tunnels = CountingMap()
    backend._maps = {  # type: ignore[assignment]
        "tunnels": tunnels,
        "flows": FakeMap(),
        "downlink": FakeMap(),
        "services": FakeMap(),
        "service_stats": FakeMap(value_size=L.SERVICE_STATS.size),
    }
    p = backend.pipeline
    for i in range(50):
        p.from_s1(bearer_frames(i)[0], ENB, 1000.0)  # fresh bearers
    p.from_s1(bearer_frames(50)[0], ENB, 900.5)  # one about to be idle-purged at 1001
    backend._sync()
    old = p.bearers[(ip(1, 50), SGW_IP, ue_of(50))]
    key = L.tunnel_key_of(old, uplink=True)
    # The kernel forwarded its traffic recently: its entry has a newer last-seen.
    tunnels.data[key] = L.TUNNEL_VAL.pack(5, 500, int(999.0 * 1e9), 0, ue_of(50))
    backend._fold_due(1000.0)
    assert tunnels.lookups == 1  # only the bearer close to its idle timeout was read
    assert old.last_seen == 999.0
    p.tick(1001.0)
    assert (ip(1, 50), SGW_IP, ue_of(50)) in p.bearers  # kept: the kernel saw it


def test_a_removed_keys_kernel_counters_go_to_the_bearer_it_counted_for() -> None:
    backend, maps = backend_with_fake_maps()
    p = backend.pipeline
    up, down = bearer_frames(7)
    p.from_s1(up, ENB, 1.0)
    p.from_s1(down, SGW, 1.0)
    backend._sync()
    bearer = p.bearers[(ip(1, 7), SGW_IP, ue_of(7))]
    dl_key = L.tunnel_key_of(bearer, uplink=False)
    before = bearer.dl_packets
    # The kernel switched 3 downlink packets since the last fold...
    maps["tunnels"].data[dl_key] = L.TUNNEL_VAL.pack(3, 300, 0, 0, ue_of(7))
    # ...then an End Marker makes the pipeline forget the downlink key.
    msg = struct.pack("!BBHI", 0x32, 254, 4, 0x20000 + 7) + b"\x00\x01\x00\x00"
    end_marker = ethernet_frame(
        MAC_A, MAC_B, encapsulate(SGW_IP, ip(1, 7), msg, udp_checksum=False)
    )
    p.from_s1(end_marker, SGW, 2.0)
    assert bearer.dl_teid is None
    backend._sync()
    assert dl_key not in maps["tunnels"].data
    assert bearer.dl_packets == before + 3  # folded into the bearer, not lost


def test_the_service_index_drops_the_same_flows_as_the_scan() -> None:
    """A tracked pipeline (service index) and a plain one (scan of every flow) given the same
    frames and service changes keep the same flows and pairs, and report the same changes."""
    rng = random.Random(7)
    tracked, _maps = backend_with_fake_maps()
    plain = FastPathBackend(TofConfig(backend="none")).pipeline  # tracked too: undo it
    plain.flows, plain.pairs, plain.service_index = dict(plain.flows), dict(plain.pairs), None
    pipelines = (tracked.pipeline, plain)
    names = ["web", "alt", "new"]
    for step in range(300):
        i = rng.randrange(40)
        enb, ue = ip(1, i % 200), ue_of(i)
        if rng.random() < 0.8:
            svc = ip(50, rng.choice([1, 2, 3]))
            for p in pipelines:
                p.from_s1(bearer_frames(i)[0], ENB, 1.0)
                p.from_s1(frame((enb, SGW_IP, 0x10000 + i), ue, svc, 40000 + step, 80), ENB, 1.0)
            continue
        services = {
            n: Service(n, f"198.18.50.{k + 1}", f"198.19.0.{rng.choice([10, 11])}")
            for k, n in enumerate(names)
            if rng.random() < 0.8
        }
        changed = [p.set_services(services) for p in pipelines]
        assert changed[0] == changed[1]
        assert dict(pipelines[0].flows) == pipelines[1].flows
        assert dict(pipelines[0].pairs) == pipelines[1].pairs
    assert pipelines[1].flows  # flows survived some changes
