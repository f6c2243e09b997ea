"""The thin adapter of ``linuxbridge`` networks: a compiled :class:`~.tcplan.Plan` written to
the maps of one tc/eBPF program (``chains.bpf.c``) attached to the bridge's chain ports.

One program object per bridge; its filter (tc clsact ingress, preference :data:`PREF`) goes on
every port that has rules or is a function's leg, before the port's traffic is steered. The
kernel forwards along the chain on its own (no userspace datapath, no daemon on the path): a
stopped or restarting daemon leaves the programs attached and the chains flowing.

Make-before-break. A map entry is replaced atomically (the hash maps are not preallocated, so a
packet reading an entry being replaced reads the old one whole: ``chains.bpf.c``); a change is
ordered so that no packet meets half of it:

1. the groups that are new or changed are written (positions are per chain and group, so a
   rule still in use never meets a group it did not mean: a changed group is the same hop
   with other live members, and a member that left keeps its pinned flows only until they
   meet the new entry, which moves them to a sibling);
2. the rules are written to the *other* half of the rules array (two generations), then each
   port's entry flips to its new rules in one update, in :mod:`.tcorder`'s order: where
   packets come back into the program (a member's return leg) before the ports that steer
   them there, so a packet sent the new way meets new rules on its way back; a port new to
   chains gets its entry first, then the program (its first packet sees it whole);
3. after :data:`DRAIN` (packets still inside a function that left find their way back
   meanwhile), the ports packets no longer come back to (a function leaving a chain: its legs
   drop again) switch, the ports that left lose the program, and the groups nobody names are
   deleted.

Flow affinity is the program's pins (an LRU map): a group's new member takes no existing flow,
a member that leaves moves only its own. The pins live with the program object: a daemon
restart loads a new object, and flows are then re-picked by the same symmetric hash over the
same live members (sorted by ifindex), i.e. onto the member they had, unless the group changed
meanwhile.

Security groups on a Linux bridge are nftables hooks of the bridge, which a redirect at the
port's ingress never crosses: a port whose groups filter it (``filtered``) is therefore never
a chain's end or a function's leg here (its classifiers are inactive, its member dead, and a
warning says why), so a chain can never carry traffic past a group. A network that needs both
uses the ``ovs`` driver, where the groups judge each packet at the chain's ends.

A function's legs leave the bridge's forwarding: no learning, no flooding of unknown unicast,
multicast or broadcast to them (bridge port flags), and the program drops what they send that
no rule takes. Legs plugged isolated by the instances part (a template's ``isolated``
interface: :func:`fluidedge.linux.tc.isolate` from the start; what the program steers to a
leg carries :data:`fluidedge.linux.tc.LEG_MARK`, the only frames the leg's egress lets through:
the bridge device's own broadcasts never reach a function) stay so when no
pair names them; other ports get their flags back.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import re
import struct
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from fluidedge.chains import tcorder
from fluidedge.chains.errors import DataPlaneFailure
from fluidedge.chains.model import ChainState
from fluidedge.chains.tcplan import (
    GROUP_HEAD,
    MAX_ALL_RULES,
    MAX_MEMBERS,
    MEMBER,
    PIN_KEY,
    PIN_VAL,
    PORT_ISOLATE,
    PORT_VAL,
    RULE,
    ST_NAMES,
    Plan,
    compile_plan,
)
from fluidedge.errors import SystemFailure
from fluidedge.linux import bpfbuild, tc
from fluidedge.linux.libbpf import BpfError, BpfMap, BpfObject
from fluidedge.linux.proc import CommandError, netns_argv, run

SOURCE = "chains.bpf.c"
PROGRAM = "chain_ingress"
PREF = "10"
HANDLE = "196"  # 0xc4
DRAIN = 0.2
HALF = MAX_ALL_RULES // 2
_U32 = struct.Struct("=I")
_U64 = struct.Struct("=Q")
_GONE = re.compile(r"Device does not exist|Cannot open network namespace")
log = logging.getLogger("fluidedge.chains")

MacResolver = Callable[[Iterable[str]], Mapping[str, str]]


def _no_macs(ports: Iterable[str]) -> Mapping[str, str]:
    return {}


def _ours(line: str) -> bool:
    """Is this ``tc filter show`` line our program's filter (preference, handle, name)?"""
    return (
        f"pref {PREF} bpf" in line
        and f"handle 0x{int(HANDLE):x} " in line
        and f"name {PROGRAM} " in line
    )


