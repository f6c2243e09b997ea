"""Lawful-intercept mirroring with real traffic, on both backends (docs/accounting.md): on the
minimal S1 topology, two UEs of one service exchange varied packets with the app; UE1 is
intercepted. The mirror (a pcap file, or a mirror interface captured independently) holds
exactly UE1's offloaded packets both ways, decapsulated, as the app received and sent them
(compared with the app side's capture and with what the app sent), none of UE2's; on the fast
path most of them were copied by the kernel (bpf_clone_redirect). Start and stop under traffic:
the copies are one unbroken run of the sender's sequence numbers, and nothing after the stop."""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from fluidedge.codec.net import ipv4, udp
from fluidedge.core.store import Store
from fluidedge.linux.netns import call_in_netns
from fluidedge.linux.packet import packet_socket
from fluidedge.linux.proc import run
from fluidedge.linux.sockbuf import size_buffers
from fluidedge.tof.fastpath.backend import FastPathBackend
from fluidedge.tof.intercept.manager import InterceptManager
from fluidedge.tof.intercept.model import InterceptConfig, NewInterceptModel, read_pcap
from fluidedge.tof.models import Service
from fluidedge.tof.userspace import UserspaceBackend
from tests.fixtures.wait import scaled, wait_until
from tests.functional.tof_fastpath.scenario import (
    APP,
    APP_PORT,
    ENB1,
    ENB2,
    PDN,
    SVC,
    UE1,
    UE2,
    P,
    config,
    down,
    inner_udp,
    up,
)
from tests.functional.tof_fastpath.topo import APP_IP, Topo, topology

pytestmark = pytest.mark.root

PORTS = {UE1: 41000, UE2: 42000}
Backend = UserspaceBackend | FastPathBackend


def norm(packet: bytes) -> bytes:
    """An IPv4 packet without its TTL and header checksum (the host's routing between the
    TOF and the app takes one hop: the copies are taken on the TOF's side of it)."""
    return packet[:8] + b"\x00" + packet[9:10] + b"\x00\x00" + packet[12:]


def _ue(packet: bytes, *, src: bool) -> bytes:
    return packet[12:16] if src else packet[16:20]


