"""Chains inside a real daemon on a ``linuxbridge`` instance network (the tc/eBPF data plane).

Objects declared over REST steer real traffic between two hosts through transparent functions
(namespaces on the daemon's bridge); a sequence-numbered stream keeps flowing across a restart
and a kill -9 of the daemon (the kernel holds the programs: nothing is lost or reordered, and
the flow keeps its function), the restarted daemon re-installs the same ports, a function
whose legs vanish is left at once, and deleting the chain gives the ends back to the bridge.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import struct
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from fluidedge.chains.linuxbridge import PREF
from fluidedge.core.client import Client
from fluidedge.linux import netns as netns_mod
from fluidedge.linux import tc
from fluidedge.linux.proc import CommandError, run
from fluidedge.linux.sockbuf import size_buffers
from tests.e2e.chains.cleanup import purge_daemon_state
from tests.fixtures.daemon import DaemonHandle
from tests.fixtures.wait import wait_until
from tests.functional.chains import udp_stream
from tests.functional.chains.chain_lab import (
    Function,
    echo,
    owners,
    plug_function_linux,
)

pytestmark = pytest.mark.root

TAG = f"cl{os.getpid() % 100000}"
NET = TAG
NS = f"fe{TAG}-sw"
BRIDGE = f"fe{TAG}"[:15]
SUBNET = "198.18.47"
PORT = 7000


@pytest.fixture
def lb_daemon(
    daemon_factory: Callable[..., DaemonHandle], tmp_path: Path
) -> Iterator[DaemonHandle]:
    state = tmp_path / "state"
    netns_mod.create(NS)
    made: list[str] = []
    functions: list[Function] = []
    try:
        handle = daemon_factory(
            state_dir=state,
            parts={
                "instances": {
                    "pool_scale": 0,
                    "memory_mb": 1024,
                    "builtin_templates": False,
                    "networks": {NET: {"bridge": BRIDGE, "netns": NS, "subnet": f"{SUBNET}.0/24"}},
                },
                "chains": {"poll_interval": 0.2},
            },
        )
        handle.namespaces = made  # type: ignore[attr-defined]
        handle.functions = functions  # type: ignore[attr-defined]
        try:
            yield handle
        finally:
            handle.stop()
    finally:
        purge_daemon_state(state, NS)
        for fn in functions:
            for s in fn.sockets.values():
                s.close()
        for ns in made:
            netns_mod.delete(ns)
        netns_mod.delete(NS)


def _host(handle: DaemonHandle, name: str, last: int) -> str:
    """A host namespace with ``eth0`` on the daemon's bridge; its bridge port's name."""
    ns, dev = f"{TAG}{name}", f"{TAG}{name}p"
    netns_mod.create(ns)
    handle.namespaces.append(ns)  # type: ignore[attr-defined]
    run(["ip", "-n", NS, "link", "add", dev, "type", "veth", "peer", "name", "eth0",
         "netns", ns])  # fmt: skip
    run(["ip", "-n", NS, "link", "set", dev, "master", BRIDGE, "up"])
    run(["ip", "-n", ns, "addr", "add", f"{SUBNET}.{last}/24", "dev", "eth0"])
    run(["ip", "-n", ns, "link", "set", "eth0", "up"])
    return dev


def _function(handle: DaemonHandle, name: str) -> Function:
    fn = Function(name, f"{TAG}{name}", f"{TAG}{name}i", f"{TAG}{name}o")
    handle.namespaces.append(fn.netns)  # type: ignore[attr-defined]
    handle.functions.append(fn)  # type: ignore[attr-defined]
    plug_function_linux(fn, NS, BRIDGE)
    return fn


def _steered(ports: list[str]) -> set[str]:
    """Which of ``ports`` carry the chains' program."""
    out = set()
    for port in ports:
        with contextlib.suppress(CommandError):  # a port that is gone carries nothing
            if f"pref {PREF} bpf" in tc.show_filters(NS, port, "ingress"):
                out.add(port)
    return out


def _socket(ns: str, kind: int = socket.SOCK_DGRAM) -> socket.socket:
    def make() -> socket.socket:
        s = socket.socket(socket.AF_INET, kind)
        s.bind(("0.0.0.0", 0))
        return s

    return netns_mod.call_in_netns(ns, make)


def test_chains_survive_restart_and_kill9_with_traffic_flowing(lb_daemon: DaemonHandle) -> None:
    clients: list[Client] = []
    try:
        _scenario(lb_daemon, clients)
    finally:
        for c in clients:
            c.close()