def _address(words: bytes, family: int) -> str:
    return str(ipaddress.ip_address(words[:4] if family == 4 else words))


class LinuxChains:
    """The chains of one Linux bridge (``bridge`` in namespace ``netns``); ``macs``: the MAC
    behind each of the given ports (the instance's interface), which routed functions need."""

    def __init__(
        self,
        netns: str | None,
        bridge: str,
        macs: MacResolver = _no_macs,
        drain: float = DRAIN,
        filtered: Callable[[], set[str]] = set,
    ) -> None:
        self.netns = netns
        self.bridge = bridge
        self.macs_of = macs
        self.drain = drain
        self.filtered = filtered
        self._warned: set[str] = set()
        self._obj: BpfObject | None = None
        self._maps: dict[str, BpfMap] = {}
        self._lock = threading.Lock()
        self.plan: Plan | None = None
        self.generation = 0
        self.attached: dict[str, int] = {}  # port name -> the ifindex it had when attached
        self.macs: dict[str, str] = {}

    # ------------------------------------------------------------------ the program
    def _load(self) -> dict[str, BpfMap]:
        if self._obj is None:
            try:
                obj = BpfObject(bpfbuild.object_path("fluidedge.chains", SOURCE))
            except (BpfError, bpfbuild.BpfBuildError) as exc:
                raise DataPlaneFailure(f"chains on {self.bridge}: {exc}") from exc
            self._obj = obj
            self._maps = {
                "ports": BpfMap(obj.map_fd("ports"), 4, PORT_VAL.size),
                "rules": BpfMap(obj.map_fd("rules"), 4, RULE.size),
                "groups": BpfMap(
                    obj.map_fd("groups"), 4, GROUP_HEAD.size + MEMBER.size * MAX_MEMBERS
                ),
                "pins": BpfMap(obj.map_fd("pins"), PIN_KEY.size, PIN_VAL.size),
                "stats": BpfMap(obj.map_fd("stats"), 4, 8, percpu=True),
            }
        return self._maps

    def _ip(self, *argv: str) -> Any:
        out = run(netns_argv(self.netns, ["ip", "-j", *argv])).stdout
        return json.loads(out or "[]")

    # ------------------------------------------------------------------ reads
    def ofports(self) -> dict[str, int]:
        """Bridge port name -> ifindex (one ``ip link`` query); also refreshes the MACs. A
        bridge (or namespace) that does not exist has no ports: nothing to steer there, as
        an ``ovs`` network whose switch is not running has no data plane."""
        try:
            links = self._ip("link", "show", "master", self.bridge)
        except CommandError as exc:
            if _GONE.search(str(exc)):
                self.macs = {}
                return {}
            raise DataPlaneFailure(f"chains on {self.bridge}: {exc}") from exc
        out = {str(link["ifname"]): int(link["ifindex"]) for link in links}
        self.macs = dict(self.macs_of(sorted(out)))
        return out

    def port_macs(self) -> dict[str, str]:
        return dict(self.macs)

    def port_packets(self, ports: list[str]) -> dict[str, tuple[int, int]]:
        """Port -> (packets it sent into the bridge, packets sent to it): its kernel counts
        (a host-side veth end receives what the function sends)."""
        try:
            links = self._ip("-s", "link", "show", "master", self.bridge)
        except CommandError as exc:
            raise DataPlaneFailure(f"chains on {self.bridge}: {exc}") from exc
        out: dict[str, tuple[int, int]] = {}
        for link in links:
            name = str(link["ifname"])
            if name in ports:
                stats = link.get("stats64", {})
                out[name] = (int(stats["rx"]["packets"]), int(stats["tx"]["packets"]))
        return out

    def intact(self) -> bool:
        """Whether every port we attached still carries our program (one ``tc -batch`` for
        all of them): a filter or clsact qdisc someone removed makes the next apply start
        over (re-adopt, re-attach). A port re-created under the same name has another
        ifindex: :meth:`ofports` changes, and the service re-applies anyway."""
        if self.plan is None or self._obj is None:
            return False
        if not self.attached:
            return True
        out = tc.show_filters_batch(self.netns, [(name, "ingress") for name in self.attached])
        found = sum(1 for line in out.splitlines() if _ours(line))
        if found == len(self.attached):
            return True
        self.plan = None
        self.attached.clear()
        return False

    def counters(self) -> dict[str, int]:
        """:meth:`stats` once the program is loaded, else nothing (no load for a scrape)."""
        return self.stats() if self._obj is not None else {}

    def stats(self) -> dict[str, int]:
        """The program's counters (summed over CPUs)."""
        maps = self._load()
        out = {}
        for index, name in enumerate(ST_NAMES):
            values = maps["stats"].lookup_percpu(_U32.pack(index))
            out[name] = sum(_U64.unpack(v)[0] for v in values)
        return out

    def member_flows(self, port: str) -> list[dict[str, Any]]:
        """The flows pinned to the member whose ingress is ``port``, one entry per direction
        with the packets and bytes the program counted on its pin (every packet, the first
        included)."""
        index = self.ofports().get(port)
        if index is None or self._obj is None:
            return []
        out = []
        for key, value in self._maps["pins"].items():
            a, b, position, pa, pb, family, proto = PIN_KEY.unpack(key)
            member, _, _, p0, p1, b0, b1 = PIN_VAL.unpack(value)
            if member != index:
                continue
            ends = ((_address(a, family), pa), (_address(b, family), pb))
            for (src, sport), (dst, dport), packets, size in (
                (ends[0], ends[1], p0, b0),
                (ends[1], ends[0], p1, b1),
            ):
                if packets:
                    out.append({"position": position, "protocol": proto, "src": src,
                                "dst": dst, "sport": sport, "dport": dport,
                                "packets": packets, "bytes": size})  # fmt: skip
        return sorted(out, key=lambda p: (p["position"], p["src"], p["dst"], p["sport"]))

    # ------------------------------------------------------------------ writes
    def _steerable(self, ports: Mapping[str, int]) -> dict[str, int]:
        """``ports`` minus those the bridge's security groups filter (see the module)."""
        filtered = self.filtered() & set(ports)
        for port in sorted(filtered - self._warned):
            log.warning(
                "chains on %s: port %s has security groups, which a Linux bridge cannot "
                "enforce on chained traffic: it is no chain end or function leg here",
                self.bridge,
                port,
            )
        self._warned = filtered
        return {name: index for name, index in ports.items() if name not in filtered}

    def check(self, state: ChainState) -> None:
        """Would ``state`` compile on this bridge (raises the compiler's conflict)?"""
        compile_plan(state, self._steerable(self.ofports()), self.macs)

    def apply(self, state: ChainState) -> int:
        """Make the bridge's chains those of ``state``; the number of map entries written."""
        with self._lock:
            ports = self.ofports()
            plan = compile_plan(state, self._steerable(ports), self.macs)
            try:
                return self._apply(plan, ports)
            except (BpfError, CommandError) as exc:
                self.plan = None  # the next apply starts over
                raise DataPlaneFailure(f"chains on {self.bridge}: {exc}") from exc

    def _apply(self, plan: Plan, ifindex: Mapping[str, int]) -> int:
        maps = self._load()
        was = self.plan
        legs_before = was.function_ports if was is not None else frozenset()
        names = {index: name for name, index in ifindex.items()}
        writes = 0
        late: list[tuple[int, bytes]] = []
        for position, group in plan.groups.items():
            if was is None or was.groups.get(position) != group:
                maps["groups"].update(_U32.pack(position), group.pack())
                writes += 1
        if was is None or was.ports != plan.ports:
            generation = 1 - self.generation if was is not None else self.generation
            base = generation * HALF
            slot = base
            entries: dict[int, bytes] = {}
            for index, port in plan.ports.items():
                for rule in port.rules:
                    maps["rules"].update(_U32.pack(slot), rule.pack())
                    slot += 1
                    writes += 1
                first = slot - len(port.rules)
                flags = PORT_ISOLATE if port.isolate else 0
                entries[index] = PORT_VAL.pack(first, len(port.rules), flags, 0)
            for name in sorted(plan.function_ports - legs_before):
                if tc.isolation(self._filters(name)) is None:
                    tc.isolate(self.netns, name, tc.CHAINED)
            # Make before break (.tcorder): a port switches before the ports that steer
            # packets into it, a port packets stop coming to switches after the drain; a port
            # not steering yet gets its entry, then its program (an attach is a tc command).
            switch = tcorder.order(was, plan)
            for index in switch.first:
                self._switch(names[index], index, entries[index])
                writes += 1
            late = [(index, entries[index]) for index in switch.last]
            writes += len(late)
            self.generation = generation
        gone_ports = [i for i in (was.ports if was else {}) if i not in plan.ports]
        gone_groups = [p for p in (was.groups if was else {}) if p not in plan.groups]
        if was is None:
            self._adopt(plan, ifindex)
        if gone_ports or gone_groups or late:
            time.sleep(self.drain)
            for index, value in late:
                self._switch(names[index], index, value)
            for index in gone_ports:
                maps["ports"].delete(_U32.pack(index))
            for name, index in list(self.attached.items()):
                if index not in plan.ports:
                    if name in ifindex:
                        tc.delete_filter(self.netns, name, "ingress", pref=PREF, handle=HANDLE)
                        tc.drop_clsact_if_unused(self.netns, name)
                    del self.attached[name]
            for position in gone_groups:
                maps["groups"].delete(_U32.pack(position))
        for name in sorted(legs_before - plan.function_ports):
            if name in ifindex and tc.isolation(self._filters(name)) != tc.PLUGGED:
                tc.unisolate(self.netns, name, tc.CHAINED)
        self.plan = plan
        return writes

    def _switch(self, name: str, index: int, entry: bytes) -> None:
        """Give port ``name`` its new entry, and the program if it has none yet."""
        self._load()["ports"].update(_U32.pack(index), entry)
        if self.attached.get(name) != index:
            tc.attach_bpf(self.netns, name, "ingress", self._prog_fd(), pref=PREF, handle=HANDLE)
            self.attached[name] = index

    def _adopt(self, plan: Plan, ifindex: Mapping[str, int]) -> None:
        """First apply (daemon start): what an earlier daemon left on this bridge goes. Its
        filter on a port that is no chain port now (the new program replaced it on the others),
        and the flags of a port that was a function's leg and no longer is."""
        if not ifindex:
            return  # no ports (or no bridge): nothing was left on any
        # Only ports with a clsact qdisc can carry a filter: one query finds them, so a
        # network of a thousand plain instance ports costs no thousand tc calls at start.
        try:
            out = run(netns_argv(self.netns, ["tc", "-j", "qdisc", "show"])).stdout
        except CommandError as exc:
            raise DataPlaneFailure(f"chains on {self.bridge}: {exc}") from exc
        clsact = {str(q.get("dev")) for q in json.loads(out or "[]") if q.get("kind") == "clsact"}
        for name in sorted(clsact & set(ifindex)):
            if ifindex[name] in plan.ports:
                continue
            text = self._filters(name)
            if any(_ours(line) for line in text.splitlines()):
                tc.delete_filter(self.netns, name, "ingress", pref=PREF, handle=HANDLE)
                tc.drop_clsact_if_unused(self.netns, name)
            if tc.isolation(text) == tc.CHAINED and name not in plan.function_ports:
                tc.unisolate(self.netns, name, tc.CHAINED)

    def _prog_fd(self) -> int:
        if self._obj is None:
            raise DataPlaneFailure(f"chains on {self.bridge}: the program is not loaded")
        return self._obj.prog_fd(PROGRAM)

    def _filters(self, port: str) -> str:
        try:
            return tc.show_filters(self.netns, port, "ingress")
        except (CommandError, SystemFailure):
            return ""  # no clsact qdisc (or no such port): no filter

    def close(self) -> None:
        """Forget the program object (the filters keep it, and its maps, in the kernel)."""
        if self._obj is not None:
            self._obj.close()
            self._obj = None
            self._maps = {}
