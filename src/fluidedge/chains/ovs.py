"""The thin adapter: a bridge's compiled chains installed in OpenFlow bundles, make-before-break.

Every flow of a chain carries the cookie ``CHAIN_COOKIE | chain_id << 32 | version``, the
version that last wrote it. A change of a chain is a diff against what is installed, in two
bundles (:meth:`fluidedge.ovs.ofctl.Ofctl.bundle`, each all or nothing: a packet sees a whole
table, never half of one). The first *adds* the flows that are new or whose actions changed,
under the next version (an add of an existing identity replaces it in place, so the steering
of a flow in flight never has a gap), and deletes the pins of members that left; the second,
a moment later (:data:`DRAIN`), *deletes* strictly the flows that are gone, so packets still
inside a function that left its group come back through its old return flows. Unchanged
flows and chains are not touched, and neither are the learned pins of members that stay: a
flow keeps its function instance across a change of its group. The pins of a member that is
gone (dead or deleted instance: its port left the bridge; or removed from its group) are
deleted by their cookie, so only its flows move, to a sibling. (``diff=False``: every flow of
a changed chain re-added under the new version, the old version deleted by its cookie.)

The first apply on a bridge (daemon start) reads what is installed (the chain and pin cookies)
and reconciles: current chains are installed whole under a version above any found, every
other chain cookie and every pin of a member that is not live is deleted, in the same bundle.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any

from fluidedge.chains.compiler import (
    CHAIN_COOKIE,
    COOKIE_MASK,
    PIN_COOKIE,
    T_PIN,
    ChainFlows,
    chain_cookie,
    compile_bridge,
    pin_cookie,
)
from fluidedge.chains.errors import DataPlaneFailure
from fluidedge.chains.model import ChainState
from fluidedge.ovs.bridges import ATTACHED_MAC, ISOLATED, isolation_vlan
from fluidedge.ovs.daemons import OvsDaemons
from fluidedge.ovs.errors import OvsError
from fluidedge.ovs.flows import dump_digest
from fluidedge.ovs.ofctl import Ofctl
from fluidedge.ovs.vsctl import Vsctl

_COOKIE = re.compile(r"cookie=(0x[0-9a-f]+)")
ALL = 0xFFFFFFFFFFFFFFFF
# Seconds between the bundle that installs a new version and the one that removes what is
# left of the old: packets already inside a function that left its group still find their
# way back (its return flows are among the leftovers).
DRAIN = 0.2


@dataclass(frozen=True)
class Installed:
    """A chain as installed: its version, its flows, and the cookie each flow carries (the
    version that last wrote it: a diff apply leaves unchanged flows alone)."""

    version: int
    flows: ChainFlows
    cookies: dict[tuple[int, int, str], int]


def _diff(
    was: Installed, cf: ChainFlows, cookie: int
) -> tuple[list[str], list[str], dict[tuple[int, int, str], int]]:
    """(now, later, cookies) of a diff apply: ``now`` adds the flows that are new or whose
    actions changed (an add of an existing identity replaces it in place), ``later`` deletes
    (strictly, by identity and cookie) the flows that are gone; unchanged flows are not
    touched and keep their cookie."""
    before = {f.key: f for f in was.flows.flows}
    now: list[str] = []
    cookies: dict[tuple[int, int, str], int] = {}
    for f in cf.flows:
        old = before.get(f.key)
        if old is not None and old.actions == f.actions:
            cookies[f.key] = was.cookies[f.key]
        else:
            now.append(f"add {f.text(cookie)}")
            cookies[f.key] = cookie
    keys = {f.key for f in cf.flows}
    later = [
        f"delete_strict cookie={was.cookies[f.key]:#x}/{ALL:#x},{f.spec()}"
        for f in was.flows.flows
        if f.key not in keys
    ]
    return now, later, cookies


_FIELD = re.compile(r"(\w+)=([^,\s]+)")
_KEYWORD = re.compile(r"priority=\d+,([a-z0-9]+)[, ]")
_PROTO = {"tcp": 6, "tcp6": 6, "udp": 17, "udp6": 17, "sctp": 132, "sctp6": 132, "icmp": 1,
          "icmp6": 58}  # fmt: skip


def parse_pin(line: str) -> dict[str, Any] | None:
    """One learned pin (``dump-flows`` with stats) as ``{position, member, protocol, src, dst,
    sport, dport, packets, bytes}`` (ports 0 for a pin by addresses only); None for a line
    that is no pin. ``packets``: the flow's packets that found the pin, i.e. all but the
    first of the direction whose first packet learned it."""
    fields = dict(_FIELD.findall(line))
    cookie = int(fields.get("cookie", "0"), 16)
    if cookie & COOKIE_MASK != PIN_COOKIE or "reg7" not in fields:
        return None
    keyword = _KEYWORD.search(line)
    proto = _PROTO.get(keyword[1], 0) if keyword else 0
    src = fields.get("nw_src") or fields.get("ipv6_src", "")
    dst = fields.get("nw_dst") or fields.get("ipv6_dst", "")
    return {
        "position": int(fields["reg7"], 0),
        "member": cookie & 0xFFFF,
        "protocol": int(fields.get("nw_proto", proto)),
        "src": src,
        "dst": dst,
        "sport": int(fields.get("tp_src", 0)),
        "dport": int(fields.get("tp_dst", 0)),
        "packets": int(fields.get("n_packets", 0)),
        "bytes": int(fields.get("n_bytes", 0)),
    }


class OvsChains:
    """The chains of one bridge on one of our switches."""

    def __init__(
        self, daemons: OvsDaemons, bridge: str, drain: float = DRAIN, *, diff: bool = True
    ) -> None:
        self.daemons = daemons
        self.drain = drain
        # A change re-writes only the flows that changed (False: every flow of the chain in
        # the new version, as before; kept for the bench's comparison).
        self.diff = diff
        self.bridge = bridge
        self.ofctl = Ofctl(daemons, bridge)
        self.installed: dict[int, Installed] | None = None
        self.isolated: set[str] = set()
        # Ports plugged isolated by the instances part (a function's legs, marked on their
        # interface): they stay isolated when no pair names them any more.
        self.plugged_isolated: set[str] = set()
        # The MAC behind each port (its interface's ``attached-mac``, set by the instances
        # part): routed functions are addressed with it.
        self.macs: dict[str, str] = {}
        self.bundles = 0
        # The digest of the chain flows at the first look after our last apply (the switch
        # prints flows in its own text: learnt, not rendered; see :meth:`intact`).
        self._digest: str | None = None

    def ofports(self) -> dict[str, int]:
        """Switch port name -> OpenFlow port number of the bridge's ports (one OVSDB query)."""
        vsctl = Vsctl(self.daemons)
        try:
            mine = set(vsctl.ports(self.bridge))
            interfaces = vsctl.interfaces()
        except OvsError as exc:
            raise DataPlaneFailure(f"chains on {self.bridge}: {exc}") from exc
        out = {}
        macs = {}
        marked = set()
        for name, info in interfaces.items():
            ofport = info["ofport"]
            if name in mine and isinstance(ofport, int) and ofport > 0:
                out[name] = ofport
                ids = info["external_ids"]
                if isinstance(ids, dict):
                    if ids.get(ISOLATED) == "true":
                        marked.add(name)
                    if isinstance(ids.get(ATTACHED_MAC), str):
                        macs[name] = ids[ATTACHED_MAC]
        self.plugged_isolated = marked
        self.macs = macs
        return out

    def port_packets(self, ports: list[str]) -> dict[str, tuple[int, int]]:
        """Switch port -> (packets it sent into the switch, packets the switch sent to it),
        for those of ``ports`` on this bridge."""
        try:
            ofports = self.ofports()
            counts = self.ofctl.port_packets()
        except OvsError as exc:
            raise DataPlaneFailure(f"chains on {self.bridge}: {exc}") from exc
        return {p: counts[ofports[p]] for p in ports if p in ofports and ofports[p] in counts}

    def port_macs(self) -> dict[str, str]:
        """Switch port -> the MAC behind it, as the last :meth:`ofports` read them."""
        return dict(self.macs)

    def _cookies(self, base: int) -> set[int]:
        lines = self.ofctl.dump(f"cookie={base:#x}/{COOKIE_MASK:#x}")
        return {int(m[1], 16) for line in lines if (m := _COOKIE.search(line))}

    def check(self, state: ChainState) -> None:
        """Would ``state`` compile on this bridge (raises the compiler's conflict)?"""
        compile_bridge(state, self.ofports(), self.macs)

    def apply(self, state: ChainState) -> int:
        """Make the bridge's chain flows those of ``state``; the number of flow-mods sent."""
        try:
            ofports = self.ofports()
            compiled = compile_bridge(state, ofports, self.macs)
            mods, later, installed = self._plan(compiled)
            functions = {p for cf in compiled.values() for p in cf.function_ports}
            # A function's ports leave the learning switch (an access VLAN of their own:
            # NORMAL never floods or forwards to them, nor from them to anything) before
            # traffic is steered to them, and come back once no pair names them, unless they
            # were plugged isolated (a template's ``isolated`` interface): those already are,
            # and stay so.
            # Only a port whose tag is not right yet is written: every OVSDB write makes
            # ovs-vswitchd reconfigure the bridge on the thread that also polls the ports of
            # the userspace datapath (packets are lost meanwhile at 10,000/s).
            vsctl = Vsctl(self.daemons)
            todo = functions - self.isolated if self.installed else functions
            todo -= self.plugged_isolated
            tags = vsctl.port_tags() if todo else {}
            for port in sorted(todo):
                if tags.get(port) != isolation_vlan(ofports[port]):
                    vsctl.set_tag(port, isolation_vlan(ofports[port]))
            sent = self.ofctl.bundle(mods)
            if later:
                time.sleep(self.drain)
                sent += self.ofctl.bundle(later)
            for port in sorted(self.isolated - functions - self.plugged_isolated):
                if port in ofports:
                    vsctl.set_tag(port, None)
        except OvsError as exc:
            raise DataPlaneFailure(f"chains on {self.bridge}: {exc}") from exc
        self.installed = installed
        self.isolated = functions
        if sent:
            self.bundles += 1
            self._digest = None  # learnt again at the next look
        return sent

    def _plan(
        self, compiled: dict[str, ChainFlows]
    ) -> tuple[list[str], list[str], dict[int, Installed]]:
        """(now, later, installed): ``now`` adds the new versions and deletes the pins of
        members that left (no new packet goes to them); ``later``, after :attr:`drain`,
        deletes what is left of the old versions."""
        old: dict[int, Installed] = dict(self.installed or {})
        adds: list[str] = []
        deletes: list[str] = []
        later: list[str] = []
        new: dict[int, Installed] = {}
        if self.installed is None:
            found = self._cookies(CHAIN_COOKIE)
            pins = self._cookies(PIN_COOKIE)
            top = max((c & 0xFFFFFFFF for c in found), default=0)
            live = {pin_cookie(p, m) for cf in compiled.values() for p, m in cf.members}
            for cf in compiled.values():
                cookie = chain_cookie(cf.chain_id, top + 1)
                adds += [f"add {f.text(cookie)}" for f in cf.flows]
                new[cf.chain_id] = Installed(top + 1, cf, {f.key: cookie for f in cf.flows})
            later += [f"delete cookie={c:#x}/{ALL:#x}" for c in sorted(found)]
            deletes += [f"delete table={T_PIN},cookie={c:#x}/{ALL:#x}" for c in sorted(pins - live)]
            return adds + deletes, later, new
        for cf in compiled.values():
            was = old.pop(cf.chain_id, None)
            if was is not None and was.flows == cf:
                new[cf.chain_id] = was
                continue
            version = 1 if was is None else was.version + 1
            cookie = chain_cookie(cf.chain_id, version)
            if was is None or not self.diff:
                adds += [f"add {f.text(cookie)}" for f in cf.flows]
                cookies = {f.key: cookie for f in cf.flows}
                if was is not None:
                    later += [
                        f"delete cookie={c:#x}/{ALL:#x}" for c in sorted(set(was.cookies.values()))
                    ]
            else:
                mods, gone_flows, cookies = _diff(was, cf, cookie)
                adds += mods
                later += gone_flows
            new[cf.chain_id] = Installed(version, cf, cookies)
            if was is not None:
                gone = was.flows.members - cf.members
                gone |= {(p, m) for p, m in was.flows.members if p not in cf.positions}
                deletes += [
                    f"delete table={T_PIN},cookie={pin_cookie(p, m):#x}/{ALL:#x}"
                    for p, m in sorted(gone)
                ]
        for was in old.values():
            unpin = [
                f"delete table={T_PIN},cookie={pin_cookie(p, m):#x}/{ALL:#x}"
                for p, m in sorted(was.flows.members)
            ]
            # A removed chain's pins go now and again with its flows: until then its old
            # classifier still steers (and learns), e.g. a late reply.
            deletes += unpin
            later += [f"delete cookie={c:#x}/{ALL:#x}" for c in sorted(set(was.cookies.values()))]
            later += unpin
        return adds + deletes, later, new

    def intact(self) -> bool:
        """Whether the switch still holds every chain flow we installed, as installed (the
        security groups' renderer replaces a bridge's whole table on its first install, a
        vswitchd restart empties it, ``ovs-ofctl mod-flows`` replaces a flow's actions and
        keeps the count: the flows' digest, learnt at the first look after our apply, tells);
        when not, the next :meth:`apply` reinstalls from scratch."""
        if self.installed is None:
            return False
        want: dict[int, int] = {}
        for installed in self.installed.values():
            for cookie in installed.cookies.values():
                want[cookie] = want.get(cookie, 0) + 1
        try:
            lines = self.ofctl.dump(f"cookie={CHAIN_COOKIE:#x}/{COOKIE_MASK:#x}")
        except OvsError as exc:
            raise DataPlaneFailure(f"chains on {self.bridge}: {exc}") from exc
        have: dict[int, int] = {}
        for line in lines:
            m = _COOKIE.search(line)
            if m is not None:
                cookie = int(m[1], 16)
                have[cookie] = have.get(cookie, 0) + 1
        if have == want:
            digest = dump_digest(lines)
            if self._digest is None:
                self._digest = digest
            if self._digest == digest:
                return True
        self.installed = None
        self._digest = None
        return False

    def member_flows(self, port: str) -> list[dict[str, Any]]:
        """The flows pinned to the member whose ingress is ``port`` (any group, any chain),
        each with what the switch counted on its pin: see :func:`parse_pin`."""
        ofport = self.ofports().get(port)
        if ofport is None:
            return []
        try:
            lines = self.ofctl.dump_stats(f"table={T_PIN}")
        except OvsError as exc:
            raise DataPlaneFailure(f"chains on {self.bridge}: {exc}") from exc
        out = []
        for line in lines:
            pin = parse_pin(line)
            if pin is not None and pin.pop("member") == ofport:
                out.append(pin)
        return sorted(out, key=lambda p: (p["position"], p["src"], p["dst"], p["sport"]))

    def pins(self) -> list[str]:
        """The learned pins (table 41), as ``dump-flows`` prints them."""
        try:
            return self.ofctl.dump(f"table={T_PIN}")
        except OvsError as exc:
            raise DataPlaneFailure(f"chains on {self.bridge}: {exc}") from exc
