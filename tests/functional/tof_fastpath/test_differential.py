"""Differential test: the same packet script through the userspace reference and the fast path
must produce byte-identical frames on every side (modulo :func:`scenario.normalise`)."""

from __future__ import annotations

import pytest

from fluidedge.tof.fastpath.backend import FastPathBackend
from fluidedge.tof.tunnel_pages import row_marker
from fluidedge.tof.userspace import UserspaceBackend

from .scenario import APP, Backend, Outputs, config, normalise, run_script
from .topo import topology

pytestmark = pytest.mark.root


def _counters(snapshot: dict[str, object]) -> tuple[list[dict[str, object]], object]:
    rows = snapshot["tunnels"]
    stats = snapshot["stats"]
    pages = snapshot["pages"]
    assert isinstance(rows, list)
    assert isinstance(stats, dict)
    assert isinstance(pages, list)
    drop = ("learnedAt", "lastSeen")
    tunnels = sorted(({k: v for k, v in r.items() if k not in drop} for r in rows), key=repr)
    # The pages of one bearer, read before tunnels() and its full fold, show the same rows in
    # marker order: each page folded its own bearer's kernel counters.
    assert [len(page) for page in pages] == [1] * len(rows)
    paged = [{k: v for k, v in page[0].items() if k not in drop} for page in pages]
    by_marker = sorted(rows, key=row_marker)
    assert paged == [{k: v for k, v in r.items() if k not in drop} for r in by_marker]
    return tunnels, stats["services"]


def _run(kind: str) -> tuple[list[tuple[str, Outputs]], tuple[list[dict[str, object]], object]]:
    snapshot: dict[str, object] = {}
    with topology(kind[0]) as t:
        cfg = config(t)
        backend: Backend = FastPathBackend(cfg) if kind == "fastpath" else UserspaceBackend(cfg)
        backend.start()
        try:
            results = run_script(t, backend, snapshot=snapshot)
            stats = backend.stats()
        finally:
            backend.stop()
    if kind == "fastpath":
        fast = stats["fastpath"]
        assert isinstance(fast, dict)
        # The point of the fast path: the kernel did most of the work.
        assert fast["passthrough_uplink"] > 0
        assert fast["passthrough_downlink"] > 0
        assert fast["offloaded_uplink"] > 0
        assert fast["offloaded_downlink"] > 0
        assert fast["errors"] == 0
        # Past the parsing bound, and with a UDP length the pipeline rejects: the agent's.
        assert fast["punt_extension_chain"] >= 2
        assert fast["punt_outer_udp_length"] == 3
    return results, _counters(snapshot)


def _norm(results: list[tuple[str, Outputs]]) -> list[tuple[str, dict[str, list[bytes]]]]:
    out = []
    for name, sides in results:
        kept = {
            side: [n for f in frames if (n := normalise(side, f)) is not None]
            for side, frames in sides.items()
        }
        out.append((name, kept))
    return out


def test_fastpath_output_is_byte_identical_to_reference() -> None:
    reference_run, (reference_tunnels, reference_services) = _run("userspace")
    fast_run, (fast_tunnels, fast_services) = _run("fastpath")
    reference, fast = _norm(reference_run), _norm(fast_run)
    assert [n for n, _ in reference] == [n for n, _ in fast]
    for (name, ref_sides), (_, fast_sides) in zip(reference, fast, strict=True):
        for side in ("enb", "sgw", "app"):
            assert fast_sides[side] == ref_sides[side], f"step {name!r}, side {side}"
    # Counters of kernel-forwarded traffic are folded back: the API shows the same numbers.
    assert fast_tunnels == reference_tunnels
    assert fast_services == reference_services
    assert len(reference_tunnels) >= 3  # ue1@enb1, ue3@enb2 (colliding TEID), ue2 (Pinger)
    assert reference_services  # the service existed at the snapshot: non-trivial counters
    # The script really exercised every path (guards against an empty, trivially equal run).
    by_step = dict(reference)
    assert by_step["learn-up"]["sgw"]
    assert by_step["offload"]["app"]
    assert by_step["reply"]["enb"]
    assert by_step["icmp-error-down"]["enb"]  # the app's error, quote translated, to the eNB
    (error_up,) = [f for f in by_step["icmp-error-up"]["app"] if f[23] == 1]
    assert error_up[14 + 20 + 8 + 12 : 14 + 20 + 8 + 16] == APP  # quoted source translated
    assert by_step["pinger-start"]["sgw"]
    assert by_step["pinger-reply"]["enb"]  # the queued reply, flushed; echo reply swallowed