def _csum(data: bytes) -> int:
    """The Internet checksum over ``data`` (0 when a packet's checksum is right)."""
    if len(data) % 2:
        data += b"\x00"
    total = sum(int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _seq(packet: bytes) -> int:
    return int.from_bytes(packet[28:32], "big")


class Lab:
    def __init__(self, t: Topo, backend: Backend, manager: InterceptManager) -> None:
        self.t, self.backend, self.manager = t, backend, manager
        self.raw = call_in_netns(
            t.app, lambda: socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
        )
        # A listener, so the app's kernel sends no port unreachable errors back.
        self.sink = call_in_netns(t.app, lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
        self.sink.bind((APP_IP, APP_PORT))

        # An independent capture of what the app sends (the kernel sets the IP ID).
        def options(s: socket.socket) -> None:
            size_buffers(s, receive=8 << 20)  # past a stock host's rmem_max
            s.setblocking(False)

        self.sent = call_in_netns(t.app, lambda: packet_socket("eth0", setup=options))

    def app_sent(self) -> list[bytes]:
        """The IPv4 packets the app sent since the last call."""
        out = []
        while True:
            try:
                frame, address = self.sent.recvfrom(65536)
            except BlockingIOError:
                return out
            if address[2] == socket.PACKET_OUTGOING and frame[12:14] == b"\x08\x00":
                out.append(frame[14:])

    def uplink(self, ue: bytes, seq: int, size: int) -> None:
        teid = 0x100 if ue == UE1 else 0x301
        enb = ENB1 if ue == UE1 else ENB2
        body = seq.to_bytes(4, "big") + bytes(size)
        self.t.send("enb", up(enb, teid, inner_udp(ue, P(SVC), PORTS[ue], APP_PORT, body)))

    def downlink(self, ue: bytes, seq: int, size: int) -> bytes:
        body = seq.to_bytes(4, "big") + bytes(size)
        packet = ipv4.encode(APP, ue, 17, udp.encode(APP, ue, APP_PORT, PORTS[ue], body))
        self.raw.sendto(packet, (str(ipaddress.ip_address(ue)), 0))
        return packet


@pytest.fixture(params=["userspace", "fastpath"])
def lab(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Lab]:
    kind = str(request.param)
    with topology(f"li{kind[0]}") as t:
        cfg = config(t)
        backend: Backend = FastPathBackend(cfg) if kind == "fastpath" else UserspaceBackend(cfg)
        backend.start()
        store = Store(tmp_path / "db.sqlite")
        manager = InterceptManager(
            store, backend.set_mirrors, InterceptConfig(), tmp_path, cfg.netns
        )
        manager.restore()
        lab = Lab(t, backend, manager)
        try:
            for ue, enb, ul, dl in ((UE1, ENB1, 0x100, 0x200), (UE2, ENB2, 0x301, 0x302)):
                t.send("enb", up(enb, ul, inner_udp(ue, PDN, 40000, 53, b"learn")))
                t.send("sgw", down(enb, dl, inner_udp(PDN, ue, 53, 40000, b"learn")))
            backend.apply({"web": Service("web", SVC, APP_IP)})
            t.collect(0.3)
            yield lab
        finally:
            manager.stop()
            lab.raw.close()
            lab.sink.close()
            lab.sent.close()
            backend.stop()
            store.close()


def _nonblocking(s: socket.socket) -> None:
    s.setblocking(False)


def _add(manager: InterceptManager, **dest: str) -> str:
    body = {"name": "case1", "target": {"ue": "198.18.100.1"}, "destination": dest}
    it = manager.add(NewInterceptModel.model_validate(body))
    return it.pcap or ""


def _records(path: str) -> list[bytes]:
    return [packet for _, packet in read_pcap(Path(path).read_bytes())]


def test_the_mirror_holds_exactly_the_targets_offloaded_packets(lab: Lab) -> None:
    t = lab.t
    # The flows' first packets (the fast path's agent makes the flows), before the intercept.
    for ue in (UE1, UE2):
        lab.uplink(ue, 0, 10)
    t.collect(0.3)
    pcap = _add(lab.manager, pcap="case1.pcap")
    for seq in range(1, 61):
        for ue in (UE1, UE2):
            lab.uplink(ue, seq, 10 + 17 * seq)
            lab.downlink(ue, seq, 1200 - 13 * seq)
        if seq % 10 == 0:
            time.sleep(0.01)
    got = t.collect(0.5)
    at_app = [f[14:] for f in got["app"] if f[12:14] == b"\x08\x00" and f[23] == 17]
    up1 = [p for p in at_app if _ue(p, src=True) == UE1]
    assert len(up1) == 60  # every packet offloaded to the app
    to_enb = [f[50:] for f in got["enb"] if len(f) > 50 and f[42] == 0x30]
    back = [p for p in to_enb if _ue(p, src=False) == UE1]
    assert len(back) == 60, [(p[9], p[12:16].hex(), len(p), _seq(p)) for p in back]
    down1 = [p for p in lab.app_sent() if _ue(p, src=False) == UE1 and p[9] == 17]
    assert len(down1) == 60
    # The target's replies reached the eNB intact: reverse-NATed, checksums right, payloads
    # those the app sent (the fast path's copy adds and reuses head room: nothing disturbed).
    assert sorted(p[28:] for p in back) == sorted(p[28:] for p in down1)
    for p in back:
        assert p[12:16] == P(SVC)
        assert _csum(p[:20]) == 0
        pseudo = p[12:20] + b"\x00\x11" + len(p[20:]).to_bytes(2, "big")
        assert _csum(pseudo + p[20:]) == 0
    lab.manager.delete("case1")  # the writer finishes: the file is complete
    records = _records(pcap)
    ups = [norm(p) for p in records if _ue(p, src=True) == UE1]
    downs = [norm(p) for p in records if _ue(p, src=False) == UE1]
    assert len(ups) + len(downs) == len(records)  # nothing of UE2's
    # Both directions, exactly: uplink as the app received it, downlink as the app sent it.
    assert sorted(ups) == sorted(norm(p) for p in up1)
    assert sorted(downs) == sorted(norm(p) for p in down1)
    assert all(_ue(p, src=False) == APP for p in records if _ue(p, src=True) == UE1)
    times = [ts for ts, _ in read_pcap(Path(pcap).read_bytes())]
    assert all(abs(ts / 1e9 - time.time()) < 60 for ts in times)
    if isinstance(lab.backend, FastPathBackend):
        fast = lab.backend.stats()["fastpath"]
        assert isinstance(fast, dict)
        # The kernel offloaded (and so copied) nearly all of them; nothing failed.
        assert fast["offloaded_uplink"] >= 100
        assert fast["offloaded_downlink"] >= 100
        assert fast["errors"] == 0


def test_start_and_stop_under_traffic(lab: Lab) -> None:
    t = lab.t
    lab.uplink(UE1, 0, 10)
    t.collect(0.3)
    stop = threading.Event()
    sent = [0]

    def traffic() -> None:
        seq = 1
        while not stop.is_set():
            lab.uplink(UE1, seq, 100)
            lab.downlink(UE1, seq, 100)
            sent[0] = seq
            seq += 1
            time.sleep(0.002)

    thread = threading.Thread(target=traffic)
    thread.start()
    try:
        time.sleep(scaled(0.3))
        pcap = _add(lab.manager, pcap="run.pcap")
        time.sleep(scaled(0.5))
        lab.manager.delete("case1")
        size = Path(pcap).stat().st_size
        time.sleep(scaled(0.3))
    finally:
        stop.set()
        thread.join()
    got = t.collect(0.3)
    assert Path(pcap).stat().st_size == size  # nothing after the stop
    records = _records(pcap)
    for src in (True, False):  # uplink (UE1 is the source), downlink
        seqs = [_seq(p) for p in records if _ue(p, src=src) == UE1]
        assert len(seqs) >= 10
        # One unbroken run: every offloaded packet between the start and the stop.
        assert sorted(seqs) == list(range(min(seqs), max(seqs) + 1))
        assert min(seqs) > 1
        assert max(seqs) < sent[0]
    delivered = {_seq(f[14:]) for f in got["app"] if f[12:14] == b"\x08\x00" and f[23] == 17}
    assert delivered >= set(range(1, sent[0] + 1))  # the target's traffic: all of it went on


@contextlib.contextmanager
def _mirror_pair(t: Topo, *, up: bool) -> Iterator[socket.socket]:
    """A veth pair limir0/limir1 in the TOF's namespace (limir0 the mirror interface, up or
    down) and a socket reading limir1; both gone afterwards."""
    run(["ip", "-n", t.host, "link", "add", "limir0", "type", "veth", "peer", "name", "limir1"])
    try:
        for dev in ("limir0", "limir1"):
            sysctl = f"net.ipv6.conf.{dev}.disable_ipv6=1"
            run(["ip", "netns", "exec", t.host, "sysctl", "-qw", sysctl])
        for dev in ("limir0", "limir1") if up else ("limir1",):
            run(["ip", "-n", t.host, "link", "set", dev, "up"])
        sniff = call_in_netns(t.host, lambda: packet_socket("limir1", setup=_nonblocking))
        try:
            yield sniff
        finally:
            sniff.close()
    finally:
        run(["ip", "-n", t.host, "link", "del", "limir0"], check=False)


def test_a_mirror_interface_gets_the_copies_as_frames(lab: Lab) -> None:
    t = lab.t
    with _mirror_pair(t, up=True) as sniff:
        lab.uplink(UE1, 0, 10)
        lab.uplink(UE2, 0, 10)
        t.collect(0.3)
        _add(lab.manager, interface="limir0")
        for seq in range(1, 21):
            lab.uplink(UE1, seq, 50 + seq)
            lab.uplink(UE2, seq, 50 + seq)
            lab.downlink(UE1, seq, 70 + seq)
            lab.downlink(UE2, seq, 70 + seq)
        got = t.collect(0.5)
        lab.manager.delete("case1")
        frames: list[bytes] = []
        deadline = time.monotonic() + scaled(2)
        while time.monotonic() < deadline:
            try:
                frames.append(sniff.recv(65536))
            except BlockingIOError:
                if len(frames) >= 40:
                    break
                time.sleep(0.05)
        copies = [f[14:] for f in frames if f[12:14] == b"\x08\x00"]
        ups = sorted(_seq(p) for p in copies if _ue(p, src=True) == UE1)
        downs = sorted(_seq(p) for p in copies if _ue(p, src=False) == UE1)
        assert ups == list(range(1, 21))
        assert downs == list(range(1, 21))
        assert len(copies) == 40  # none of UE2's
        at_app = {norm(f[14:]) for f in got["app"] if f[12:14] == b"\x08\x00"}
        assert {norm(p) for p in copies if _ue(p, src=True) == UE1} <= at_app


def _drain(sock: socket.socket) -> list[bytes]:
    frames: list[bytes] = []
    while True:
        try:
            frames.append(sock.recv(65536))
        except BlockingIOError:
            return frames


def test_copies_a_down_mirror_interface_cannot_take_are_counted(lab: Lab) -> None:
    """A copy that cannot be sent (the mirror interface down) is counted in the intercept's
    own stats, on both data planes: the userspace writer's send fails (``errors``), the fast
    path's ``bpf_clone_redirect`` is refused (``dropped``, folded from the program's count in
    the intercept's map entry). The target's traffic goes on; with the interface up again the
    copies arrive and the counts stay."""
    t = lab.t
    with _mirror_pair(t, up=False) as sniff:  # limir0, the mirror: down
        lab.uplink(UE1, 0, 10)
        t.collect(0.3)
        _add(lab.manager, interface="limir0")
        for seq in range(1, 21):
            lab.uplink(UE1, seq, 50 + seq)
            lab.downlink(UE1, seq, 70 + seq)
        got = t.collect(0.5)
        delivered = {_seq(f[14:]) for f in got["app"] if f[12:14] == b"\x08\x00" and f[23] == 17}
        assert delivered >= set(range(1, 21))  # the target's traffic went on

        def lost() -> int:
            stats = lab.manager.get("case1")["stats"]
            assert isinstance(stats, dict)
            return int(stats["dropped"]) + int(stats["errors"])

        counted = wait_until(lambda: lost() == 40, timeout=scaled(5))
        stats = lab.manager.get("case1")["stats"]
        assert counted, stats
        assert isinstance(stats, dict)
        kind = "dropped" if isinstance(lab.backend, FastPathBackend) else "errors"
        assert stats[kind] == 40, stats
        run(["ip", "-n", t.host, "link", "set", "limir0", "up"])
        _drain(sniff)
        for seq in range(21, 26):
            lab.uplink(UE1, seq, 50)
        t.collect(0.3)
        assert wait_until(lambda: len([f for f in _drain(sniff) if f[12:14] == b"\x08\x00"]) >= 5)
        time.sleep(scaled(1.2))  # a fold of the program's count (every second)
        assert lost() == 40


def test_the_fast_path_removes_intercept_veths_a_killed_agent_left() -> None:
    with topology("lik") as t:
        run(
            [
                "ip",
                "-n",
                t.host,
                "link",
                "add",
                "fei0a1b2ca",
                "type",
                "veth",
                "peer",
                "name",
                "fei0a1b2cb",
            ]
        )
        backend = FastPathBackend(config(t))
        backend.start()
        try:
            links = run(["ip", "-n", t.host, "-o", "link", "show"]).stdout
            assert "fei0a1b2c" not in links
        finally:
            backend.stop()


@pytest.mark.parametrize("lab", ["fastpath"], indirect=True)
def test_a_mirror_port_deleted_from_outside_is_made_again(lab: Lab) -> None:
    """``ip link del`` of an intercept's veth: the program's copies go nowhere (``refused``)
    and its reader ends, so the intercept is deaf. The fast path's check makes the port
    again; the copies reach the pcap again."""
    assert isinstance(lab.backend, FastPathBackend)
    t = lab.t
    lab.uplink(UE1, 0, 10)  # the flow's first packet (the agent makes the flow)
    t.collect(0.3)
    pcap = _add(lab.manager, pcap="case1.pcap")
    assert lab.backend.heal() == []
    dev = lab.backend._mirror_ports["case1"][0]
    run(["ip", "-n", t.host, "link", "del", dev])
    for seq in range(1, 11):
        lab.uplink(UE1, seq, 10)
    t.collect(0.3)
    assert lab.backend.heal() == ["the mirror port of intercept case1 re-created"]
    assert lab.backend._mirror_ports["case1"][0] != dev
    for seq in range(11, 31):
        lab.uplink(UE1, seq, 10)
    got = t.collect(0.5)
    at_app = [f[14:] for f in got["app"] if f[12:14] == b"\x08\x00" and f[23] == 17]
    assert len([p for p in at_app if _ue(p, src=True) == UE1]) == 20
    assert lab.backend.heal() == []
    lab.manager.delete("case1")
    copied = {_seq(p) for p in _records(pcap) if _ue(p, src=True) == UE1}
    assert set(range(11, 31)) <= copied  # every packet after the check
    assert not any("mirror" in key for key in lab.backend.stats()["io"])  # type: ignore[union-attr]
