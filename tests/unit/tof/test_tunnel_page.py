"""``Pipeline.tunnel_page``: one page of the learned bearers, the same rows as ``tunnels()``."""

from __future__ import annotations

import ipaddress

from tests.unit.tof.test_pipeline import ENB1, ENB2, PDN, SGW1, gpdu, pipeline, udp_packet

from fluidedge.tof.backend import NullBackend
from fluidedge.tof.config import TofConfig
from fluidedge.tof.pipeline import ENB, Pipeline


def _learn(n: int) -> Pipeline:
    p = pipeline()
    for i in range(n):
        ue = ipaddress.IPv4Address(0x0A000000 + i).packed
        p.from_s1(gpdu(ENB1 if i % 2 else ENB2, SGW1, i + 1, udp_packet(ue, PDN, 1, 80)), ENB, 1.0)
    return p


def test_pages_are_slices_of_the_whole_table() -> None:
    p = _learn(23)
    whole = p.tunnels()
    assert len(whole) == 23
    for offset in (0, 10, 20, 30):
        total, rows = p.tunnel_page(None, offset, 10)
        assert total == 23
        assert rows == whole[offset : offset + 10]


def test_a_filter_counts_its_matches_and_pages_them() -> None:
    p = _learn(23)
    on_enb1 = [t for t in p.tunnels() if t["enb"] == "198.18.0.11"]
    total, rows = p.tunnel_page(lambda b: b.enb == ENB1, 5, 5)
    assert total == len(on_enb1) == 11
    assert rows == on_enb1[5:10]
    total, rows = p.tunnel_page(lambda b: False, 0, 5)
    assert (total, rows) == (0, [])


def test_the_null_backend_pages_its_pipeline() -> None:
    backend = NullBackend(TofConfig(backend="none"))
    ue = ipaddress.IPv4Address("10.0.0.1").packed
    backend.pipeline.from_s1(gpdu(ENB2, SGW1, 9, udp_packet(ue, PDN, 1, 80)), ENB, 1.0)
    assert backend.tunnel_page(None, 0, 50) == (1, backend.tunnels())
