"""What the two TOF data planes do the same way, kept in one place.

Both the reference backend (:mod:`fluidedge.tof.userspace`) and the eBPF fast path
(:mod:`fluidedge.tof.fastpath.backend`) run the same :class:`~fluidedge.tof.pipeline.Pipeline`
in one thread inside ``[tof] netns``, read the apps TUN, transmit the pipeline's actions on
AF_PACKET sockets with the received frame's virtio-net header, and report their I/O counters
and thread state in ``/stats``. WHY one base: those parts were written twice and must not drift
(a fix to how a dead thread is reported, or how a pass-through keeps its checksum metadata, is
a fix for both). What differs (which sockets receive, what the kernel offloads) stays in each
backend.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import ipaddress
import json
import logging
import os
import select
import socket
import struct
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import TypeVar

from fluidedge.linux.linkstats import LinkStatsReader
from fluidedge.linux.netns import call_in_netns
from fluidedge.linux.packet import packet_socket
from fluidedge.linux.proc import netns_argv, run
from fluidedge.linux.sockbuf import size_buffers
from fluidedge.tof import apps_side
from fluidedge.tof.accounting.usage import Accountant
from fluidedge.tof.config import TofConfig
from fluidedge.tof.gcfreeze import Freezer
from fluidedge.tof.intercept.sink import Mirror
from fluidedge.tof.pipeline import APPS, ENB, SGW, Action, Bearer, Pipeline
from fluidedge.tof.tunnel_pages import keyset_bearers

log = logging.getLogger("fluidedge.tof")

SOL_PACKET = 263
PACKET_ADD_MEMBERSHIP = 1
PACKET_MR_PROMISC = 1
PACKET_VNET_HDR = 15
PACKET_IGNORE_OUTGOING = 23
PACKET_STATISTICS = 6  # struct tpacket_stats {tp_packets, tp_drops}; reading resets them
_TPACKET_STATS = struct.Struct("=II")
TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000
VNET_HDR_LEN = 10
NO_VNET_HDR = bytes(VNET_HDR_LEN)
TICK = 0.05
# Bearer rows built per hold of the data plane's lock (tunnel listings): ~10 us a row.
ROWS_CHUNK = 128
MAX_FRAME = 65536 + VNET_HDR_LEN


def errno_name(code: int | None) -> str:
    """Symbolic name of an errno for counter names (``EAGAIN``), ``?`` if unknown."""
    return errno.errorcode.get(code or 0, "?")


def open_packet_socket(ifname: str) -> socket.socket:
    """AF_PACKET socket receiving every frame of ``ifname`` (promiscuous, with vnet headers,
    never our own transmissions): none of another interface's, and every one with its vnet
    header (the options are set before it hears anything: ``fluidedge.linux.packet``)."""

    def setup(sock: socket.socket) -> None:
        sock.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
        sock.setsockopt(SOL_PACKET, PACKET_VNET_HDR, 1)
        size_buffers(sock, receive=4 << 20, send=4 << 20)
        mreq = struct.pack("iHH8s", socket.if_nametoindex(ifname), PACKET_MR_PROMISC, 0, b"")
        sock.setsockopt(SOL_PACKET, PACKET_ADD_MEMBERSHIP, mreq)

    return packet_socket(ifname, setup=setup)


def packet_drops(sock: socket.socket) -> int:
    """Frames the kernel dropped at ``sock``'s receive queue (full) since the previous call:
    the AF_PACKET ``PACKET_STATISTICS``, which the kernel resets on every read."""
    raw = sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, _TPACKET_STATS.size)
    return int(_TPACKET_STATS.unpack(raw)[1])


def open_tun(ifname: str) -> int:
    """Non-blocking fd of a new, non-persistent TUN device ``ifname`` (no packet info)."""
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_CLOEXEC)
    try:
        ifr = struct.pack("16sH22x", ifname.encode(), IFF_TUN | IFF_NO_PI)
        fcntl.ioctl(fd, TUNSETIFF, ifr)
        os.set_blocking(fd, False)
    except OSError:
        os.close(fd)
        raise
    return fd


T = TypeVar("T")


def _route_key(text: str) -> str:
    """A route destination as ``ip -j route`` prints it (a host route without its /32) or as
    configured, in one form."""
    try:
        return str(ipaddress.ip_network(text, strict=False))
    except ValueError:
        return text


def allocated(pipeline: Pipeline) -> int:
    """A running count of the long-lived objects ``pipeline`` allocated: bearers learned,
    flows created, usage records opened and closed (what :class:`Freezer` batches on)."""
    counters = pipeline.counters
    n = counters["bearers_learned"] + counters["flows_created"]
    accounting = pipeline.accounting
    if accounting is not None:
        n += accounting.opened + sum(accounting.records.values())
    return n


class DataPlaneBase:
    """State and helpers shared by the TOF backends: the pipeline and its lock, the apps TUN,
    the data-plane thread (started, woken, joined, its failure recorded), I/O counters, and
    sending the pipeline's actions.

    Subclasses implement :meth:`_loop` (the thread's body) and fill :attr:`_s1_tx` (the sockets
    that transmit on the eNB/SGW interfaces) when they start.
    """

    thread_name = "tof-dataplane"

    def __init__(self, config: TofConfig) -> None:
        self.config = config
        self.pipeline = Pipeline(config)
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._running = False
        self._s1_tx: dict[int, socket.socket] = {}
        self._tun: int | None = None
        self._tun_ifindex: int | None = None
        # What the kernel dropped at the apps TUN's queue (the loop read too slowly): the
        # current TUN's tx_dropped as last read, and the earlier TUNs' (re-created ones)
        self._tun_stats: LinkStatsReader | None = None
        self._tun_dropped = 0
        self._tun_dropped_before = 0
        # bumped whenever the fds the loop polls change (the TUN lost or re-created, ports
        # re-opened): the loop rebuilds its poller
        self._ports_gen = 0
        self._wake_r = self._wake_w = -1
        self._previous_switch = sys.getswitchinterval()
        self.io: Counter[str] = Counter()
        self.failure: str | None = None
        # The data plane's long-lived objects out of full collections (docs/accounting.md).
        self.freezer: Freezer | None = Freezer()
        # What the apps side's check last said was wrong and could not set back (said once)
        self._apps_side_said: tuple[str, ...] = ()
        self._mono_to_wall = time.time() - time.monotonic()
        if self.pipeline.accounting is not None:
            self.pipeline.accounting.wall_offset = self._mono_to_wall

    # ------------------------------------------------------------------ set-up and teardown

    def _run(self, *argv: str, check: bool = True) -> None:
        """Run a command inside ``[tof] netns``."""
        run(netns_argv(self.config.netns, list(argv)), check=check)

    def _open_apps_tun(self) -> None:
        """Check or set up the apps side (:mod:`fluidedge.tof.apps_side`; refuses with what is
        missing), open the apps TUN, bring it up and route the UE pools into it."""
        apps_side.prepare(self.config)
        self._tun = self._new_tun()

    def _new_tun(self) -> int:
        """A new apps TUN, up, with the UE pools routed into it; its ifindex recorded."""
        config = self.config
        fd = call_in_netns(config.netns, lambda: open_tun(config.apps_tun))
        try:
            self._run("ip", "link", "set", config.apps_tun, "up")
            for pool in config.ue_pools:
                family = "-6" if ":" in pool else "-4"
                self._run("ip", family, "route", "replace", pool, "dev", config.apps_tun)
            self._tun_ifindex = self._index_of(config.apps_tun)
            if self._tun_stats is None:
                self._tun_stats = LinkStatsReader(config.netns)
        except BaseException:
            os.close(fd)
            raise
        self._tun_dropped_before += self._tun_dropped  # a new device counts from 0
        self._tun_dropped = 0
        return fd

    def _tun_drops(self) -> int:
        """Packets the kernel dropped at the apps TUN's queue since the start: routed into it
        (the apps' downlink) while the loop did not read it in time. The device's
        ``tx_dropped`` (:mod:`fluidedge.linux.linkstats`), read now, plus the earlier TUNs'
        as last read (a TUN deleted from outside takes its drops since then with it)."""
        index, reader = self._tun_ifindex, self._tun_stats
        if index is not None and reader is not None and self._tun is not None:
            with contextlib.suppress(OSError):  # gone meanwhile: its last reading stands
                self._tun_dropped = reader.read(index).tx_dropped
        return self._tun_dropped_before + self._tun_dropped

    def _ifindex(self, name: str) -> int:
        """The ifindex of device ``name`` in ``[tof] netns`` (OSError: no such device)."""
        return int(call_in_netns(self.config.netns, lambda: socket.if_nametoindex(name)))

    def _index_of(self, name: str) -> int | None:
        """:meth:`_ifindex`, None when there is no such device (deleted from outside)."""
        try:
            return self._ifindex(name)
        except OSError:
            return None

    # ------------------------------------------------------------------ the apps TUN lost

    def _tun_gone(self, tun: int) -> None:
        """The data-plane thread found the apps TUN deleted from outside (``ip link del``):
        its fd reads EBADFD and polls POLLERR for ever, which would spin the loop. It is
        closed and no longer polled (:attr:`_ports_gen`); offload stops (the kernel programs
        fail S1 open: the TUN was their sign of a live agent) until :meth:`_heal_tun`
        re-creates it. Under the data plane's lock."""
        if self._tun != tun:
            return
        self._tun = None
        self._ports_gen += 1  # the loop stops polling it from its next turn
        with contextlib.suppress(OSError):
            os.close(tun)
        self.io["apps_tun_lost"] += 1
        log.error(
            "tof: the apps TUN %s was deleted from outside; offload stopped until it is re-created",
            self.config.apps_tun,
            extra={"part": "tof", "event": "apps_tun_lost"},
        )

    def _fd_ports(self) -> dict[int, int]:
        """The fds the loop polls now and the port each is (:data:`ENB`, :data:`SGW`,
        :data:`APPS`); asked again whenever :attr:`_ports_gen` changes."""
        raise NotImplementedError

    def _heal_tun(self) -> list[str]:
        """Re-create the apps TUN if it went (deleted from outside; the loop may not have
        noticed yet if no packet came): a new device of the same name, up, routed, and the
        backend's own references to its ifindex updated (:meth:`_tun_recreated`). What it
        did, for the log (empty: the TUN is there)."""
        if not self._running:
            return []
        if self._tun is not None and self._index_of(self.config.apps_tun) == self._tun_ifindex:
            return self._heal_routes()
        with self._lock:
            if not self._still_running():  # stop() says so under this lock
                return []
            if self._tun is not None:  # its device went, the loop has not seen it yet
                with contextlib.suppress(OSError):
                    os.close(self._tun)
                self._tun = None
                self._ports_gen += 1  # not polled any more, even if the re-creation fails
                self.io["apps_tun_lost"] += 1
            fd = self._new_tun()
            try:
                self._tun_recreated()
            except BaseException:
                os.close(fd)
                raise
            self._tun = fd
            self._ports_gen += 1  # the loop polls it from its next turn (TICK)
        self.io["apps_tun_recreated"] += 1
        log.error(
            "tof: the apps TUN %s re-created; offload resumed",
            self.config.apps_tun,
            extra={"part": "tof", "event": "apps_tun_recreated"},
        )
        return [f"the apps TUN {self.config.apps_tun} re-created (deleted from outside)"]

    def _tun_recreated(self) -> None:
        """The backend's references to the apps TUN's ifindex, made again (under the lock)."""

    def _heal_apps_side(self) -> list[str]:
        """What :mod:`fluidedge.tof.apps_side` found or set up at start, changed from outside
        since: forwarding turned off (``sysctl -w net.ipv4.ip_forward=0``, a hardening script),
        the apps interface down, its gateway address deleted (``ip addr flush``; or its bridge
        deleted and made again by the instances part, without the address). Each silently
        black-holes every offloaded flow. With ``apps_setup = "auto"`` it is set back as at
        start (``io.apps_side_restored``, event ``apps_side_changed``); with ``"check"`` (the
        host's own settings, not the TOF's to change) or an apps interface that is gone, it
        is said once per distinct state (``io.apps_side_broken``, event ``apps_side_broken``)
        until it is fixed. The forwarding sysctls are read from ``/proc/sys`` in the
        namespace (no process); the interface's state is one ``ip -j addr``."""
        if not self._running:
            return []
        config = self.config
        runner = apps_side.runner_in(config.netns)
        found = apps_side.plan(
            config, apps_side.observe(config, runner, apps_side.sysctls_in(config.netns))
        )
        problems = (*found.fatal, *found.missing)
        if not problems:
            self._apps_side_said = ()
            return []
        if found.fatal or apps_side.mode(config) == "check":
            if problems != self._apps_side_said:
                self._apps_side_said = problems
                self.io["apps_side_broken"] += 1
                log.error(
                    "tof: the apps side changed from outside: %s; offloaded flows are lost "
                    "until it is fixed",
                    "; ".join(problems),
                    extra={"part": "tof", "event": "apps_side_broken"},
                )
            return []
        for argv in found.commands:
            runner(argv)
        self._apps_side_said = ()
        self.io["apps_side_restored"] += 1
        log.error(
            "tof: the apps side changed from outside: %s; set back",
            "; ".join(found.missing),
            extra={"part": "tof", "event": "apps_side_changed"},
        )
        return [f"the apps side: {item}" for item in found.missing]

    def _heal_routes(self) -> list[str]:
        """Put back the UE pools' routes into the apps TUN that someone deleted (``ip route
        del``, a tool that flushes routes): without them the apps' replies to the UEs are
        routed elsewhere or nowhere, and the downlink of every offloaded flow is lost. One
        ``ip -j route show dev TUN`` per family of the pools."""
        config = self.config
        by_family: dict[str, list[str]] = {}
        for pool in config.ue_pools:
            by_family.setdefault("-6" if ":" in pool else "-4", []).append(pool)
        missing: list[tuple[str, str]] = []
        for family, pools in sorted(by_family.items()):
            listed = run(
                netns_argv(
                    config.netns, ["ip", "-j", family, "route", "show", "dev", config.apps_tun]
                )
            ).stdout
            present = {_route_key(row.get("dst", "")) for row in json.loads(listed or "[]")}
            missing += [(family, pool) for pool in pools if _route_key(pool) not in present]
        if not missing:
            return []
        for family, pool in missing:
            self._run("ip", family, "route", "replace", pool, "dev", config.apps_tun)
        self.io["apps_routes_readded"] += len(missing)
        said = [f"route {pool} dev {config.apps_tun}" for _, pool in missing]
        log.error(
            "tof: %s deleted from outside (the apps' replies to those UEs went elsewhere); "
            "re-added",
            ", ".join(said),
            extra={"part": "tof", "event": "apps_routes_lost"},
        )
        return said

    def _enable_forwarding(self) -> None:
        for key in ("net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1"):
            self._run("sysctl", "-qw", key, check=False)

    def _start_thread(self) -> None:
        # WHY: every system call of the data plane releases the GIL; a daemon thread that woke
        # meanwhile (the API, the idle timers, the pool's workers) takes it and may keep it for
        # up to the switch interval before the packet goes on (5 ms by default: the userspace
        # data plane's millisecond tail, docs/superfluid.md "Resume latency").
        self._previous_switch = sys.getswitchinterval()
        sys.setswitchinterval(self.config.switch_interval)
        self._wake_r, self._wake_w = os.pipe()
        self._running = True
        self._thread = threading.Thread(
            target=self._thread_main, name=self.thread_name, daemon=True
        )
        self._thread.start()

    def _still_running(self) -> bool:
        return self._running

    def _without_tun(self) -> bool:
        """The apps TUN is lost (read from the loop, which narrowed ``_tun`` at its start)."""
        return self._tun is None

    def _stop_thread(self) -> None:
        with self._lock:  # a heal of the TUN under way ends first, none starts after
            self._running = False
        if self._wake_w >= 0:
            with contextlib.suppress(OSError):
                os.write(self._wake_w, b"x")
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
            sys.setswitchinterval(self._previous_switch)

    def _close_tun_and_wake(self) -> None:
        if self._tun is not None:
            os.close(self._tun)  # a non-persistent TUN (and its routes) vanish with its fd
            self._tun = None
        if self._tun_stats is not None:
            self._tun_stats.close()
            self._tun_stats = None
        for fd in (self._wake_r, self._wake_w):
            if fd >= 0:
                os.close(fd)
        self._wake_r = self._wake_w = -1

    # ------------------------------------------------------------------ reporting

    def set_mirrors(self, mirrors: Sequence[Mirror]) -> None:
        """Lawful-intercept mirrors (fluidedge.tof.intercept): the complete set, in force for
        every packet processed once this returns."""
        table = {m.target.ue: m for m in mirrors}
        with self._lock:
            self.pipeline.mirrors = table

    def with_accounting(self, call: Callable[[Accountant], T]) -> T | None:
        """``call(accountant)`` under the data plane's lock; None when accounting is off."""
        with self._lock:
            accounting = self.pipeline.accounting
            return None if accounting is None else call(accounting)

    def rate_limited(self, ue: bytes | None, service: str | None) -> list[dict[str, object]] | None:
        """Per UE and service: what the rate limits dropped (None: no limit configured)."""
        with self._lock:
            limiter = self.pipeline.ratelimit
            return None if limiter is None else limiter.rows(ue, service)

    def _wall_clock(self, rows: list[dict[str, object]]) -> list[dict[str, object]]:
        """Turn the pipeline's monotonic ``learnedAt``/``lastSeen`` into wall-clock seconds."""
        for row in rows:
            for key in ("learnedAt", "lastSeen"):
                value = row[key]
                if isinstance(value, float):
                    row[key] = round(value + self._mono_to_wall, 3)
        return rows

    # ------------------------------------------------------------------ tunnel listings
    # A listing never holds the lock across the bearer table: at 100,000 bearers comparing
    # every marker (a keyset page) or running a search takes tens of milliseconds, and building
    # every row seconds, during which no packet moves. The table is copied in one short hold (a
    # list of references), the page chosen from the copy outside the lock, and the rows built
    # ROWS_CHUNK per hold, each of a bearer still learned at that moment (refreshed first).
    # A bearer present through a keyset walk is still seen exactly once: it is in the copy.

    def _bearer_snapshot(self) -> list[Bearer]:
        with self._lock:
            return list(self.pipeline.bearers.values())

    def _refresh(self, bearer: Bearer) -> None:
        """Bring ``bearer``'s counters up to date before its row is built (lock held): the
        fast path folds its kernel entries; the userspace pipeline's are current."""

    def _rows_of(self, bearers: Sequence[Bearer], *, refresh: bool) -> list[dict[str, object]]:
        """The rows of ``bearers`` still learned, :data:`ROWS_CHUNK` per hold of the lock."""
        rows: list[dict[str, object]] = []
        for start in range(0, len(bearers), ROWS_CHUNK):
            if start:
                # Let the data plane in: a lock released and at once taken again by the thread
                # that holds the GIL is never seen free by a waiter (it starved for the whole
                # listing: 1.7 s at 100,000 bearers).
                time.sleep(0)
            with self._lock:
                current = self.pipeline.bearers
                for bearer in bearers[start : start + ROWS_CHUNK]:
                    if current.get(bearer.key) is bearer:
                        if refresh:
                            self._refresh(bearer)
                        rows.append(bearer.to_api())
        return self._wall_clock(rows)

    def tunnels(self) -> list[dict[str, object]]:
        """Every learned bearer's row (see "tunnel listings" above)."""
        return self._rows_of(self._bearer_snapshot(), refresh=True)

    def tunnel_page(
        self, keep: Callable[[Bearer], bool] | None, offset: int, limit: int
    ) -> tuple[int, list[dict[str, object]]]:
        """``(matches, rows)``: the web GUI's numbered page, in learning order; ``keep`` (a
        search) runs outside the lock, on the copy."""
        snapshot = self._bearer_snapshot()
        matches = snapshot if keep is None else [b for b in snapshot if keep(b)]
        return len(matches), self._rows_of(matches[offset : offset + limit], refresh=True)

    def tunnels_after(
        self, after: str | None, limit: int | None
    ) -> tuple[list[dict[str, object]], str | None]:
        """A keyset page (``GET /tunnels?limit=&after=``, :mod:`fluidedge.tof.tunnel_pages`)
        chosen outside the lock, only its rows built."""
        chosen, marker = keyset_bearers(self._bearer_snapshot(), after, limit)
        return self._rows_of(chosen, refresh=True), marker

    def events(self) -> list[dict[str, object]]:
        """The pipeline's bearer event log, times in wall-clock seconds."""
        with self._lock:
            rows = self.pipeline.bearer_events()
        for row in rows:
            at = row["at"]
            if isinstance(at, float):
                row["at"] = round(at + self._mono_to_wall, 3)
        return rows

    def _add_dataplane_state(self, stats: dict[str, object]) -> dict[str, object]:
        """Add the I/O counters and the thread's state (or why it died) to ``stats``."""
        stats["io"] = {**self.io, "rx_tun_dropped_apps": self._tun_drops()}
        alive = self._thread is not None and self._thread.is_alive()
        stats["dataplane"] = "running" if alive else (self.failure or "stopped")
        return stats

    # ------------------------------------------------------------------ data path

    def _thread_main(self) -> None:
        """The data-plane thread; if it ever dies, ``stats()`` says so (``dataplane``), and the
        apps TUN is closed: that is the kernel program's signal to fail open (switch S1
        through unchanged, :mod:`fluidedge.tof.failopen`) instead of feeding a dead loop."""
        try:
            self._loop()
        except BaseException as exc:
            self.failure = f"{type(exc).__name__}: {exc}"
            if self._tun is not None:
                with contextlib.suppress(OSError):
                    os.close(self._tun)
                self._tun = None
            raise
        finally:
            if self.freezer is not None:
                self.freezer.release()

    def _loop(self) -> None:
        raise NotImplementedError

    def _poller(self, fd_port: Mapping[int, int]) -> select.poll:
        """A poller for the port fds and the wake-up pipe (so :meth:`_stop_thread` is quick)."""
        poller = select.poll()
        for fd in fd_port:
            poller.register(fd, select.POLLIN)
        poller.register(self._wake_r, select.POLLIN)
        return poller

    def _read_tun(self, tun: int) -> bytes | None:
        """One packet from the apps TUN, counted; ``None`` when there is none (or an error,
        counted too)."""
        try:
            packet = os.read(tun, MAX_FRAME)
        except BlockingIOError:
            return None
        except OSError as exc:
            if exc.errno in (errno.EBADFD, errno.EBADF):  # its device was deleted
                self._tun_gone(tun)
                return None
            self.io[f"rx_error_apps_{errno_name(exc.errno)}"] += 1
            return None
        self.io["rx_apps"] += 1
        return packet

    # The pipeline is tested never to raise on any input; these guards are the data plane's
    # defence if it ever does: count it, and keep forwarding.

    def _from_s1(self, frame: bytes, port: int, now: float) -> list[Action]:
        """The pipeline's actions for an S1 frame; on a pipeline error, passed through."""
        try:
            return self.pipeline.from_s1(frame, port, now)
        except Exception:  # never let one frame stop the plane
            self.io["pipeline_error_passed_through"] += 1
            return [(SGW if port == ENB else ENB, frame)]

    def _from_apps(self, packet: bytes, now: float) -> list[Action]:
        """The pipeline's actions for a packet from the apps; on a pipeline error, dropped."""
        try:
            return self.pipeline.from_apps(packet, now)
        except Exception:  # never let one packet stop the plane
            self.io["pipeline_error_apps_dropped"] += 1
            return []

    def _tick(self, now: float) -> list[Action]:
        """The pipeline's timers (Pinger, queue, purge); on a pipeline error, nothing this tick."""
        try:
            out = self.pipeline.tick(now)
        except Exception:  # timers must keep running
            self.io["pipeline_error_tick"] += 1
            return []
        freezer = self.freezer
        if freezer is not None and freezer.tick(allocated(self.pipeline)):
            self.io["gc_freezes"] = freezer.freezes
            self.io["gc_frozen_objects"] = freezer.frozen
            self.io["gc_freeze_longest_us"] = round(freezer.longest * 1e6)
            self.io["gc_full_collections"] = freezer.full_collections
        return out

    def _send_all(self, actions: list[Action], original: tuple[bytes, bytes] | None) -> None:
        """Transmit the pipeline's actions; ``original`` is the received (frame, vnet header)."""
        io = self.io
        for port, frame in actions:
            try:
                if port == APPS:
                    if self._tun is not None:
                        os.write(self._tun, frame)
                        io["tx_apps"] += 1
                    else:
                        io["tx_apps_dropped_no_tun"] += 1
                    continue
                # The very frame we received goes out with its own checksum/GSO metadata.
                vnet = original[1] if original is not None and frame is original[0] else NO_VNET_HDR
                self._s1_tx[port].sendmsg([vnet, frame])
                io["tx_enb" if port == ENB else "tx_sgw"] += 1
            except OSError as exc:
                io[f"tx_error_{errno_name(exc.errno)}"] += 1
