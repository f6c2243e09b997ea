"""The API's full fold of kernel counters: read without the agent's lock, applied in short holds.

The maps are dict-backed stand-ins behind the ``BpfMap`` seam whose batch read takes the whole
map at once and hands it out two entries at a time, running a hook between two batches: what
the agent does meanwhile (the periodic fold, a re-attach and its sync) must not be counted
twice nor credited to the wrong bearer. The functional tests fold real maps (the differential
test compares the counters the API shows on both backends).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from fluidedge.tof.config import TofConfig
from fluidedge.tof.fastpath import backend as backend_module
from fluidedge.tof.fastpath import layout as L
from fluidedge.tof.fastpath.backend import FastPathBackend
from fluidedge.tof.pipeline import ENB, SGW

from .test_layout import frame
from .test_sync import SGW_IP, FakeMap, bearer_frames, ip, ue_of


class BatchMap(FakeMap):
    def __init__(self, backend: FastPathBackend) -> None:
        super().__init__()
        self.backend = backend
        self.between: Callable[[], None] = lambda: None
        self.locked_reads: list[bool] = []

    def lookup_batches(self, chunk: int = 8192) -> Iterator[tuple[int, bytes, bytes]]:
        rows = sorted(self.data.items())  # read now, handed out later: may go stale
        for start in range(0, len(rows), 2):
            if start:
                self.between()
            self.locked_reads.append(self.backend._lock.locked())
            part = rows[start : start + 2]
            yield len(part), b"".join(k for k, _ in part), b"".join(v for _, v in part)


def test_the_full_fold_reads_outside_the_lock_and_counts_each_packet_once() -> None:
    backend = FastPathBackend(TofConfig(backend="none"))
    maps = {name: BatchMap(backend) for name in ("tunnels", "flows", "downlink", "services")}
    maps["service_stats"] = BatchMap(backend)
    maps["service_stats"].value_size = L.SERVICE_STATS.size
    backend._maps = maps  # type: ignore[assignment]
    p = backend.pipeline
    for i in range(6):
        up, down = bearer_frames(i)
        p.from_s1(up, ENB, 1.0)
        p.from_s1(down, SGW, 1.0)
    backend._sync()
    tunnels = maps["tunnels"]
    bearers = {b.ue: b for b in p.bearers.values()}
    keys = {u: L.tunnel_key_of(b, uplink=True) for u, b in bearers.items()}
    for u, key in keys.items():  # the kernel forwarded 5 more uplink packets of each
        tunnels.data[key] = L.TUNNEL_VAL.pack(5, 500, int(2e9), 0, u)
    order = sorted(keys.values())
    late_a, late_b = order[-1], order[-2]  # in the last batch: read before the hook runs
    (ue_a,) = [u for u, k in keys.items() if k == late_a]
    (ue_b,) = [u for u, k in keys.items() if k == late_b]
    i_b = ue_b[3]
    reattached = ue_of(i_b + 1000)

    def meanwhile() -> None:
        if meanwhile.done:  # type: ignore[attr-defined]
            return
        meanwhile.done = True  # type: ignore[attr-defined]
        with backend._lock:
            # The periodic fold reads A's entry fresh (3 packets more since the batch read).
            tunnels.data[late_a] = L.TUNNEL_VAL.pack(8, 800, int(3e9), 0, ue_a)
            backend._fold_tunnel(late_a)
            # B's uplink key is re-used by another UE: the sync folds B's entry and rewrites it.
            enb = ip(1, i_b % 200)
            p.from_s1(frame((enb, SGW_IP, 0x10000 + i_b), reattached, ip(200, 10), 1, 2), ENB, 4.0)
            backend._sync()

    meanwhile.done = False  # type: ignore[attr-defined]
    tunnels.between = meanwhile
    backend._fold()
    assert len(tunnels.locked_reads) == 6  # 12 keys (uplink + downlink), two per batch
    assert not any(tunnels.locked_reads)  # each read without the lock
    assert backend._fold_touched is None
    for u, bearer in bearers.items():
        if u == ue_a:
            assert bearer.ul_packets == 1 + 8  # the fresh read, not the stale one on top
            assert bearer.last_seen == 3.0
        else:
            assert bearer.ul_packets == 1 + 5, u  # B: folded by the sync before its re-use
    (new,) = [b for b in p.bearers.values() if b.ue == reattached]
    assert new.ul_packets == 1  # the old entry's stale counters are not the new bearer's
    # A second fold with nothing new changes nothing.
    before = [(b.ue, b.ul_packets, b.dl_packets) for b in p.bearers.values()]
    backend._fold()
    assert [(b.ue, b.ul_packets, b.dl_packets) for b in p.bearers.values()] == before


def test_a_page_folds_only_its_own_bearers() -> None:
    backend = FastPathBackend(TofConfig(backend="none"))
    maps = {name: BatchMap(backend) for name in ("tunnels", "flows", "downlink", "services")}
    backend._maps = maps  # type: ignore[assignment]
    p = backend.pipeline
    for i in range(10):
        p.from_s1(bearer_frames(i)[0], ENB, 1.0)
    backend._sync()
    for key, value in list(maps["tunnels"].data.items()):
        ue = L.TUNNEL_VAL.unpack(value)[4]
        maps["tunnels"].data[key] = L.TUNNEL_VAL.pack(7, 70, 0, 0, ue)
    total, rows = backend.tunnel_page(None, 2, 3)
    assert total == 10
    assert [r["uplink"]["packets"] for r in rows] == [8] * 3  # type: ignore[index]
    assert sorted(b.ul_packets for b in p.bearers.values()) == [1] * 7 + [8] * 3
    assert maps["tunnels"].locked_reads == []  # no walk of the map


def test_tunnels_folds_and_lists_every_bearer_in_short_holds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(backend_module, "FOLD_CHUNK", 2)
    backend = FastPathBackend(TofConfig(backend="none"))
    maps = {name: BatchMap(backend) for name in ("tunnels", "flows", "downlink", "services")}
    backend._maps = maps  # type: ignore[assignment]
    p = backend.pipeline
    for i in range(5):
        p.from_s1(bearer_frames(i)[0], ENB, 1.0)
    backend._sync()
    for key, value in list(maps["tunnels"].data.items()):
        ue = L.TUNNEL_VAL.unpack(value)[4]
        maps["tunnels"].data[key] = L.TUNNEL_VAL.pack(4, 40, 0, 0, ue)
    rows = backend.tunnels()
    assert sorted(str(r["ue"]) for r in rows) == sorted(f"10.0.0.{i}" for i in range(5))
    assert [r["uplink"]["packets"] for r in rows] == [5] * 5  # type: ignore[index]
    assert len(maps["tunnels"].locked_reads) == 3  # 5 keys, two per batch, none locked
    assert not any(maps["tunnels"].locked_reads)


class LookupMap(BatchMap):
    """Records, per single-key lookup, whether the agent's lock was held."""

    def __init__(self, backend: FastPathBackend) -> None:
        super().__init__(backend)
        self.lookups: list[bool] = []

    def lookup(self, key: bytes) -> bytes | None:
        self.lookups.append(self.backend._lock.locked())
        return super().lookup(key)


