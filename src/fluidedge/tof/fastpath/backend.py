"""The eBPF fast-path TOF backend: the kernel forwards, the agent decides.

Data path (all in ``[tof] netns``):

- ``s1_ingress`` (tc clsact, both S1 interfaces) switches every frame it can judge to the other
  side with ``bpf_redirect`` (non-IP, non-GTP, and G-PDUs of tunnels the agent learned),
  offloads uplink G-PDUs of established service flows (NAT + decapsulation, then routed to the
  app in the program with ``bpf_fib_lookup``: TTL - 1 and the next hop's MACs, out of the apps
  interface, the same bytes the kernel's forwarding of a TUN write gives; when the FIB or the
  neighbour table cannot answer, redirected into the apps TUN's ingress for the kernel to
  route) and **punts** everything else to the agent: it redirects the frame into a
  private veth pair whose ends the agent reads with AF_PACKET (eNB-side punts arrive on
  ``<tun>pu1``, SGW-side punts on ``<tun>pu0``). Three global token buckets bound punts, one
  per class (control messages, learning, data), so a data flood never starves End Markers or
  learning; over its class's rate a frame is switched unchanged (never lost, not learned from).
- ``apps_egress`` (tc clsact egress of the apps TUN) reverse-NATs and encapsulates app replies
  of flows whose bearer has a known downlink TEID and redirects them out of the eNB interface;
  any other reply stays on the TUN, where the agent reads it (queue + Pinger).
- The agent runs the reference :class:`~fluidedge.tof.pipeline.Pipeline` on punted frames and
  TUN reads, transmits its actions (AF_PACKET send-only sockets on the S1 interfaces, TUN
  writes), and after every batch mirrors what changed in the pipeline's state into the maps
  (the keys its dirty set names, :mod:`~fluidedge.tof.fastpath.dirty`, through the per-key
  projections :func:`~fluidedge.tof.fastpath.layout.project` is built from; a service change:
  its services' entries and flows). It folds the program's counters and last-seen times back
  into the pipeline where they are needed (once a second those near their timeouts, on read
  for the API), so idle purge, flow expiry, ``GET /tunnels`` and ``GET /stats`` see fast-path
  traffic too. Punted frames its sockets' queues dropped are counted (``PACKET_STATISTICS``).
- On-demand services (docs/superfluid.md): the ``ondemand`` map holds their *ready* bindings
  (service IP and UE, or UE 0 for ``shared``, -> instance IP). Without one the program punts
  (``ondemand_not_ready``: the pipeline queues, creates or wakes); with one it offloads the
  binding's established flows like any service's and stamps the binding's last-seen time,
  which the agent folds into the binding before the idle timers judge it. A park deletes the
  entry first, so the next packet reaches the agent, which wakes the instance.
- The hash maps are sized from the config (``max_tunnels``, ``max_flows``). An entry a full map
  refuses is not recorded as installed: it is counted (``GET /stats`` → ``fastpath_maps``,
  ``/metrics``), its traffic keeps going through the agent (the program punts what it does not
  find), and the write is retried every second until it fits.

Fail-open and restart (:mod:`fluidedge.tof.failopen`): ``s1_ingress`` switches every frame
unchanged while the agent's apps TUN does not exist, so a killed, crashed or stopped agent
leaves a working wire (offloaded flows fall back to the core path). ``start()`` removes the
previous instance's punt veth, builds its own ports and TUN, and only then replaces the S1
programs (``tc filter replace``): the previous program keeps the wire up until that instant.
Fresh maps; services come back from the store via :meth:`apply`, tunnels are re-learned from
traffic. ``stop()`` leaves the S1 programs attached (failing open) unless ``fail_open = false``.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import re
import secrets
import select
import socket
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from fluidedge.linux import links
from fluidedge.linux.libbpf import BPF_NOEXIST, BpfError, BpfMap, BpfObject
from fluidedge.linux.links import LinkNotReady
from fluidedge.linux.netns import call_in_netns
from fluidedge.linux.packet import packet_socket
from fluidedge.linux.proc import CommandError, netns_argv, run
from fluidedge.linux.sockbuf import size_buffers
from fluidedge.tof.config import TofConfig
from fluidedge.tof.dataplane_common import (
    MAX_FRAME,
    PACKET_VNET_HDR,
    SOL_PACKET,
    TICK,
    VNET_HDR_LEN,
    DataPlaneBase,
    errno_name,
    open_packet_socket,
    packet_drops,
)
from fluidedge.tof.errors import DataPlaneError
from fluidedge.tof.failopen import S1_PREF, attach, detach, missing_programs, reattached
from fluidedge.tof.fastpath import layout as L
from fluidedge.tof.fastpath.build import object_path
from fluidedge.tof.fastpath.dirty import track
from fluidedge.tof.intercept.sink import FrameReader, Mirror
from fluidedge.tof.models import Service
from fluidedge.tof.pipeline import APPS, ENB, SGW, Bearer
from fluidedge.tof.superfluid.plane import OnDemandControl
from fluidedge.tof.superfluid.table import Key
from fluidedge.tof.tunnel_pages import keyset_bearers

log = logging.getLogger("fluidedge.tof")

FOLD_EVERY = 1.0
FOLD_CHUNK = 1024  # kernel entries the API's full fold applies per hold of the agent's lock
RETRY_EVERY = 1.0  # entries a full map refused are written again this often
DEFAULT_PUNT_RATE = 20_000  # data punts per second (global, all CPUs)
DEFAULT_PUNT_BURST = 2_000
DEFAULT_CONTROL_RATE = 5_000  # GTP-U signalling, GTP-C, Pinger replies
DEFAULT_CONTROL_BURST = 1_000
DEFAULT_LEARN_RATE = 20_000  # unknown tunnels, re-used keys
DEFAULT_LEARN_BURST = 2_000
SIZED_MAPS = ("tunnels", "flows", "downlink")
ONDEMAND_BATCH_FOLD = 64  # more installed bindings than this: one batched read of the map


def _open_send_socket(ifname: str) -> socket.socket:
    """AF_PACKET socket that only transmits (protocol 0: the kernel queues nothing to it)."""

    def setup(sock: socket.socket) -> None:
        sock.setsockopt(SOL_PACKET, PACKET_VNET_HDR, 1)
        size_buffers(sock, send=4 << 20)

    return packet_socket(ifname, 0, setup)


_MIRROR_VETH = re.compile(r"^\d+: (fei[0-9a-f]{6}a)[@:]", re.MULTILINE)


class FastPathBackend(OnDemandControl, DataPlaneBase):  # on-demand: docs/superfluid.md
    """tc/eBPF data plane around the reference pipeline (see the module docstring).

    The agent receives punted frames on :attr:`_rx` and transmits on :attr:`_s1_tx`.
    """

    name = "fastpath"
    thread_name = "tof-fastpath"

    def __init__(
        self,
        config: TofConfig,
        *,
        punt_rate: int = DEFAULT_PUNT_RATE,
        punt_burst: int = DEFAULT_PUNT_BURST,
        control_rate: int = DEFAULT_CONTROL_RATE,
        control_burst: int = DEFAULT_CONTROL_BURST,
        learn_rate: int = DEFAULT_LEARN_RATE,
        learn_burst: int = DEFAULT_LEARN_BURST,
        map_entries: Mapping[str, int] | None = None,
    ) -> None:
        if config.single_adapter or not config.enb_interface or not config.sgw_interface:
            raise DataPlaneError(
                "the fast path needs two S1 adapters (enb_interface, sgw_interface)"
            )
        super().__init__(config)
        self.punt_rate = punt_rate
        self.punt_burst = punt_burst
        self.control_rate, self.control_burst = control_rate, control_burst
        self.learn_rate, self.learn_burst = learn_rate, learn_burst
        self.map_sizes = L.map_sizes(config.max_tunnels, config.max_flows, map_entries)
        self._service_flags: dict[str, int] = {}
        # Offloaded packets through the host's routing and netfilter for every service (the
        # security groups' rules on the apps ports then see them): [tof] filter_offloaded.
        self._all_flags = L.SERVICE_VIA_STACK if config.filter_offloaded else 0
        self._services: dict[str, Service] = {}
        self._map_state = {name: L.MapState(self.map_sizes[name]) for name in SIZED_MAPS}
        self._next_retry = 0.0
        self.enb_if = config.enb_interface
        self.sgw_if = config.sgw_interface
        self.punt0 = f"{config.apps_tun[:11]}pu0"
        self.punt1 = f"{config.apps_tun[:11]}pu1"
        self._rx: dict[int, socket.socket] = {}
        # Punted frames the kernel dropped because the agent did not read its punt sockets fast
        # enough (their receive queue was full), per side: PACKET_STATISTICS, summed.
        self._punt_drops = {ENB: 0, SGW: 0}
        self._obj: BpfObject | None = None
        self._maps: dict[str, BpfMap] = {}
        self._slots: dict[str, int] = {}
        self._slot_alloc = L.SlotAllocator(L.MAX_SERVICES)
        self._installed = L.Projection()
        self._installed_services: dict[bytes, bytes] = {}
        self._snap_tun: dict[bytes, tuple[int, int, int]] = {}
        self._snap_dl: dict[bytes, int] = {}
        self._snap_svc: dict[int, tuple[int, int, int, int]] = {}
        self._snap_limits: dict[bytes, tuple[int, int]] = {}  # ue_limits key -> drops, bytes
        # Accounting (docs/accounting.md): usage key -> the counters already credited, the
        # thread folding the kernel's usage map every check_interval, and what the fold found
        # for a bearer or service already gone (offloaded, not in any record: counted).
        self._snap_usage: dict[bytes, tuple[int, int, int, int]] = {}
        self._usage_thread: threading.Thread | None = None
        self._usage_stop = threading.Event()
        self._usage_folded = 0.0  # monotonic time of the last full usage fold
        self.usage_orphaned = {"packets": 0, "bytes": 0}
        self._dirty = track(self.pipeline)  # what changed since the last sync
        # Keys (in dirty-set form) a full map refused: retried every RETRY_EVERY.
        self._waiting: dict[str, set[Any]] = {name: set() for name in SIZED_MAPS}
        self._next_fold = 0.0
        # The API's full fold reads the maps without the agent's lock (:meth:`_fold`): one at
        # a time, and the keys the sync rewrites meanwhile are left to the next fold.
        self._fold_lock = threading.Lock()
        self._punt_index: tuple[int | None, int | None] = (None, None)
        self._fold_touched: set[bytes] | None = None
        # Lawful intercept (docs/accounting.md): per pcap-destined intercept, the veth pair the
        # program clones copies to and the reader of its peer; the kernel entries installed.
        self._mirror_ports: dict[str, tuple[str, FrameReader]] = {}
        self._mirrors: list[Mirror] = []  # the last set_mirrors's (its ports re-made by heal)
        self._mirror_keys: set[bytes] = set()
        # The intercepts map as written (value with a zero count), the mirror of each key,
        # and the program's count of refused copies already folded into it.
        self._mirror_entries: dict[bytes, bytes] = {}
        self._mirror_of: dict[bytes, Mirror] = {}
        self._refused_seen: dict[bytes, int] = {}
        self._installed_overrides: dict[bytes, bytes] = {}  # ue_overrides entries
        # On-demand bindings (docs/superfluid.md): the table reports the keys it changed; the
        # installed ``ondemand`` entries (binding key -> map key, instance IP); the instance
        # each binding last had (its flows are re-projected when that changes).
        self.pipeline.ondemand.changed = set()
        self._installed_ondemand: dict[Key, tuple[bytes, bytes]] = {}
        self._ondemand_apps: dict[Key, bytes] = {}

    # ------------------------------------------------------------------ helpers

    def _cleanup_kernel(self, *, s1: bool) -> None:
        """Remove what a (previous) instance created: the punt veth, and with ``s1`` the S1
        programs too (without it they stay, failing open); idempotent."""
        if s1:
            for dev in (self.enb_if, self.sgw_if):
                detach(self.config.netns, dev)
        self._run("ip", "link", "del", self.punt0, check=False)
        # Intercept veth pairs a killed agent left behind (random names: fei<6 hex>a/b).
        listing = run(netns_argv(self.config.netns, ["ip", "-o", "link", "show"]), check=False)
        for dev in _MIRROR_VETH.findall(listing.stdout):
            self._run("ip", "link", "del", dev, check=False)

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        try:
            obj_file = object_path()
            # The S1 programs of a previous instance stay until ours replace them.
            self._cleanup_kernel(s1=not self.config.fail_open)
            self._load(obj_file)
            self._setup_links()
            self._open_ports()
            self._write_cfg()
            self._attach()
        except (OSError, CommandError, LinkNotReady, DataPlaneError, BpfError) as exc:
            self._teardown()
            raise DataPlaneError(f"tof fast path failed to start: {exc}") from exc
        self._start_thread()
        if self.pipeline.accounting is not None:
            self.pipeline.accounting.pre_close = self._fold_bearer_usage
            self._usage_stop.clear()
            self._usage_thread = threading.Thread(
                target=self._usage_loop, name="tof-usage-fold", daemon=True
            )
            self._usage_thread.start()

    def _load(self, obj_file: Path) -> None:
        """Load the program object and open its maps (nothing attached yet)."""
        self._obj = BpfObject(obj_file, dict(self.map_sizes))
        maps = {
            "cfg": (4, 4, False),
            "stats": (4, 8, True),
            "punt_reasons": (4, 8, True),
            "tunnels": (L.TUNNEL_KEY_SIZE, L.TUNNEL_VAL.size, False),
            "services": (4, L.SERVICE_VAL.size, False),
            "flows": (L.FLOW_KEY.size, L.FLOW_VAL.size, False),
            "downlink": (L.BEARER_KEY_SIZE, L.DOWNLINK_VAL.size, False),
            "service_stats": (4, L.SERVICE_STATS.size, True),
            "ue_limits": (L.LIMIT_KEY.size, L.LIMIT_VAL.size, False),
            "usage": (L.USAGE_KEY.size, L.USAGE_VAL.size, False),
            "intercepts": (4, L.INTERCEPT_VAL.size, False),
            "ue_overrides": (L.OVERRIDE_KEY.size, L.OVERRIDE_VAL.size, False),
            "ondemand": (L.ONDEMAND_KEY.size, L.ONDEMAND_VAL.size, False),
        }
        for name, (ks, vs, percpu) in maps.items():
            self._maps[name] = BpfMap(self._obj.map_fd(name), ks, vs, percpu=percpu)

    def _setup_links(self) -> None:
        for dev in (self.enb_if, self.sgw_if):
            self._run("ip", "link", "set", dev, "up", "promisc", "on")
            # No coalesced super-frames (they would exceed the other side's MTU), and complete
            # checksums on transmit so offloaded replies leave with final bytes.
            self._run("ethtool", "-K", dev, "gro", "off", "lro", "off", check=False)
            self._run("ethtool", "-K", dev, "tx", "off", check=False)
        self._make_punt_veth()
        self._open_apps_tun()
        self._enable_forwarding()

    def _make_punt_veth(self) -> None:
        self._run("ip", "link", "add", self.punt0, "type", "veth", "peer", "name", self.punt1)
        for dev in (self.punt0, self.punt1):
            self._run("sysctl", "-qw", f"net.ipv6.conf.{dev}.disable_ipv6=1", check=False)
            # Any S1 frame may be punted whole: a veth drops what exceeds its MTU.
            self._run("ip", "link", "set", dev, "mtu", "65535", "up")
        links.wait_ready(self.config.netns, (self.punt0, self.punt1))

    def _open_ports(self) -> None:
        netns = self.config.netns
        enb_if, sgw_if = self.enb_if, self.sgw_if
        self._open_punt_ports()
        self._s1_tx[ENB] = call_in_netns(netns, lambda: _open_send_socket(enb_if))
        self._s1_tx[SGW] = call_in_netns(netns, lambda: _open_send_socket(sgw_if))

    def _open_punt_ports(self) -> None:
        netns, p0, p1 = self.config.netns, self.punt0, self.punt1
        # eNB-side punts are transmitted on pu0 and so arrive on pu1 (and vice versa).
        self._rx[ENB] = call_in_netns(netns, lambda: open_packet_socket(p1))
        self._rx[SGW] = call_in_netns(netns, lambda: open_packet_socket(p0))

    def _fd_ports(self) -> dict[int, int]:
        ports = {self._rx[ENB].fileno(): ENB, self._rx[SGW].fileno(): SGW}
        if self._tun is not None:
            ports[self._tun] = APPS
        return ports

    def _punt_indexes(self) -> tuple[int | None, int | None]:
        """The ifindexes the punt veth's names have now (None: no such device)."""
        return self._index_of(self.punt0), self._index_of(self.punt1)

    def _heal_punts(self) -> list[str]:
        """Re-create the punt veth pair if either end went (``ip link del`` of one deletes
        both): without it ``s1_ingress`` redirects what it punts (new bearers' first
        packets, GTP-U signalling, what the agent must see) to no device, and the agent
        learns nothing. A new pair, new sockets on it (the loop polls them from its next
        turn), and ``s1_ingress``'s references to it; the programs go back on it after
        (:meth:`heal`). Under the fold lock, with the object loaded."""
        if not self._running or self._punt_index == self._punt_indexes():
            return []
        with self._lock:
            if not self._still_running():
                return []
            self._read_punt_drops()  # what the old sockets counted
            self._run("ip", "link", "del", self.punt0, check=False)  # what is left of it
            # The old sockets stay until the new ones are open (on no device they are quiet;
            # closed ones still polled would spin the loop).
            self._make_punt_veth()
            old = dict(self._rx)
            try:
                self._open_punt_ports()
            except BaseException:
                for port, sock in self._rx.items():
                    if sock is not old[port]:
                        sock.close()
                self._rx.update(old)
                raise
            self._ports_gen += 1  # the loop polls the new ones from its next turn
            for sock in old.values():
                sock.close()
            cfg = self._maps["cfg"]
            self._punt_index = (self._ifindex(self.punt0), self._ifindex(self.punt1))
            for key, value in zip(
                (L.CFG_PUNT_ENB_IF, L.CFG_PUNT_SGW_IF), self._punt_index, strict=True
            ):
                cfg.update(L.U32.pack(key), L.U32.pack(value))
        self.io["punt_ports_recreated"] += 1
        log.error(
            "tof: the fast path's punt veth %s/%s was deleted from outside; re-created",
            self.punt0,
            self.punt1,
            extra={"part": "tof", "event": "punt_ports_recreated"},
        )
        return [f"the punt veth {self.punt0}/{self.punt1} re-created (deleted from outside)"]

    def _write_cfg(self) -> None:
        cfg = self._maps["cfg"]
        self._punt_index = (self._ifindex(self.punt0), self._ifindex(self.punt1))
        values = {
            L.CFG_ENB_IF: self._ifindex(self.enb_if),
            L.CFG_SGW_IF: self._ifindex(self.sgw_if),
            L.CFG_PUNT_ENB_IF: self._punt_index[0] or 0,
            L.CFG_PUNT_SGW_IF: self._punt_index[1] or 0,
            L.CFG_TUN_IF: self._ifindex(self.config.apps_tun),
            L.CFG_S1_MTU: self.config.s1_mtu,
            L.CFG_PUNT_RATE: self.punt_rate,
            L.CFG_PUNT_BURST: self.punt_burst,
            L.CFG_CONTROL_RATE: self.control_rate,
            L.CFG_CONTROL_BURST: self.control_burst,
            L.CFG_LEARN_RATE: self.learn_rate,
            L.CFG_LEARN_BURST: self.learn_burst,
            L.CFG_ACCOUNTING: int(self.pipeline.accounting is not None),
            L.CFG_INTERCEPT: 0,
        }
        for index, value in values.items():
            cfg.update(L.U32.pack(index), L.U32.pack(value))

    def _programs(self) -> list[tuple[str, str, str]]:
        """(device, hook, program) of what :meth:`_attach` attaches."""
        return [
            (self.config.apps_tun, "egress", "apps_egress"),
            (self.punt0, "ingress", "drop_all"),
            (self.punt1, "ingress", "drop_all"),
            (self.enb_if, "ingress", "s1_ingress"),  # replaces a previous agent's program
            (self.sgw_if, "ingress", "s1_ingress"),
        ]

    def _attach(self) -> None:
        if self._obj is None:
            raise DataPlaneError("fast path object not loaded")
        for dev, hook, prog in self._programs():
            attach(self.config.netns, dev, hook, self._obj.prog_fd(prog), pref=S1_PREF)

    def heal(self) -> list[str]:
        """Re-create the apps TUN if it was deleted from outside (:meth:`_heal_tun`; without
        it ``s1_ingress`` switches S1 unchanged, nothing is offloaded), set the apps side back
        as at start (:meth:`_heal_apps_side`), then re-attach the programs someone took off
        our devices (``tc qdisc del dev X clsact``, a tool that replaces a device's qdiscs; a
        re-created TUN has none): without ``s1_ingress`` the S1
        frames of that side are not switched at all, without ``apps_egress`` no app reply
        reaches a UE. The check is one ``tc -batch``; a re-attach puts every program back
        (a replace where one still is, atomic per device). What was done, for the log and
        ``/stats`` (``io.apps_tun_recreated``, ``io.programs_reattached``)."""
        recreated = self.io["apps_tun_recreated"]
        with self._fold_lock:  # not while stop() tears the object down
            done = [] if self._obj is None else self._heal_punts() + self._heal_tun()
        done += self._heal_apps_side()  # one `ip` run: not under the fold's lock
        done += self._heal_mirror_ports()
        missing = missing_programs(self.config.netns, self._programs())
        if not missing:
            return done
        with self._fold_lock:
            if self._obj is None:
                return done
            self._attach()
        if self.io["apps_tun_recreated"] != recreated:
            # A TUN made again just now has no program yet: not a second thing taken off
            # (its re-creation was said), so not said or counted again.
            missing = [m for m in missing if m[0] != self.config.apps_tun]
            if not missing:
                return done
        self.io["programs_reattached"] += len(missing)
        return done + reattached(missing, "the fast path")

    def _tun_recreated(self) -> None:
        """``s1_ingress``'s sign of a live agent, and where it punts, is the TUN's ifindex."""
        if self._tun_ifindex is not None and "cfg" in self._maps:
            self._maps["cfg"].update(L.U32.pack(L.CFG_TUN_IF), L.U32.pack(self._tun_ifindex))

    def stop(self) -> None:
        self._stop_thread()
        if self._usage_thread is not None:
            self._usage_stop.set()
            self._usage_thread.join(timeout=10)
            self._usage_thread = None
        self._fold_usage()  # what the kernel counted since the last fold: into the records
        with self._fold_lock:  # no fold reads a map fd while it is closed
            self._teardown()
        if not self.config.fail_open:  # else the NICs must keep receiving the peers' frames
            for dev in (self.enb_if, self.sgw_if):
                with contextlib.suppress(CommandError):
                    self._run("ip", "link", "set", dev, "promisc", "off")

    def _teardown(self) -> None:
        for name in list(self._mirror_ports):  # readers first: they drain their sockets
            self._drop_mirror_port(name)
        with contextlib.suppress(CommandError, DataPlaneError, OSError):
            self._cleanup_kernel(s1=not self.config.fail_open)
        if self._maps:
            with contextlib.suppress(BpfError):
                self._fold_refused()  # the last ones, before the map goes
        self._mirror_keys.clear()
        self._mirror_entries = {}
        self._mirror_of = {}
        self._refused_seen = {}
        self._read_punt_drops()  # the last ones, before the sockets go
        for sock in (*self._rx.values(), *self._s1_tx.values()):
            sock.close()
        self._rx.clear()
        self._s1_tx.clear()
        self._close_tun_and_wake()  # the TUN, its clsact and its routes vanish with the fd
        self._maps.clear()
        if self._obj is not None:
            self._obj.close()
            self._obj = None
        self._installed = L.Projection()
        self._installed_services = {}
        self._installed_overrides = {}
        self._installed_ondemand = {}
        for state in self._map_state.values():
            state.entries = state.waiting = 0
        self._snap_tun.clear()
        self._snap_dl.clear()
        self._snap_svc.clear()
        self._snap_limits.clear()
        self._snap_usage.clear()
        for keys in self._waiting.values():
            keys.clear()
        self._dirty.full = True  # the next sync re-installs the pipeline's state

    # ------------------------------------------------------------------ lawful intercept

    def _mirror_port(self, mirror: Mirror) -> str:
        """A veth pair for a pcap-destined intercept: the program clones copies to one end,
        a reader takes them from the other (the kernel's copies then join the agent's own in
        the mirror's queue). Returns the end the program sends to."""
        name = mirror.intercept.name
        if name in self._mirror_ports:
            return self._mirror_ports[name][0]
        token = secrets.token_hex(3)
        a, b = f"fei{token}a", f"fei{token}b"
        self._run("ip", "link", "add", a, "type", "veth", "peer", "name", b)
        try:
            for dev in (a, b):
                self._run("sysctl", "-qw", f"net.ipv6.conf.{dev}.disable_ipv6=1", check=False)
                self._run("ip", "link", "set", dev, "mtu", "65535", "up")
            links.wait_ready(self.config.netns, (a, b))  # before the program copies to it
            sock = call_in_netns(self.config.netns, lambda: FrameReader.open_socket(b))
        except (CommandError, LinkNotReady, OSError):
            self._run("ip", "link", "del", a, check=False)
            raise
        reader = FrameReader(sock, mirror, lambda: packet_drops(sock))
        reader.start()
        self._mirror_ports[name] = (a, reader)
        return a

    def _heal_mirror_ports(self) -> list[str]:
        """An intercept's veth pair deleted from outside: the program's copies go to no
        device (counted as ``refused`` only) and its reader has ended, so the intercept is
        silently deaf. Each such port is dropped and :meth:`set_mirrors` makes it again
        (a new pair, reader and map entry). What was re-created (logged)."""
        with self._lock:
            ports = dict(self._mirror_ports)
            mirrors = list(self._mirrors)
        dead = [name for name, (dev, _reader) in ports.items() if self._index_of(dev) is None]
        if not dead:
            return []
        for name in dead:
            self._drop_mirror_port(name)
        self.set_mirrors(mirrors)
        # the log only (the admin's): no /stats counter may tell that an intercept exists
        log.error(
            "tof: the mirror port of intercept(s) %s was deleted from outside; re-created",
            ", ".join(dead),
            extra={"part": "tof", "event": "mirror_ports_recreated"},
        )
        return [f"the mirror port of intercept {name} re-created" for name in dead]

    def _drop_mirror_port(self, name: str) -> None:
        dev, reader = self._mirror_ports.pop(name)
        reader.stop()
        self._run("ip", "link", "del", dev, check=False)

    def set_mirrors(self, mirrors: Sequence[Mirror]) -> None:
        """The complete set of intercepts: the pipeline's table (packets the agent offloads)
        and the program's ``intercepts`` map (IPv4 UEs; what the program offloads), both in
        force when this returns; a removed intercept's copies stop before its port goes."""
        entries: dict[bytes, bytes] = {}
        for mirror in mirrors:
            it = mirror.intercept
            enb = mirror.target.enb or bytes(4)
            sgw = mirror.target.sgw or bytes(4)
            if len(mirror.target.ue) != 4 or len(enb) != 4 or len(sgw) != 4:
                continue  # IPv6 UEs or S1 peers: the program punts those, the pipeline copies
            dev = it.interface if it.interface is not None else self._mirror_port(mirror)
            entries[mirror.target.ue] = L.INTERCEPT_VAL.pack(self._ifindex(dev), enb, sgw, 0)
        table = {m.target.ue: m for m in mirrors}
        with self._lock:
            self._mirrors = list(mirrors)
            self.pipeline.mirrors = table
            if self._maps:
                self._fold_refused()  # before an entry (and its count) is replaced or goes
                m = self._maps["intercepts"]
                for key, value in entries.items():
                    if self._mirror_entries.get(key) != value:  # a new count: from zero
                        m.update(key, value)
                        self._refused_seen[key] = 0
                for key in self._mirror_keys - entries.keys():
                    m.delete(key)
                    self._refused_seen.pop(key, None)
                self._maps["cfg"].update(L.U32.pack(L.CFG_INTERCEPT), L.U32.pack(len(entries)))
                self._mirror_keys = set(entries)
                self._mirror_entries = entries
            self._mirror_of = {key: table[key] for key in entries}
        wanted = {m.intercept.name for m in mirrors}
        for name in list(self._mirror_ports):
            if name not in wanted:
                self._drop_mirror_port(name)

    def _fold_refused(self) -> None:
        """Add the copies the program could not send since the last fold to each intercept's
        ``refused`` (lock held): its entry's 32-bit count, read as a difference (a fold a
        second cannot miss a wrap). Per intercept only, never in ``/stats``."""
        m = self._maps.get("intercepts")
        if m is None:
            return
        for key, mirror in self._mirror_of.items():
            raw = m.lookup(key)
            if raw is None:
                continue
            count = L.INTERCEPT_VAL.unpack(raw)[3]
            delta = (count - self._refused_seen.get(key, 0)) & 0xFFFFFFFF
            if delta:
                self._refused_seen[key] = count
                mirror.refused += delta

    # ------------------------------------------------------------------ control

    def apply(self, services: Mapping[str, Service]) -> None:
        """Install a service set: BPF entries first (rolled back on failure), then the pipeline.

        Each packet's decision reads one ``services`` entry and validates its flow against it
        (application IP + slot), and a hash-map update replaces an entry in one RCU step, so a
        packet sees a service's old or new mapping, never a mix.
        """
        with self._lock:
            self._apply_locked(services)

    def _apply_locked(self, services: Mapping[str, Service]) -> None:
        try:
            slots = self._slot_alloc.assign(self._slots, services)
        except L.SlotsExhausted as exc:
            raise DataPlaneError(f"fast path: {exc}") from exc
        desired: dict[bytes, bytes] = {}
        overrides = L.ue_overrides(self.pipeline, slots)
        limiter = self.pipeline.ratelimit
        own = {name for _ue, name in limiter.overrides} if limiter is not None else set()
        for s in services.values():
            sip, app = s.service_address.packed, s.application_address.packed
            if len(sip) == 4:
                flags = self._service_flags.get(s.name, 0) | self._all_flags
                if s.name in own:
                    flags |= L.SERVICE_UE_LIMITS
                if s.ondemand is not None:
                    flags |= L.SERVICE_ONDEMAND
                    if s.ondemand.per_ue:
                        flags |= L.SERVICE_PER_UE
                if s.classified:
                    # The program matches the service IP only: every packet to a classified
                    # service IP goes to the agent, whose pipeline classifies it (docs/tof.md).
                    flags |= L.SERVICE_PUNT
                    if sip in desired:
                        continue  # one entry per service IP (the agent tells them apart)
                desired[sip] = L.service_value(self.pipeline, s.name, app, slots[s.name], flags)
        if self._maps:
            for slot in set(slots.values()) - set(self._slots.values()):
                self._reset_slot(slot)
            # UEs' own limits before the services that point at them (flag SVC_UE_LIMITS).
            for key, value in overrides.items():
                self._maps["ue_overrides"].update(key, value)
            upserts, deletes = L.diff(self._installed_services, desired)
            done: list[bytes] = []
            try:
                for key, value in upserts.items():
                    self._maps["services"].update(key, value)
                    done.append(key)
            except BpfError:
                for key in done:
                    old = self._installed_services.get(key)
                    if old is None:
                        self._maps["services"].delete(key)
                    else:
                        self._maps["services"].update(key, old)
                raise
            for key in deletes:
                self._maps["services"].delete(key)
            self._installed_services = desired
            for key in self._installed_overrides.keys() - overrides.keys():
                self._maps["ue_overrides"].delete(key)
            self._installed_overrides = overrides
        self._fold_services()
        changed = self.pipeline.set_services(services)
        self._services = dict(services)
        self._slots = slots
        # A flow's entry depends on its service's slot and mapping only: the changed services'
        # flows are re-projected (the stale ones the pipeline dropped are dirty already), at
        # the cost of those flows, not of the whole state.
        self._dirty.service_changed(changed)
        if changed:
            self._retry_waiting()  # a removed service's flows may make room for waiting ones
        # A changed service's address or policy: its bindings are looked at again.
        if changed:
            keys = set(self.pipeline.ondemand.bindings) | set(self._installed_ondemand)
            self._ondemand_changed({key for key in keys if key[0] in changed})
        self._sync()

    def set_service_flags(self, name: str, flags: int) -> None:
        """Per-service policy in the kernel (``layout.SERVICE_PUNT``: every packet of the
        service to the agent, e.g. while its instance is not ready; ``SERVICE_VIA_STACK``:
        offloaded packets enter the kernel's routing and netfilter through the apps TUN, for a
        host firewall such as security groups). Kept across :meth:`apply`; 0 clears."""
        if flags & ~(L.SERVICE_PUNT | L.SERVICE_VIA_STACK):
            raise DataPlaneError(f"fast path: unknown service flags {flags:#x}")
        with self._lock:
            if flags:
                self._service_flags[name] = flags
            else:
                self._service_flags.pop(name, None)
            if name in self._services:
                self._apply_locked(self._services)  # rewrites that one entry (diff)

    def _reset_slot(self, slot: int) -> None:
        m = self._maps["service_stats"]
        m.update(L.U32.pack(slot), bytes(L.SERVICE_STATS.size) * m.cpus)
        self._snap_svc.pop(slot, None)
        # A new service's UEs start with full buckets and no drops of the slot's previous one
        # (rare: a slot is reused only after every other one, see layout.SlotAllocator).
        limits = self._maps.get("ue_limits")
        if limits is None:
            return
        for key in list(limits.keys()):
            if L.LIMIT_KEY.unpack(key)[1] == slot:
                limits.delete(key)
                self._snap_limits.pop(key, None)

    def rate_limited(self, ue: bytes | None, service: str | None) -> list[dict[str, object]] | None:
        """Per UE and service: what the rate limits dropped, the kernel's drops folded in."""
        self._fold_limits()
        return super().rate_limited(ue, service)

    # ------------------------------------------------------------------ accounting

    def _usage_loop(self) -> None:
        """Fold the kernel's usage map into the records every ``check_interval`` (the
        pipeline's trigger checks then see fast-path traffic at most one interval late, as
        they see the userspace path's)."""
        interval = self.config.accounting.check_interval
        while not self._usage_stop.wait(interval):
            try:
                self._fold_usage()
            except BpfError as exc:
                self.io[f"usage_fold_error_{type(exc).__name__}"] += 1

    def fold_usage(self) -> None:
        """Bring the open usage records up to date with the kernel now (``GET /usage``)."""
        self._fold_usage()

    def _fold_usage(self) -> None:
        """Credit the kernel's per-bearer, per-service counters to the open usage records.

        Like :meth:`_fold`: the map is read in batches (``BPF_MAP_LOOKUP_BATCH``) without the
        agent's lock, and each batch is applied under one short hold of it; a read older than
        what a bearer event's own fold (:meth:`_fold_bearer_usage`) applied meanwhile is
        skipped (the counters only grow). Entries whose bearer is gone and that saw no packet
        for ``idle_timeout`` are removed.
        """
        with self._fold_lock:
            with self._lock:
                usage = self._maps.get("usage")
                if usage is None or self.pipeline.accounting is None:
                    return
            idle_ns = int(self.config.idle_timeout * 1e9)
            try:
                for n, keys, values in usage.lookup_batches(FOLD_CHUNK):
                    with self._lock:
                        stale = self._apply_usage(n, keys, values, time.monotonic_ns() - idle_ns)
                    for key in stale:
                        usage.delete(key)
            except BpfError:
                self._fold_usage_one_by_one()
            self._usage_folded = time.monotonic()

    def _fold_usage_one_by_one(self) -> None:
        """The fold without batch lookups (an older kernel): the keys, then one lookup each."""
        with self._lock:
            usage = self._maps.get("usage")
        if usage is None:
            return
        keys = usage.keys()
        for start in range(0, len(keys), FOLD_CHUNK):
            with self._lock:
                names = self._slot_names()
                for key in keys[start : start + FOLD_CHUNK]:
                    raw = usage.lookup(key)
                    if raw is not None:
                        self._credit_usage(key, raw, names)

    def _apply_usage(self, n: int, keys: bytes, values: bytes, idle_before: int) -> list[bytes]:
        ks, vs = L.USAGE_KEY.size, L.USAGE_VAL.size
        bearers = self.pipeline.bearers
        names = self._slot_names()
        stale: list[bytes] = []
        for i in range(n):
            key = keys[i * ks : (i + 1) * ks]
            raw = values[i * vs : (i + 1) * vs]
            if not self._credit_usage(key, raw, names):
                last = L.USAGE_VAL.unpack(raw)[5]
                if last < idle_before and (key[:4], key[4:8], key[8:12]) not in bearers:
                    stale.append(key)
                    self._snap_usage.pop(key, None)
        return stale

    def _slot_names(self) -> dict[int, str]:
        return {slot: name for name, slot in self._slots.items()}

    def _credit_usage(self, key: bytes, raw: bytes, names: Mapping[int, str]) -> bool:
        """Add what the entry ``key`` counted since the last fold to its bearer's open record
        for its service (opening one if needed); False when there was nothing new."""
        accounting = self.pipeline.accounting
        if accounting is None:
            return False
        up_p, up_b, down_p, down_b, first_ns, last_ns = L.USAGE_VAL.unpack(raw)
        p0, b0, q0, c0 = self._snap_usage.get(key, (0, 0, 0, 0))
        dp, db, dq, dc = up_p - p0, up_b - b0, down_p - q0, down_b - c0
        if dp < 0 or db < 0 or dq < 0 or dc < 0 or not (dp or dq):
            return False  # an older read than the last fold's, or nothing new
        self._snap_usage[key] = (up_p, up_b, down_p, down_b)
        enb, sgw, ue, slot = L.USAGE_KEY.unpack(key)
        bearer = self.pipeline.bearers.get((enb, sgw, ue))
        name = names.get(slot)
        service = self._services.get(name) if name is not None else None
        if bearer is None or service is None:
            self.usage_orphaned["packets"] += dp + dq
            self.usage_orphaned["bytes"] += db + dc
            return True
        last = last_ns / 1e9
        record = bearer.usage.get(service.name)
        if record is None:
            # The new packets came after the previous fold (or the entry's creation).
            first = min(last, max(first_ns / 1e9, self._usage_folded))
            record = accounting.open(bearer, service.name, service.service_address.packed, first)
        record.ul_packets += dp
        record.ul_bytes += db
        record.dl_packets += dq
        record.dl_bytes += dc
        record.last = max(record.last, last)
        return True

    def _fold_bearer_usage(self, bearer: Bearer) -> None:
        """Before ``bearer``'s records close (a bearer event, under the agent's lock): its
        kernel counters for every service, one lookup each."""
        usage = self._maps.get("usage")
        if usage is None or len(bearer.ue) != 4 or len(bearer.enb) != 4:
            return
        prefix = bearer.enb + bearer.sgw + bearer.ue
        names = self._slot_names()
        for slot in names:
            key = prefix + L.U32.pack(slot)
            raw = usage.lookup(key)
            if raw is not None:
                self._credit_usage(key, raw, names)

    def _fold_limits(self) -> None:
        """Fold the kernel's per-UE drops into the pipeline's limiter, and remove the buckets
        idle for ``idle_timeout`` (a bucket idle that long is full: recreating it on the next
        packet changes nothing but the map's size). The map is read in batches without the
        agent's lock; each batch is applied under one short hold of it (like :meth:`_fold`)."""
        with self._fold_lock:
            with self._lock:
                limits = self._maps.get("ue_limits")
                if limits is None or self.pipeline.ratelimit is None:
                    return
            idle_ns = int(self.config.idle_timeout * 1e9)
            try:
                for n, keys, values in limits.lookup_batches(FOLD_CHUNK):
                    with self._lock:
                        stale = self._apply_limits(n, keys, values, time.monotonic_ns() - idle_ns)
                    for key in stale:
                        limits.delete(key)
            except BpfError:
                return  # no batch lookups on this kernel: the drops show on the next read

    def _apply_limits(self, n: int, keys: bytes, values: bytes, idle_before: int) -> list[bytes]:
        limiter = self.pipeline.ratelimit
        if limiter is None:
            return []
        names = self._slot_names()
        snap, ks, vs = self._snap_limits, L.LIMIT_KEY.size, L.LIMIT_VAL.size
        stale: list[bytes] = []
        for i, (_tokens, last, drops, dropped) in enumerate(
            L.LIMIT_VAL.iter_unpack(values[: n * vs])
        ):
            key = keys[i * ks : (i + 1) * ks]
            d0, b0 = snap.get(key, (0, 0))
            if drops < d0:  # removed and created again since the last fold
                d0 = b0 = 0
            if drops > d0:
                ue, slot, direction = L.LIMIT_KEY.unpack(key)
                name = names.get(slot)
                if name is not None:
                    limiter.count(ue, name, direction == 0, drops - d0, dropped - b0)
            snap[key] = (drops, dropped)
            if last < idle_before:
                stale.append(key)
                del snap[key]
        return stale

    def tunnels(self) -> list[dict[str, object]]:
        """Every bearer, its kernel counters folded first: one full fold (outside the lock,
        :meth:`_fold`), then the rows in short holds (``DataPlaneBase``'s tunnel listings);
        the list holds the bearers present when the call began that are still there when
        their row is built."""
        self._fold()
        return self._rows_of(self._bearer_snapshot(), refresh=False)

    def _refresh(self, bearer: Bearer) -> None:
        self._fold_bearer(bearer)  # a page's rows: a few lookups each, no map walk

    def tunnels_after(
        self, after: str | None, limit: int | None
    ) -> tuple[list[dict[str, object]], str | None]:
        """A keyset page (``GET /tunnels?limit=&after=``) with its bearers' kernel counters
        folded: chosen outside the lock, and only its bearers' entries read, under the hold
        that builds their rows (each row consistent with the kernel at that instant).

        Without ``limit`` the page is the rest of the table, possibly all of it: that is
        :meth:`tunnels`'s job done from a marker (a full fold, then the rows), not 100,000
        lookups one bearer at a time."""
        if limit is None:
            self._fold()
            chosen, _ = keyset_bearers(self._bearer_snapshot(), after, None)
            return self._rows_of(chosen, refresh=False), None
        return super().tunnels_after(after, limit)

    def stats(self) -> dict[str, object]:
        self._fold_limits()
        with self._lock:
            self._fold_services()  # /stats shows no per-bearer counter: no map walk
            stats = self.pipeline.stats()
            fast = self._fastpath_counters()
        counters = stats.get("counters")
        if isinstance(counters, dict):
            for name in L.SHARED_COUNTERS:
                if fast.get(name):
                    counters[name] = counters.get(name, 0) + fast[name]
        stats["fastpath"] = fast
        if self.pipeline.accounting is not None:
            stats["usageOrphaned"] = dict(self.usage_orphaned)
        stats["offload_filtered"] = bool(self._all_flags)
        stats["fastpath_maps"] = self.map_report()
        return self._add_dataplane_state(stats)

    def map_report(self) -> dict[str, dict[str, int | bool]]:
        """Per sized map: capacity, entries, entries waiting for room, failed writes, full."""
        with self._lock:
            return {name: state.report() for name, state in self._map_state.items()}

    def purge(self) -> int:
        with self._lock:
            n = self.pipeline.purge_all()
            self._sync()
            return n

    # ------------------------------------------------------------------ map mirroring

    def _read_punt_drops(self) -> None:
        """Add what the punt sockets' queues dropped since the last read (the kernel resets
        its PACKET_STATISTICS on every read, so one reader: under the agent's lock)."""
        for port, sock in self._rx.items():
            with contextlib.suppress(OSError):
                self._punt_drops[port] += packet_drops(sock)

    def _punt_drop_counters(self) -> dict[str, int]:
        self._read_punt_drops()
        enb, sgw = self._punt_drops[ENB], self._punt_drops[SGW]
        return {
            "punt_socket_dropped": enb + sgw,
            "punt_socket_dropped_enb": enb,
            "punt_socket_dropped_sgw": sgw,
        }

    def _fastpath_counters(self) -> dict[str, int]:
        m = self._maps.get("stats")
        if m is None:
            return self._punt_drop_counters()
        out = {}
        for index, name in enumerate(L.STAT_NAMES):
            out[name] = sum(L.U64.unpack(v)[0] for v in m.lookup_percpu(L.U32.pack(index)))
        reasons = self._maps["punt_reasons"]
        for index, name in enumerate(L.PUNT_REASONS):
            n = sum(L.U64.unpack(v)[0] for v in reasons.lookup_percpu(L.U32.pack(index)))
            if n:
                out[f"punt_{name}"] = n
        out.update(self._punt_drop_counters())
        return out

    def _put(self, name: str, key: bytes, value: bytes, flags: int = 0) -> bool:
        """Write one entry; False (counted) when the map refuses it. A refused entry is not
        recorded as installed, so the program keeps punting its traffic to the agent, and
        the next sync (at the latest :data:`RETRY_EVERY` later) writes it again."""
        try:
            self._maps[name].update(key, value, flags)
        except BpfError as exc:
            if flags == BPF_NOEXIST and exc.errno == errno.EEXIST:
                return True  # already there (keeps its counters)
            state = self._map_state[name]
            if exc.errno == errno.E2BIG:
                state.full_failures += 1
            else:
                state.other_failures += 1
            return False
        return True

    def _sync(self, *, full: bool = False) -> None:
        """Make the maps equal to the pipeline's projection, writing only what changed.

        Normally only the keys the pipeline touched since the last sync are re-projected
        (:mod:`~fluidedge.tof.fastpath.dirty`; a service change adds its services' flows): the
        cost follows the change, not the table sizes. After a purge or a restart, every
        installed and wanted key is.
        """
        p = self.pipeline
        dirty = self._dirty
        if not self._maps:  # not started: the first sync after start() is a full one
            dirty.take()
            dirty.full = True
            return
        # Bindings first: one whose instance changed marks its service's flows dirty for below.
        self._sync_ondemand(full=full or dirty.full)
        if full or dirty.full:
            dirty.full = False
            dirty.take()
            inst = self._installed
            tunnels = set(inst.tunnels) | set(p.up) | set(p.down)
            flows: set[L.FlowPipelineKey] = {L.flow_pipeline_key(k) for k in inst.flows}
            flows |= set(p.flows)
            bearers = {(k[:4], k[4:8], k[8:12]) for k in inst.downlink} | set(p.bearers)
        else:
            tunnels, bearers, flows = dirty.take()
        dirty.held = set()
        # Per map, removals first: a full map takes a waiting entry in the same sync as the
        # removal that makes room for it.
        tunnel_rows = sorted(((k, L.tunnel_entry(p, k)) for k in tunnels), key=_adds_last)
        for key, ue in tunnel_rows:
            self._sync_tunnel(key, ue)
        flow_rows = [(pkey, L.flow_entry(p, pkey, self._slots)) for pkey in flows]
        flow_rows.sort(key=lambda row: row[1][1] is not None)
        for pkey, entry in flow_rows:
            self._sync_flow(pkey, entry)
        dl_rows = sorted(((b, L.downlink_entry(p, b)) for b in bearers), key=_adds_last)
        for bkey, value in dl_rows:
            self._sync_downlink(bkey, value)
        dirty.replaced.clear()  # every key they name was folded above
        inst = self._installed
        for name, entries in (
            ("tunnels", len(inst.tunnels)),
            ("flows", len(inst.flows)),
            ("downlink", len(inst.downlink)),
        ):
            self._map_state[name].entries = entries
            self._map_state[name].waiting = len(self._waiting[name])

    def _sync_tunnel(self, key: bytes, ue: bytes | None) -> None:
        inst, waiting = self._installed, self._waiting["tunnels"]
        have = inst.tunnel_ues.get(key)
        waiting.discard(key)
        if self._fold_touched is not None and have != ue:
            self._fold_touched.add(key)  # a fold in flight read the entry before this
        if ue is None:
            if have is not None:
                self._fold_tunnel(key)
                self._maps["tunnels"].delete(key)
                self._snap_tun.pop(key, None)
                inst.tunnels.discard(key)
                del inst.tunnel_ues[key]
            return
        if have == ue:
            return
        value = L.TUNNEL_VAL.pack(0, 0, 0, 0, ue)
        if have is None:
            if not self._put("tunnels", key, value, BPF_NOEXIST):
                waiting.add(key)
                return
            self._snap_tun.setdefault(key, (0, 0, 0))
        else:
            # Same key, new bearer (TEID reuse): restart its counters with the new UE.
            self._fold_tunnel(key)
            if not self._put("tunnels", key, value):
                self._maps["tunnels"].delete(key)  # never leave the old UE's entry in force
                self._snap_tun.pop(key, None)
                inst.tunnels.discard(key)
                del inst.tunnel_ues[key]
                waiting.add(key)
                return
            self._snap_tun[key] = (0, 0, 0)
        inst.tunnels.add(key)
        inst.tunnel_ues[key] = ue

    def _sync_flow(self, pkey: L.FlowPipelineKey, entry: tuple[bytes, bytes | None]) -> None:
        inst, waiting = self._installed, self._waiting["flows"]
        key, value = entry
        if not key:
            return  # IPv6: the agent's
        have = inst.flows.get(key)
        waiting.discard(pkey)
        if value == have:
            return
        if value is None:
            self._fold_flow(key)
            self._maps["flows"].delete(key)
            del inst.flows[key]
            return
        if not self._put("flows", key, value):
            if have is not None:  # a changed flow must not keep its old value
                self._maps["flows"].delete(key)
                del inst.flows[key]
            waiting.add(pkey)
            return
        inst.flows[key] = value

    def _sync_downlink(self, bkey: L.BearerKey, value: bytes | None) -> None:
        inst, waiting = self._installed, self._waiting["downlink"]
        key = bkey[0] + bkey[1] + bkey[2]
        have = inst.downlink.get(key)
        waiting.discard(bkey)
        if value is None:
            bearer = self.pipeline.bearers.get(bkey)
            if bearer is not None and bearer.queue and bearer.dl_teid is not None:
                self._dirty.held.add(bkey)  # written once its queue is flushed
        if value == have:
            return
        if self._fold_touched is not None:
            self._fold_touched.add(key)
        if have is not None:
            self._fold_downlink(key)
        if value is None:
            self._maps["downlink"].delete(key)
            self._snap_dl.pop(key, None)
            del inst.downlink[key]
            return
        if not self._put("downlink", key, value):
            if have is not None:
                self._maps["downlink"].delete(key)
                self._snap_dl.pop(key, None)
                del inst.downlink[key]
            waiting.add(bkey)
            return
        inst.downlink[key] = value
        self._snap_dl[key] = 0

    # ------------------------------------------------------------------ on-demand bindings

    def _ondemand_changed(self, keys: set[Key]) -> None:
        changed = self.pipeline.ondemand.changed
        if changed is not None:
            changed |= keys

    def _ondemand_sync(self) -> None:
        self._sync()

    def _sync_ondemand(self, *, full: bool) -> None:
        """Make the ``ondemand`` map hold exactly the ready bindings (of the changed keys, or of
        all). An entry that goes has its last-seen time folded first; one the map refuses
        leaves the binding's packets with the agent (counted), as before this map existed."""
        table = self.pipeline.ondemand
        keys = set(table.changed or ())
        if table.changed is not None:
            table.changed.clear()
        if full:
            keys |= set(table.bindings) | set(self._installed_ondemand)
        if not keys:
            return
        sips = {
            n: s.service_address.packed for n, s in self._services.items() if s.ondemand is not None
        }
        moved: set[str] = set()
        for key in keys:
            binding = table.bindings.get(key)
            app = binding.app_ip if binding is not None else b""
            if self._ondemand_apps.get(key, b"") != app:
                moved.add(key[0])  # its flows' projection depends on the binding's instance
                if app:
                    self._ondemand_apps[key] = app
                else:
                    self._ondemand_apps.pop(key, None)
            want = L.ondemand_entry(self.pipeline, key, sips)
            have = self._installed_ondemand.get(key)
            if want == have:
                continue
            if have is not None:
                self._fold_ondemand(key, have[0])
                if want is None or want[0] != have[0]:
                    self._maps["ondemand"].delete(have[0])
                del self._installed_ondemand[key]
            if want is None:
                continue
            value = L.ONDEMAND_VAL.pack(want[1], time.monotonic_ns())
            try:
                self._maps["ondemand"].update(want[0], value)
            except BpfError as exc:
                self.io[f"ondemand_map_{errno_name(exc.errno)}"] += 1
                continue
            self._installed_ondemand[key] = want
        if moved:
            self._dirty.service_changed(moved)

    def _fold_ondemand(self, key: Key, map_key: bytes, raw: bytes | None = None) -> None:
        """The kernel's last-seen time of a binding's entry into the binding's activity."""
        if raw is None:
            raw = self._maps["ondemand"].lookup(map_key)
        binding = self.pipeline.ondemand.bindings.get(key)
        if raw is None or binding is None:
            return
        last_ns = L.ONDEMAND_VAL.unpack(raw[: L.ONDEMAND_VAL.size])[1]
        binding.last_active = max(binding.last_active, last_ns / 1e9)

    def _ondemand_fold(self, key: Key | None) -> None:
        if not self._maps:
            return
        if key is not None:
            have = self._installed_ondemand.get(key)
            if have is not None:
                self._fold_ondemand(key, have[0])
            return
        installed = self._installed_ondemand
        if len(installed) > ONDEMAND_BATCH_FOLD:
            raws = self._maps["ondemand"].lookup_all()
            for k, (map_key, _app) in installed.items():
                self._fold_ondemand(k, map_key, raws.get(map_key))
            return
        for k, (map_key, _app) in installed.items():
            self._fold_ondemand(k, map_key)

    def _ondemand_slipped(self, key: Key, since: float) -> bool:
        """Whether the kernel offloaded a packet of binding ``key`` after ``since`` (its flows'
        last-seen times: a packet can pass between the park's fold and the entry's delete)."""
        table = self.pipeline.ondemand
        binding = table.bindings.get(key)
        index = self.pipeline.service_index
        if binding is None or index is None or not self._maps:
            return False
        flows = self._maps["flows"]
        for pkey in list(index.flows_of(key[0])):
            flow = self.pipeline.flows.get(pkey)
            if flow is None or flow.application_ip != binding.app_ip:
                continue
            if key[1] and flow.bearer[2] != key[1]:
                continue
            map_key, _value = L.flow_entry(self.pipeline, pkey, self._slots)
            if map_key not in self._installed.flows:
                continue
            raw = flows.lookup(map_key)
            if raw is not None and L.FLOW_VAL.unpack(raw[: L.FLOW_VAL.size])[4] / 1e9 > since:
                self.io["ondemand_slipped_wakes"] += 1
                return True
        return False

    def _needs_retry(self) -> bool:
        return any(self._waiting.values())

    def _retry_waiting(self) -> None:
        """Queue the entries a full map refused for the next sync."""
        self._dirty.tunnels |= self._waiting["tunnels"]
        self._dirty.flows |= self._waiting["flows"]
        self._dirty.bearers |= self._waiting["downlink"]

    def _fold_tunnel(self, key: bytes, raw: bytes | None = None) -> None:
        if raw is None:
            raw = self._maps["tunnels"].lookup(key)
        if raw is None:
            return
        packets, nbytes, last_ns, offloaded, _ue = L.TUNNEL_VAL.unpack(raw[: L.TUNNEL_VAL.size])
        p0, b0, o0 = self._snap_tun.get(key, (0, 0, 0))
        self._snap_tun[key] = (packets, nbytes, offloaded)
        # The bearer the entry counted for: the one the key had at the last sync when the
        # pipeline has since removed or re-assigned the key, else the key's current owner.
        owner = self._dirty.replaced.get(key)
        if owner is not None:
            bearer, uplink = owner
        else:
            found = self.pipeline.up.get(key)
            uplink = found is not None
            if found is None:
                found = self.pipeline.down.get(key)
            if found is None:
                return
            bearer = found
        if uplink:
            bearer.ul_packets += packets - p0
            bearer.ul_bytes += nbytes - b0
            bearer.offloaded_up += offloaded - o0
        else:
            bearer.dl_packets += packets - p0
            bearer.dl_bytes += nbytes - b0
        if last_ns:
            bearer.last_seen = max(bearer.last_seen, last_ns / 1e9)

    def _fold_flow(self, key: bytes) -> None:
        raw = self._maps["flows"].lookup(key)
        if raw is None:
            return
        last_ns = L.FLOW_VAL.unpack(raw[: L.FLOW_VAL.size])[4]
        proto, _pad, app_port, ue_port, _pad2, app, ue = L.FLOW_KEY.unpack(key)
        pkey = (proto, app, int.from_bytes(app_port, "big"), ue, int.from_bytes(ue_port, "big"))
        flow = self.pipeline.flows.get(pkey)
        if flow is not None and last_ns:
            flow.last_seen = max(flow.last_seen, last_ns / 1e9)

    def _fold_downlink(self, key: bytes, raw: bytes | None = None) -> None:
        if raw is None:
            raw = self._maps["downlink"].lookup(key)
        if raw is None:
            return
        offloaded = L.DOWNLINK_VAL.unpack(raw[: L.DOWNLINK_VAL.size])[6]
        delta = offloaded - self._snap_dl.get(key, 0)
        self._snap_dl[key] = offloaded
        bearer = self.pipeline.bearers.get((key[:4], key[4:8], key[8:12]))
        if bearer is not None:
            bearer.offloaded_down += delta

    def _fold_services(self) -> None:
        m = self._maps.get("service_stats")
        if m is None:
            return
        for name, slot in self._slots.items():
            totals = [0, 0, 0, 0]
            for raw in m.lookup_percpu(L.U32.pack(slot)):
                for i, v in enumerate(L.SERVICE_STATS.unpack(raw)):
                    totals[i] += v
            old = self._snap_svc.get(slot, (0, 0, 0, 0))
            self._snap_svc[slot] = (totals[0], totals[1], totals[2], totals[3])
            sc = self.pipeline.service_counters.get(name)
            if sc is not None:
                sc.up_packets += totals[0] - old[0]
                sc.up_bytes += totals[1] - old[1]
                sc.down_packets += totals[2] - old[2]
                sc.down_bytes += totals[3] - old[3]

    def _fold_bearer(self, bearer: Bearer) -> None:
        """Fold one bearer's kernel counters (its two tunnel keys and its downlink entry)."""
        for uplink, teid in ((True, bearer.ul_teid), (False, bearer.dl_teid)):
            if teid is not None:
                key = L.tunnel_key_of(bearer, uplink=uplink)
                if key in self._installed.tunnels:
                    self._fold_tunnel(key)
        key = bearer.enb + bearer.sgw + bearer.ue
        if key in self._installed.downlink:
            self._fold_downlink(key)

    def _fold(self) -> None:
        """Fold every bearer's and service's kernel counters into the pipeline (what
        ``GET /tunnels`` shows), without holding the agent's lock for the whole walk. Call it
        without that lock (it takes it batch by batch; the lock is not re-entrant).

        The maps are read in batches (``BPF_MAP_LOOKUP_BATCH``) outside the lock, and each
        batch is applied under one short hold of it, so learning and the sync go on between
        two batches. An entry the sync rewrote or removed after the walk began is skipped (the
        sync folded it itself, fresh), and so is a read older than what a later fold already
        applied (the kernel's counters only grow): nothing is counted twice. The entries
        unchanged since the last fold cost one comparison.
        """
        with self._fold_lock:
            with self._lock:
                if not self._maps:
                    return
                tunnels, downlink = self._maps["tunnels"], self._maps["downlink"]
                touched: set[bytes] = set()
                self._fold_touched = touched
            try:
                for bmap, apply in (
                    (tunnels, self._apply_tunnels),
                    (downlink, self._apply_downlinks),
                ):
                    try:
                        for n, keys, values in bmap.lookup_batches(FOLD_CHUNK):
                            with self._lock:
                                apply(n, keys, values, touched)
                    except BpfError:
                        self._fold_one_by_one(bmap is tunnels)
            finally:
                with self._lock:
                    self._fold_touched = None
                    self._fold_services()

    def _apply_tunnels(self, n: int, keys: bytes, values: bytes, touched: set[bytes]) -> None:
        installed, snap, ks, vs = (
            self._installed.tunnels,
            self._snap_tun,
            L.TUNNEL_KEY_SIZE,
            L.TUNNEL_VAL.size,
        )
        for i, (packets, nbytes, _last, offloaded, _ue) in enumerate(
            L.TUNNEL_VAL.iter_unpack(values[: n * vs])
        ):
            key = keys[i * ks : (i + 1) * ks]
            if key in touched or key not in installed:
                continue
            p0, b0, o0 = snap.get(key, (0, 0, 0))
            if packets <= p0 or nbytes < b0 or offloaded < o0:
                continue  # nothing new since the last fold, or an older read than it
            self._fold_tunnel(key, values[i * vs : (i + 1) * vs])

    def _apply_downlinks(self, n: int, keys: bytes, values: bytes, touched: set[bytes]) -> None:
        installed, snap, ks, vs = (
            self._installed.downlink,
            self._snap_dl,
            L.BEARER_KEY_SIZE,
            L.DOWNLINK_VAL.size,
        )
        for i, row in enumerate(L.DOWNLINK_VAL.iter_unpack(values[: n * vs])):
            key = keys[i * ks : (i + 1) * ks]
            if key in touched or key not in installed or row[6] <= snap.get(key, 0):
                continue
            self._fold_downlink(key, values[i * vs : (i + 1) * vs])

    def _fold_one_by_one(self, tunnels: bool) -> None:
        """The fold without batch lookups (a kernel without them): one lookup per key, in
        chunks under the lock; each read is fresh, so no check against the walk is needed."""
        with self._lock:
            keys = list(self._installed.tunnels if tunnels else self._installed.downlink)
        for start in range(0, len(keys), FOLD_CHUNK):
            with self._lock:
                if not self._maps:
                    return
                installed = self._installed.tunnels if tunnels else self._installed.downlink
                for key in keys[start : start + FOLD_CHUNK]:
                    if key in installed:
                        if tunnels:
                            self._fold_tunnel(key)
                        else:
                            self._fold_downlink(key)

    def _fold_due(self, now: float) -> None:
        """The periodic fold, at the cost of what it can change: the pipeline purges a bearer
        idle for ``idle_timeout`` and expires a flow idle for ``flow_timeout``, so only those
        close to it (by their last-seen time as the pipeline knows it, found in the
        pipeline's expiry wheels, not by a scan) need the kernel's newer last-seen before its
        next purge. Everything else is folded when the API reads it (:meth:`tunnels`,
        :meth:`stats`), not every second (which cost O(N) map reads)."""
        if not self._maps:
            return
        p = self.pipeline
        before = now + 2 * FOLD_EVERY
        for bearer in p.bearers_expiring(before):
            if bearer.ul_teid is not None:
                self._fold_tunnel(L.tunnel_key_of(bearer, uplink=True))
            if bearer.dl_teid is not None:
                self._fold_tunnel(L.tunnel_key_of(bearer, uplink=False))
        for pkey in p.flows_expiring(before):
            key, _value = L.flow_entry(p, pkey, self._slots)
            if key in self._installed.flows:
                self._fold_flow(key)
        self._fold_services()
        if self._mirror_of:
            self._fold_refused()

    # ------------------------------------------------------------------ data path

    def _loop(self) -> None:
        io = self.io
        if self._tun is None:
            return
        buf = bytearray(MAX_FRAME)
        view = memoryview(buf)
        batch = self.config.batch
        next_tick = 0.0
        dontwait = socket.MSG_DONTWAIT
        polled = -1
        fd_port: dict[int, int] = {}
        poller = select.poll()
        while self._running:
            if polled != self._ports_gen:  # the TUN or the punt ports lost or re-created
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
                    if port == APPS and fd != self._tun:
                        continue  # replaced since the poll (its number may be reused)
                    for _ in range(batch):
                        if port == APPS:
                            packet = self._read_tun(fd)
                            if packet is None:
                                break
                            self._send_all(self._from_apps(packet, now), None)
                            continue
                        try:
                            n = self._rx[port].recv_into(buf, MAX_FRAME, dontwait)
                        except BlockingIOError:
                            break
                        except OSError as exc:
                            io[f"rx_error_{errno_name(exc.errno)}"] += 1
                            break
                        if n <= VNET_HDR_LEN:
                            io["rx_runt"] += 1
                            continue
                        io["punt_enb" if port == ENB else "punt_sgw"] += 1
                        vnet = bytes(view[:VNET_HDR_LEN])
                        frame = bytes(view[VNET_HDR_LEN:n])
                        self._send_all(self._from_s1(frame, port, now), (frame, vnet))
                if now >= next_tick:
                    next_tick = now + TICK
                    if now >= self._next_fold:
                        self._next_fold = now + FOLD_EVERY
                        self._fold_due(now)
                        self._read_punt_drops()
                    self._send_all(self._tick(now), None)
                if now >= self._next_retry and self._needs_retry():
                    self._next_retry = now + RETRY_EVERY
                    self._retry_waiting()
                if self._dirty.pending() or self.pipeline.ondemand.changed:
                    try:
                        self._sync()
                    except BpfError as exc:
                        io[f"sync_error_{type(exc).__name__}"] += 1


def _adds_last(row: tuple[object, object]) -> bool:
    """Sort key: rows whose entry goes away (None) before rows that write one."""
    return row[1] is not None


def create_fastpath_backend(config: TofConfig) -> FastPathBackend:
    """Factory for ``backend = "fastpath"`` (see :func:`fluidedge.tof.backend.create_backend`)."""
    return FastPathBackend(config)
