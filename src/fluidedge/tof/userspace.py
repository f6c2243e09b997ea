"""The reference data plane: the pure pipeline driven by AF_PACKET sockets and a TUN device.

Ports, all opened inside ``[tof] netns`` (via :func:`fluidedge.linux.netns.call_in_netns`, so
the daemon itself stays in the root namespace):

- eNB side and SGW side: ``AF_PACKET``/``SOCK_RAW`` sockets bound to the two S1 interfaces,
  with ``PACKET_IGNORE_OUTGOING`` (we never see our own transmissions, so nothing loops) and
  ``PACKET_VNET_HDR``: the kernel hands us each frame's checksum/GSO metadata (virtio-net
  header) and we hand it back unchanged with pass-through frames. WHY: a frame sent by a local
  socket on a veth carries a *partial* checksum that only the metadata explains; forwarding the
  bytes without it would make the receiver drop the frame, and completing the checksum would
  change the bytes. With the header, pass-through is byte-identical and still correct, like a
  kernel bridge.
- apps side: a TUN device (``apps_tun``) whose routes for the UE pools (``ue_pools``) bring
  the apps' replies back to us; we write decapsulated + NATed packets into it and the kernel
  routes (and ARPs) them to the app.

One thread runs the loop: ``poll`` all fds, receive up to ``batch`` frames per ready S1 port
with one ``recvmmsg`` (:mod:`fluidedge.tof.mmsg`), hand each to the pipeline, send the
pass-through frames of the burst with one ``sendmmsg`` straight from the receive buffers, send
what else the pipeline returns, and run :meth:`Pipeline.tick` every 50 ms. A lock held per
batch makes :meth:`apply` atomic with respect to packets.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import select
import socket
import struct
import threading
import time
from collections import Counter
from collections.abc import Mapping

from fluidedge.linux.netns import call_in_netns
from fluidedge.linux.proc import CommandError, netns_argv, run
from fluidedge.tof.config import TofConfig
from fluidedge.tof.errors import DataPlaneError
from fluidedge.tof.mmsg import RxRing, TxBatch
from fluidedge.tof.models import Service
from fluidedge.tof.pipeline import APPS, ENB, SGW, Action, Pipeline

ETH_P_ALL = 0x0003
SOL_PACKET = 263
PACKET_ADD_MEMBERSHIP = 1
PACKET_MR_PROMISC = 1
PACKET_VNET_HDR = 15
PACKET_IGNORE_OUTGOING = 23
TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000
VNET_HDR_LEN = 10
NO_VNET_HDR = bytes(VNET_HDR_LEN)
TICK = 0.05
MAX_FRAME = 65536 + VNET_HDR_LEN


def _open_packet_socket(ifname: str) -> socket.socket:
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    try:
        sock.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
        sock.setsockopt(SOL_PACKET, PACKET_VNET_HDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
        sock.bind((ifname, ETH_P_ALL))
        index = socket.if_nametoindex(ifname)
        mreq = struct.pack("iHH8s", index, PACKET_MR_PROMISC, 0, b"")
        sock.setsockopt(SOL_PACKET, PACKET_ADD_MEMBERSHIP, mreq)
    except OSError:
        sock.close()
        raise
    return sock


def _open_tun(ifname: str) -> int:
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_CLOEXEC)
    try:
        ifr = struct.pack("16sH22x", ifname.encode(), IFF_TUN | IFF_NO_PI)
        fcntl.ioctl(fd, TUNSETIFF, ifr)
        os.set_blocking(fd, False)
    except OSError:
        os.close(fd)
        raise
    return fd


class UserspaceBackend:
    """AF_PACKET + TUN data plane around :class:`Pipeline` (see the module docstring)."""

    name = "userspace"

    def __init__(self, config: TofConfig) -> None:
        if config.single_adapter:
            raise DataPlaneError(
                "the userspace backend needs two S1 adapters (enb_interface, sgw_interface)"
            )
        self.config = config
        self.pipeline = Pipeline(config)
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._running = False
        self._socks: dict[int, socket.socket] = {}
        self._tun: int | None = None
        self._wake_r = self._wake_w = -1
        self.io: Counter[str] = Counter()
        self.failure: str | None = None
        self._mono_to_wall = time.time() - time.monotonic()

    # ------------------------------------------------------------------ lifecycle

    def _ip(self, *argv: str) -> None:
        run(netns_argv(self.config.netns, ["ip", *argv]))

    def start(self) -> None:
        config = self.config
        enb_if, sgw_if = config.enb_interface or "", config.sgw_interface or ""
        try:
            for ifname in (enb_if, sgw_if):
                self._ip("link", "set", ifname, "up")
                # Coalesced or segmented super-frames would exceed the other side's MTU.
                with contextlib.suppress(CommandError):
                    run(
                        netns_argv(
                            config.netns,
                            ["ethtool", "-K", ifname, "gro", "off", "lro", "off"],
                        )
                    )
            self._socks[ENB] = call_in_netns(config.netns, lambda: _open_packet_socket(enb_if))
            self._socks[SGW] = call_in_netns(config.netns, lambda: _open_packet_socket(sgw_if))
            self._tun = call_in_netns(config.netns, lambda: _open_tun(config.apps_tun))
            self._ip("link", "set", config.apps_tun, "up")
            for pool in config.ue_pools:
                family = "-6" if ":" in pool else "-4"
                self._ip(family, "route", "replace", pool, "dev", config.apps_tun)
            if config.netns is not None:
                for key in ("net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1"):
                    run(netns_argv(config.netns, ["sysctl", "-qw", key]), check=False)
        except (OSError, CommandError, DataPlaneError) as exc:
            self._close()
            raise DataPlaneError(f"tof userspace data plane failed to start: {exc}") from exc
        self._wake_r, self._wake_w = os.pipe()
        self._running = True
        self._thread = threading.Thread(target=self._run, name="tof-dataplane", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._running = False
        if self._wake_w >= 0:
            with contextlib.suppress(OSError):
                os.write(self._wake_w, b"x")
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        self._close()

    def _close(self) -> None:
        for sock in self._socks.values():
            sock.close()
        self._socks.clear()
        if self._tun is not None:
            os.close(self._tun)  # a non-persistent TUN (and its routes) vanish with its fd
            self._tun = None
        for fd in (self._wake_r, self._wake_w):
            if fd >= 0:
                os.close(fd)
        self._wake_r = self._wake_w = -1

    # ------------------------------------------------------------------ control

    def apply(self, services: Mapping[str, Service]) -> None:
        with self._lock:
            self.pipeline.set_services(services)

    def tunnels(self) -> list[dict[str, object]]:
        with self._lock:
            rows = self.pipeline.tunnels()
        for row in rows:
            for key in ("learnedAt", "lastSeen"):
                value = row[key]
                if isinstance(value, float):
                    row[key] = round(value + self._mono_to_wall, 3)
        return rows

    def stats(self) -> dict[str, object]:
        with self._lock:
            stats = self.pipeline.stats()
        stats["io"] = dict(self.io)
        alive = self._thread is not None and self._thread.is_alive()
        stats["dataplane"] = "running" if alive else (self.failure or "stopped")
        return stats

    def purge(self) -> int:
        with self._lock:
            return self.pipeline.purge_all()

    # ------------------------------------------------------------------ data path

    def _run(self) -> None:
        """The data-plane thread; if it ever dies, ``stats()`` says so (``dataplane``)."""
        try:
            self._loop()
        except BaseException as exc:
            self.failure = f"{type(exc).__name__}: {exc}"
            raise

    def _loop(self) -> None:
        pipeline = self.pipeline
        io = self.io
        enb, sgw, tun = self._socks[ENB], self._socks[SGW], self._tun
        if tun is None:
            return
        poller = select.poll()
        fd_port = {enb.fileno(): ENB, sgw.fileno(): SGW, tun: APPS}
        for fd in fd_port:
            poller.register(fd, select.POLLIN)
        poller.register(self._wake_r, select.POLLIN)
        batch = self.config.batch
        next_tick = 0.0
        from_s1, from_apps = pipeline.from_s1, pipeline.from_apps
        send_all = self._send_all
        rx_names = ("rx_enb", "rx_sgw")
        tx_names = ("tx_enb", "tx_sgw")
        rings = (RxRing(enb.fileno(), batch, MAX_FRAME), RxRing(sgw.fileno(), batch, MAX_FRAME))
        batches = (TxBatch(enb.fileno(), batch), TxBatch(sgw.fileno(), batch))

        def flush(out: int) -> None:
            if batches[out].count:
                sent, failure = batches[out].flush()
                io[tx_names[out]] += sent
                if failure:
                    io[f"tx_error_{errno.errorcode.get(failure, '?')}"] += 1

        while self._running:
            try:
                ready = poller.poll(TICK * 1000)
            except InterruptedError:
                continue
            with self._lock:
                now = time.monotonic()
                for fd, _event in ready:
                    port = fd_port.get(fd)
                    if port is None:
                        continue
                    if port == APPS:
                        for _ in range(batch):
                            try:
                                packet = os.read(tun, MAX_FRAME)
                            except BlockingIOError:
                                break
                            except OSError as exc:
                                io[f"rx_error_apps_{errno.errorcode.get(exc.errno or 0, '?')}"] += 1
                                break
                            io["rx_apps"] += 1
                            try:
                                send_all(from_apps(packet, now), None)
                            except Exception:  # never let one packet stop the plane
                                io["pipeline_error_apps_dropped"] += 1
                        continue
                    ring = rings[port]
                    try:
                        count = ring.receive()
                    except OSError as exc:
                        io[f"rx_error_{errno.errorcode.get(exc.errno or 0, '?')}"] += 1
                        continue
                    received = 0
                    for i in range(count):
                        n = ring.length(i)
                        if n <= VNET_HDR_LEN:
                            io["rx_runt"] += 1
                            continue
                        received += 1
                        frame = ring.copy(i, VNET_HDR_LEN, n)
                        try:
                            actions = from_s1(frame, port, now)
                        except Exception:  # never let one frame stop the plane
                            io["pipeline_error_passed_through"] += 1
                            actions = [(SGW if port == ENB else ENB, frame)]
                        if len(actions) == 1 and actions[0][1] is frame and actions[0][0] != APPS:
                            # Pass-through: the received buffer (metadata + frame) goes out as
                            # is, batched with the others of this burst.
                            batches[actions[0][0]].add(ring.addresses[i], n)
                            continue
                        flush(ENB)  # keep the order of frames on each port
                        flush(SGW)
                        send_all(actions, (frame, ring.copy(i, 0, VNET_HDR_LEN)))
                    flush(ENB)
                    flush(SGW)
                    if received:
                        io[rx_names[port]] += received
                if now >= next_tick:
                    next_tick = now + TICK
                    try:
                        send_all(pipeline.tick(now), None)
                    except Exception:  # timers must keep running
                        io["pipeline_error_tick"] += 1

    def _send_all(self, actions: list[Action], original: tuple[bytes, bytes] | None) -> None:
        io = self.io
        for port, frame in actions:
            try:
                if port == APPS:
                    if self._tun is not None:
                        os.write(self._tun, frame)
                        io["tx_apps"] += 1
                    continue
                sock = self._socks[port]
                # The very frame we received goes out with its own checksum/GSO metadata.
                vnet = original[1] if original is not None and frame is original[0] else NO_VNET_HDR
                sock.sendmsg([vnet, frame])
                io["tx_enb" if port == ENB else "tx_sgw"] += 1
            except OSError as exc:
                io[f"tx_error_{errno.errorcode.get(exc.errno or 0, '?')}"] += 1