def _backend_with_counters(
    bearers: int, packets: int
) -> tuple[FastPathBackend, dict[str, LookupMap]]:
    """A fast path backend on lookup-counting maps, ``bearers`` learned, each bearer's kernel
    entry holding ``packets`` uplink packets (``10 * packets`` bytes)."""
    backend = FastPathBackend(TofConfig(backend="none"))
    maps = {name: LookupMap(backend) for name in ("tunnels", "flows", "downlink", "services")}
    backend._maps = maps  # type: ignore[assignment]
    for i in range(bearers):
        backend.pipeline.from_s1(bearer_frames(i)[0], ENB, 1.0)
    backend._sync()
    tunnels = maps["tunnels"]
    for key, value in list(tunnels.data.items()):
        ue = L.TUNNEL_VAL.unpack(value)[4]
        tunnels.data[key] = L.TUNNEL_VAL.pack(packets, 10 * packets, 0, 0, ue)
    return backend, maps


def test_a_keyset_page_folds_only_its_own_bearers_under_the_lock() -> None:
    """``GET /tunnels?limit=N``: the page's bearers' entries are looked up one by one under the
    agent's lock (their rows agree with the kernel), no map is walked, the others wait."""
    backend, maps = _backend_with_counters(10, 7)
    p, tunnels = backend.pipeline, maps["tunnels"]
    rows, marker = backend.tunnels_after(None, 3)
    assert marker is not None
    assert [r["uplink"]["packets"] for r in rows] == [8] * 3  # type: ignore[index]
    assert sorted(b.ul_packets for b in p.bearers.values()) == [1] * 7 + [8] * 3
    assert tunnels.lookups == [True] * 3  # one uplink key per bearer, under the lock
    assert tunnels.locked_reads == []  # no walk of the map
    walked = list(rows)
    while marker is not None:
        rows, marker = backend.tunnels_after(marker, 3)
        walked += rows
    assert [r["uplink"]["packets"] for r in walked] == [8] * 10  # type: ignore[index]
    ordered = sorted(p.bearers.values(), key=lambda b: b.key)
    assert [r["ue"] for r in walked] == [b.to_api()["ue"] for b in ordered]
    assert tunnels.locked_reads == []


def test_a_keyset_page_without_limit_is_a_full_fold_in_short_holds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``?after=`` without ``limit`` may be the whole table: folded as ``tunnels()`` folds (the
    maps read in batches outside the lock), not bearer by bearer under it."""
    monkeypatch.setattr(backend_module, "FOLD_CHUNK", 2)
    backend, maps = _backend_with_counters(5, 4)
    tunnels = maps["tunnels"]
    first, marker = backend.tunnels_after(None, 1)
    assert marker is not None
    tunnels.lookups.clear()
    rows, last = backend.tunnels_after(marker, None)
    assert last is None
    assert len(rows) == 4
    assert [r["uplink"]["packets"] for r in first + rows] == [5] * 5  # type: ignore[index]
    assert tunnels.lookups == []  # no key-by-key fold
    assert tunnels.locked_reads
    assert not any(tunnels.locked_reads)
