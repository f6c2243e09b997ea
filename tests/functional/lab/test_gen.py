"""Generator mode: pcaps from the lab's bearers, offered into S1 and counted at the SGWs."""

from __future__ import annotations

import pytest

from fluidedge.lab.gen import FRAME_SIZES, Generator
from fluidedge.lab.lab import Lab
from fluidedge.lab.packets import dissect_pcap
from tests.fixtures.lab import LabFactory

pytestmark = pytest.mark.root


@pytest.fixture(scope="module")
def lab(module_lab_factory: LabFactory) -> Lab:
    return module_lab_factory(mode="bridge")


def test_streams_hold_the_bearers_tunnels(lab: Lab) -> None:
    streams = Generator(lab).write_streams()
    names = {s.name for s in streams}
    assert names == {f"{k}-{n}" for k in ("plain", "psc") for n in [*map(str, FRAME_SIZES), "imix"]}
    for s in streams:
        frames = dissect_pcap(s.pcap)
        assert len(frames) == s.frames
        assert all(f.is_gpdu for f in frames)
        tunnels = {(f.src, f.dst, f.teid) for f in frames}
        assert tunnels == {(b.enb_address, b.sgw_address, b.ul_teid) for b in lab.bearers}
        assert {f.qfi is not None for f in frames} == {s.name.startswith("psc")}
    sizes = {s.name: s.sizes for s in streams}
    assert sizes["plain-1518"] == (1518,)
    assert sizes["plain-64"] == (82,)  # the smallest G-PDU with inner IPv4/UDP
    assert sizes["psc-imix"] == (90, 594, 1518)


@pytest.mark.parametrize("tool", ["auto", "tcpreplay"])
def test_paced_offer_counts_arrivals_at_the_sgws(lab: Lab, tool: str) -> None:
    gen = Generator(lab)
    stream = next(s for s in gen.write_streams() if s.name == "plain-256")
    before = {n: gen_stats(lab, n) for n in lab.sgws}
    result = gen.offer(stream.pcap, pps=2000, duration=0.5, tool=tool)  # type: ignore[arg-type]
    assert result.sent > 0
    assert result.received == result.sent  # bridged: nothing lost at this rate
    assert 500 < result.pps < 4000
    # the generator frames were dropped at the SGWs' ingress, never reaching the emulators
    after = {n: gen_stats(lab, n) for n in lab.sgws}
    assert sum(after.values()) - sum(before.values()) < 50


def test_full_rate_offer_with_trafgen(lab: Lab) -> None:
    gen = Generator(lab)
    stream = next(s for s in gen.write_streams() if s.name == "psc-imix")
    result = gen.offer(stream.pcap, duration=0.5, tool="trafgen")
    assert result.sent > 1000
    assert 0 < result.received <= result.sent
    assert result.pps > 1000


def gen_stats(lab: Lab, sgw: str) -> int:
    import json

    doc = json.loads((lab.run_dir / f"{sgw}.stats.json").read_text())
    return int(doc["counters"]["gtpu_rx"])


def test_offer_without_a_forwarder_receives_nothing(lab_factory: LabFactory) -> None:
    lab = lab_factory(mode="tof")  # S1 interfaces up but unbridged, no TOF running
    gen = Generator(lab)
    stream = next(s for s in gen.write_streams() if s.name == "psc-64")
    result = gen.offer(stream.pcap, pps=2000, duration=0.3)
    assert result.sent > 0
    assert result.received == 0
    assert result.loss == 1.0