def _scenario(handle: DaemonHandle, clients: list[Client]) -> None:
    client = handle.client()
    clients.append(client)
    a, b = _host(handle, "a", 1), _host(handle, "b", 2)
    f1, f2 = _function(handle, "f1"), _function(handle, "f2")
    for fn in (f1, f2):
        client.post("/v1/chains/port-pairs", {"id": fn.name, "ingress": fn.ingress,
                                              "egress": fn.egress})  # fmt: skip
    client.post("/v1/chains/port-pair-groups", {"id": "g", "port_pairs": ["f1", "f2"]})
    client.post(
        "/v1/chains/flow-classifiers",
        {"id": "c", "logical_source_port": a, "logical_destination_port": b,
         "protocol": "udp", "destination_port_range_min": PORT,
         "destination_port_range_max": PORT + 1},
    )  # fmt: skip
    client.post("/v1/chains", {"id": "ab", "port_pair_groups": ["g"], "flow_classifiers": ["c"]})
    every = [a, b, f1.ingress, f1.egress, f2.ingress, f2.egress]
    assert _steered(every) == set(every)

    # An echo server on b (port PORT + 1) and a receiver of the stream (PORT).
    stop = threading.Event()

    def bind(port: int) -> socket.socket:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        size_buffers(s, receive=16 << 20)
        s.bind(("0.0.0.0", port))
        s.settimeout(0.2)
        return s

    server = netns_mod.call_in_netns(f"{TAG}b", lambda: bind(PORT + 1))
    receiver = netns_mod.call_in_netns(f"{TAG}b", lambda: bind(PORT))
    received: list[int] = []

    def serve() -> None:
        while not stop.is_set():
            try:
                data, peer = server.recvfrom(64)
                server.sendto(data, peer)
            except OSError:
                continue

    def receive() -> None:
        while not stop.is_set():
            try:
                received.append(struct.unpack("!Q", receiver.recv(64)[:8])[0])
            except OSError:
                continue

    threads = [threading.Thread(target=t, daemon=True) for t in (serve, receive)]
    for t in threads:
        t.start()
    try:
        probe = _socket(f"{TAG}a")
        assert echo(probe, (f"{SUBNET}.2", PORT + 1))
        sport = probe.getsockname()[1]
        owner = owners([f1, f2], PORT + 1)[0][sport]
        count, rate, stream_port = 16000, 2000, 40555
        sender = udp_stream.start(f"{TAG}a", f"{SUBNET}.2", PORT, rate, count, sport=stream_port)
        try:
            assert wait_until(lambda: len(received) > 1000, timeout=20)
            client.close()
            handle.restart()
            client = handle.client()
            clients.append(client)
            assert [c["id"] for c in client.get("/v1/chains")] == ["ab"]
            assert _steered(every) == set(every)  # the same ports, nothing more
            handle.kill9()
            mid = len(received)
            assert wait_until(lambda: len(received) > mid + 1000, timeout=20)  # no daemon
            handle.start()
            client.close()
            client = handle.client()
            clients.append(client)
            out, _ = sender.communicate(timeout=60)
        finally:
            if sender.poll() is None:
                sender.kill()
        assert int(out.split()[0]) == count
        assert wait_until(lambda: len(received) >= count, timeout=10), len(received)
        assert received == list(range(count)), "lost, duplicated or reordered"
        # The probe flow is still on its function (the same hash over the same members).
        for fn in (f1, f2):
            fn.seen()  # what the stream left in the packet sockets
        assert echo(probe, (f"{SUBNET}.2", PORT + 1))
        assert owners([f1, f2], PORT + 1)[0][sport] == owner
        assert _steered(every) == set(every)
        metrics = httpx.get(f"{handle.url}/metrics", timeout=30).text
        found = re.search(
            rf'fluidedge_chains_tc_packets_total{{bridge="{BRIDGE}",what="to_member"}} (\d+)',
            metrics,
        )
        assert found, metrics
        assert int(found[1]) >= 2  # this daemon's program steered the probe both ways

        # The probe's function instance goes: its flows move to the other at once.
        gone, other = (f1, f2) if owner == "f1" else (f2, f1)
        run(["ip", "-n", NS, "link", "del", gone.ingress])
        run(["ip", "-n", NS, "link", "del", gone.egress])
        assert echo(probe, (f"{SUBNET}.2", PORT + 1), timeout=2.0)
        assert owners([other], PORT + 1)[0][sport] == other.name
        # The chain goes: the ends are plain bridge ports again, the legs stay isolated.
        client.delete("/v1/chains/ab")
        assert _steered([a, b, other.ingress, other.egress]) == {other.ingress, other.egress}
        assert echo(probe, (f"{SUBNET}.2", PORT + 1))
        assert tc.isolation(tc.show_filters(NS, other.ingress, "ingress")) == tc.PLUGGED
        probe.close()
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=5)
        server.close()
        receiver.close()
