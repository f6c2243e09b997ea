"""Offloaded uplink packets: routed by the program when the kernel knows the way, through the
apps TUN otherwise, and the app gets the same bytes from both paths."""

from __future__ import annotations

import socket

import pytest

from fluidedge.linux.netns import call_in_netns
from fluidedge.linux.proc import run
from fluidedge.tof.fastpath.backend import FastPathBackend
from fluidedge.tof.models import Service
from tests.fixtures.netns import snmp_counters

from .scenario import APP, APP_PORT, ENB1, SVC, UE1, P, config, inner_udp, learn_bearer, up
from .topo import APP_IP, Topo, topology

pytestmark = pytest.mark.root

COUNT = 20


def _forwarded(t: Topo) -> int:
    """IP datagrams the host namespace's kernel forwarded (``Ip: ForwDatagrams``)."""
    return snmp_counters(t.host)["Ip"]["ForwDatagrams"]


def _offloaded(backend: FastPathBackend) -> int:
    fast = backend.stats()["fastpath"]
    assert isinstance(fast, dict)
    return int(fast["offloaded_uplink"])


def _burst(t: Topo, first: int) -> list[bytes]:
    """COUNT offloaded datagrams, numbered; what the app received (IPv4 UDP only)."""
    for i in range(first, first + COUNT):
        body = i.to_bytes(4, "big")
        t.send("enb", up(ENB1, 0x100, inner_udp(UE1, P(SVC), 41000, APP_PORT, body)))
    return [f[14:] for f in t.collect(0.3)["app"] if f[12:14] == b"\x08\x00" and f[23] == 17]


def test_routed_by_the_program_or_by_the_kernel_same_bytes() -> None:
    with topology("o") as t:
        # A socket on the app's port, so the app sends no ICMP errors (which the kernel would
        # forward back toward the UE, blurring the count of forwarded datagrams).
        sink = call_in_netns(t.app, lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
        sink.bind((APP_IP, APP_PORT))
        backend = FastPathBackend(config(t))
        backend.start()
        try:
            backend.apply({"web": Service("web", SVC, APP_IP)})
            learn_bearer(t)
            # The flow's first packet goes through the agent (and the TUN): the app's
            # neighbour entry exists afterwards.
            t.send("enb", up(ENB1, 0x100, inner_udp(UE1, P(SVC), 41000, APP_PORT, b"first")))
            t.collect(0.3)
            before_forwarded, before_kernel = _forwarded(t), _offloaded(backend)
            routed = _burst(t, 0)
            assert len(routed) == COUNT
            assert _offloaded(backend) == before_kernel + COUNT  # the kernel did the work...
            assert _forwarded(t) == before_forwarded  # ...and routed it without the IP stack
            # Forget the app's MAC: the program cannot resolve it and hands packets to the TUN,
            # where the kernel resolves the neighbour and forwards them.
            run(["ip", "-n", t.host, "neigh", "flush", "dev", "apps"])
            before_forwarded = _forwarded(t)
            via_kernel = _burst(t, 0)
            assert len(via_kernel) == COUNT
            assert _forwarded(t) > before_forwarded
        finally:
            backend.stop()
            sink.close()
    # The same datagrams, byte for byte (TTL decremented, checksums right) on both paths.
    assert sorted(routed) == sorted(via_kernel)
    for packet in routed:
        assert packet[16:20] == APP
        assert packet[8] == 63  # TTL 64, minus one hop
