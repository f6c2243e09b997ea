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

Fail-open (``[tof] fail_open``, on by default): once the ports and the TUN exist, a kernel guard
(:class:`fluidedge.tof.failopen.Guard`) replaces whatever a previous agent left on the S1
ingress; it switches S1 through unchanged whenever this process is gone (kill -9, crash, stop)
and stays attached after :meth:`stop`.

Frames the kernel dropped because the loop did not read an S1 socket in time (its receive queue
was full: a burst beyond what one thread keeps up with) are lost on the wire, so they are
counted, never silent: ``PACKET_STATISTICS`` per socket, read (and reset) under the lock on
every ``stats()``, summed into ``io`` as ``rx_socket_dropped_enb`` / ``rx_socket_dropped_sgw``
(``GET /stats``, ``fluidedge_tof_io_total`` in ``/metrics``).
"""

from __future__ import annotations

import contextlib
import select
import socket
import time
from collections.abc import Mapping

from fluidedge.linux.libbpf import BpfError
from fluidedge.linux.netns import call_in_netns
from fluidedge.linux.proc import CommandError
from fluidedge.tof.config import TofConfig
from fluidedge.tof.dataplane_common import (
    MAX_FRAME,
    TICK,
    VNET_HDR_LEN,
    DataPlaneBase,
    errno_name,
    open_packet_socket,
    packet_drops,
)
from fluidedge.tof.errors import DataPlaneError
from fluidedge.tof.failopen import (
    Guard,
    detach,
    missing_programs,
    reattached,
    s1_program_attached,
)
from fluidedge.tof.mmsg import RxRing, TxBatch
from fluidedge.tof.models import Service
from fluidedge.tof.pipeline import APPS, ENB, SGW
from fluidedge.tof.superfluid.plane import OnDemandControl


class UserspaceBackend(OnDemandControl, DataPlaneBase):
    """AF_PACKET + TUN data plane around :class:`Pipeline` (see the module docstring).

    The S1 sockets both receive and transmit (they are :attr:`_s1_tx`).
    """

    name = "userspace"
    thread_name = "tof-dataplane"

    def __init__(self, config: TofConfig) -> None:
        if config.single_adapter:
            raise DataPlaneError(
                "the userspace backend needs two S1 adapters (enb_interface, sgw_interface)"
            )
        super().__init__(config)
        self._guard: Guard | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        config = self.config
        enb_if, sgw_if = config.enb_interface or "", config.sgw_interface or ""
        try:
            for ifname in (enb_if, sgw_if):
                self._run("ip", "link", "set", ifname, "up")
                # Coalesced or segmented super-frames would exceed the other side's MTU.
                with contextlib.suppress(CommandError):
                    self._run("ethtool", "-K", ifname, "gro", "off", "lro", "off")
            self._s1_tx[ENB] = call_in_netns(config.netns, lambda: open_packet_socket(enb_if))
            self._s1_tx[SGW] = call_in_netns(config.netns, lambda: open_packet_socket(sgw_if))
            self._open_apps_tun()
            if config.netns is not None:
                self._enable_forwarding()
            self._take_over(enb_if, sgw_if)
        except (OSError, CommandError, DataPlaneError, BpfError) as exc:
            self._close()
            raise DataPlaneError(f"tof userspace data plane failed to start: {exc}") from exc
        self._start_thread()

    def _take_over(self, enb_if: str, sgw_if: str) -> None:
        """Swap in this agent's guard (or, without fail-open, remove a previous one).

        A previous agent's program that was failing open has bridged the frames our sockets
        buffered before the swap: they are discarded, not forwarded a second time.
        """
        netns = self.config.netns
        if not self.config.fail_open:
            for dev in (enb_if, sgw_if):
                detach(netns, dev)
            return
        bridged = all(s1_program_attached(netns, dev) for dev in (enb_if, sgw_if))
        self._guard = Guard(netns, enb_if, sgw_if, self.config.apps_tun)
        try:
            self._guard.attach()
        except BpfError as exc:
            raise DataPlaneError(
                f"fail-open guard: {exc} (set [tof] fail_open = false to run without it)"
            ) from exc
        if bridged:
            for sock in self._s1_tx.values():
                while True:
                    try:
                        sock.recv(MAX_FRAME, socket.MSG_DONTWAIT)
                    except (BlockingIOError, InterruptedError):
                        break
                    self.io["rx_bridged_at_takeover"] += 1

    def heal(self) -> list[str]:
        """Re-create the apps TUN if it was deleted from outside (:meth:`_heal_tun`), set the
        apps side back as at start (:meth:`_heal_apps_side`), and re-attach the fail-open
        guard if someone took it off an S1 device (``tc qdisc del dev X clsact``): this
        agent's sockets go on forwarding without it, but S1 would not fail open when the agent
        dies. What was done (``io.apps_tun_recreated``,
        ``io.programs_reattached``)."""
        done = self._heal_tun() + self._heal_apps_side()
        guard = self._guard
        if guard is None:
            return done
        missing = missing_programs(self.config.netns, guard.programs())
        if not missing:
            return done
        guard.reattach()
        self.io["programs_reattached"] += len(missing)
        return done + reattached(missing, "the fail-open guard")

    def _fd_ports(self) -> dict[int, int]:
        ports = {self._s1_tx[ENB].fileno(): ENB, self._s1_tx[SGW].fileno(): SGW}
        if self._tun is not None:
            ports[self._tun] = APPS
        return ports

    def _tun_recreated(self) -> None:
        """The guard's sign of a live agent is the TUN's ifindex: the new one's."""
        if self._guard is not None and self._tun_ifindex is not None:
            self._guard.set_tun(self._tun_ifindex)

    def stop(self) -> None:
        self._stop_thread()
        self._close()  # the TUN goes: the guard (if any) switches S1 from now on
        if not self.config.fail_open:
            for dev in (self.config.enb_interface or "", self.config.sgw_interface or ""):
                with contextlib.suppress(CommandError):
                    detach(self.config.netns, dev)

    def _close(self) -> None:
        for sock in self._s1_tx.values():
            sock.close()
        self._s1_tx.clear()
        self._close_tun_and_wake()
        if self._guard is not None:
            self._guard.close()

    # ------------------------------------------------------------------ control

    def apply(self, services: Mapping[str, Service]) -> None:
        with self._lock:
            self.pipeline.set_services(services)

    def stats(self) -> dict[str, object]:
        with self._lock:
            self._read_socket_drops()
            stats = self.pipeline.stats()
        guard = self._guard.counters() if self._guard is not None else {}
        stats["failOpen"] = {"enabled": self.config.fail_open, **guard}
        return self._add_dataplane_state(stats)

    def purge(self) -> int:
        with self._lock:
            return self.pipeline.purge_all()

    def _read_socket_drops(self) -> None:
        """Add what the S1 sockets' receive queues dropped since the last read (the kernel
        resets its counter on every read: one reader, under the lock)."""
        for port, name in ((ENB, "rx_socket_dropped_enb"), (SGW, "rx_socket_dropped_sgw")):
            sock = self._s1_tx.get(port)
            if sock is None:
                continue
            with contextlib.suppress(OSError):
                dropped = packet_drops(sock)
                if dropped or name not in self.io:
                    self.io[name] += dropped

    # ------------------------------------------------------------------ data path

    def _loop(self) -> None:
        io = self.io
        enb, sgw = self._s1_tx[ENB], self._s1_tx[SGW]
        if self._tun is None:
            return
        batch = self.config.batch
        next_tick = 0.0
        from_s1, from_apps = self._from_s1, self._from_apps
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
                    io[f"tx_error_{errno_name(failure)}"] += 1

        polled = -1
        fd_port: dict[int, int] = {}
        poller = select.poll()
        while self._running:
            if polled != self._ports_gen:  # the TUN lost or re-created
                polled = self._ports_gen
                fd_port = self._fd_ports()
                poller = self._poller(fd_port)
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
                        if fd != self._tun:  # replaced since the poll (its number reused?)
                            continue
                        for _ in range(batch):
                            packet = self._read_tun(fd)
                            if packet is None:
                                break
                            send_all(from_apps(packet, now), None)
                        continue
                    ring = rings[port]
                    try:
                        count = ring.receive()
                    except OSError as exc:
                        io[f"rx_error_{errno_name(exc.errno)}"] += 1
                        continue
                    if self._guard is not None and self._without_tun():
                        # No TUN, no live agent for the guard: it switches S1 itself. A second
                        # copy from here would reach the peer twice.
                        io["rx_left_to_guard"] += count
                        continue
                    received = 0
                    for i in range(count):
                        n = ring.length(i)
                        if n <= VNET_HDR_LEN:
                            io["rx_runt"] += 1
                            continue
                        received += 1
                        frame = ring.copy(i, VNET_HDR_LEN, n)
                        actions = from_s1(frame, port, now)
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
                    send_all(self._tick(now), None)
