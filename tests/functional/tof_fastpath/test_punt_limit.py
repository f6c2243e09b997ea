"""A flood of unknown TEIDs is rate-limited in the kernel: switched unchanged, agent not starved."""

from __future__ import annotations

import time

import pytest

from fluidedge.tof.fastpath.backend import FastPathBackend

from .scenario import ENB1, PDN, UE1, config, inner_udp, up
from .topo import topology

pytestmark = pytest.mark.root


def test_unknown_teid_flood_is_bounded_and_nothing_is_lost() -> None:
    with topology("r") as t:
        backend = FastPathBackend(config(t), learn_rate=50, learn_burst=20)
        t_start = time.monotonic()
        backend.start()
        try:
            inner = inner_udp(UE1, PDN, 40000, 53, b"flood")
            frames = [up(ENB1, 0x10000 + i, inner) for i in range(400)]
            for frame in frames:
                t.send("enb", frame)
            got = t.collect(1.0)["sgw"]
            elapsed = time.monotonic() - t_start
            # Every frame reached the SGW side unchanged: learned by the agent or, over the
            # rate, switched by the kernel.
            assert sorted(got) == sorted(frames)
            stats = backend.stats()
            fast, counters = stats["fastpath"], stats["counters"]
            assert isinstance(fast, dict)
            assert isinstance(counters, dict)
            punted = fast["punted_from_enb"]
            assert fast["punt_rate_limited"] > 0
            assert punted + fast["punt_rate_limited"] == len(frames)
            # One global budget for learning: burst + rate x time, whatever the CPU count.
            assert punted <= 20 + 50 * elapsed
            assert fast["punt_limited_learn"] == fast["punt_rate_limited"]
            # The agent learned from every frame it was given (one bearer, its TEID relearned).
            assert counters["tunnels_learned_uplink"] == punted
            # Part of the scenario, not a synchronisation: time refills the learning budget
            # (rate 50/s: 25 tokens in 0.5 s, however slow the machine, for one frame below).
            time.sleep(0.5)
            known = frames[-1]
            t.send("enb", known)  # learned now if it was switched during the flood
            assert t.collect(0.3)["sgw"] == [known]
            before = backend.stats()["fastpath"]
            assert isinstance(before, dict)
            t.send("enb", known)
            assert t.collect(0.3)["sgw"] == [known]
            after = backend.stats()["fastpath"]
            assert isinstance(after, dict)
            assert after["passthrough_uplink"] == before["passthrough_uplink"] + 1
        finally:
            backend.stop()
