"""The nftables renderer: a compiled program -> one ``nft -f`` transaction per network.

Why two tables per network, and why the ``inet`` family holds the stateful part: this host's
kernel has no ``nf_conntrack_bridge`` (``ct`` expressions are refused in ``bridge`` tables),
but it has ``br_netfilter``, which runs bridged IPv4/IPv6 frames through the ``inet`` hooks
(conntrack included) when ``net.bridge.bridge-nf-call-ip{,6}tables`` is 1 (the renderer sets
it in the bridge's namespace). Those hooks see the bridge, not the bridge port, so the bridge
table tags each frame with its ports in the packet mark (low 16 bits: the filtered port it came
in on, high 16 bits: the filtered port it goes out on; the mark of a frame coming from an
instance is always 0, since crossing a network namespace clears it) and the inet table matches
the tags. On a kernel with ``nf_conntrack_bridge`` the same layout works unchanged.

Layout (``<t>`` = ``fesg_<network>``, ``<n>`` = a port's tag; see docs/security-groups.md)::

    table bridge <t>                        stateless, per frame
      chain pre    (prerouting, -200)       mark := in-tag; jump the port's spoof chain
      chain p<n>_sec                        MAC, ARP, IPv4/IPv6 source, ND, DHCP/RA checks
      chain p<n>_na                         NA target must be one of the port's addresses
      chain fe_fwd (forward, -200)          mark |= out-tag << 16; only ARP/IP to a port
      set   p<n>_src4 / p<n>_src6           (mac . prefix) the port may send from
    table inet <t>                          stateful, per connection, zone per network
      chain zpre (prerouting, -300)         iif = bridge -> ct zone set <zone> (set once: wins)
      chain zroute (prerouting, -299)       routed in to a port's address -> ct zone set <zone>
      chain zout (output, -300)             oif = bridge -> ct zone set <zone>
      chain fe_fwd (forward, 0) / fe_in (input, 0): from the bridge (bridged or routed out)
                                            -> chain net; routed in -> chain net_out
      chain fe_out (output, 0)              host -> port: ingress by destination address
      chain net                             est/rel accept; egress vmap on the in-tag, ingress
                                            vmap on the out-tag; accept
      chain p<n>_eg / p<n>_in               invalid drop, new TCP must be a SYN, the port's
                                            clauses (return / accept), then drop
      set   rg_<group>_<zone>_<4|6>         remote-group members on this network

An update is one ``nft -f`` transaction (a reader never sees half a policy; connection state is
not touched by it). It carries only what changed (:func:`render_diff`: the chains and sets
whose content differs from what the renderer installed last, flushed and refilled; new ones
added, unused ones deleted), or both tables whole (create-if-missing, delete, recreate) on the
first install and when a base chain's header changes, so nothing stale survives.
"""

from __future__ import annotations

import collections
import functools
import hashlib
import ipaddress
import subprocess
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from fluidedge.core.fields import PROTO_ICMP, PROTO_ICMPV6, IPNetwork
from fluidedge.errors import FluidedgeError
from fluidedge.linux import netns as netns_mod
from fluidedge.secgroups.compiler import (
    DHCPV4_CLIENT,
    DHCPV4_SERVER,
    DHCPV6_CLIENT,
    DHCPV6_SERVER,
    ICMPV6_UNSPEC_OK,
    AddressSet,
    Clause,
    FilterProgram,
    PortFilter,
    SourceAllow,
)
from fluidedge.secgroups.errors import FilterFailure, InvalidSecgroup
from fluidedge.secgroups.model import Direction

MAX_TAG = 0xFFFF
TABLE_PREFIX = "fesg_"
NFT_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Binding:
    """Where a network's filter is installed: its bridge and that bridge's namespace, and the
    network's driver (``linuxbridge``, ``ovs``, ``ovn``; None: not known, the renderer asks
    the switches)."""

    network: str
    bridge: str
    netns: str | None = None
    driver: str | None = None


def table_name(network: str) -> str:
    return TABLE_PREFIX + network.replace("-", "_")


def _collapse(nets: Sequence[IPNetwork]) -> list[IPNetwork]:
    v4 = [n for n in nets if isinstance(n, ipaddress.IPv4Network)]
    v6 = [n for n in nets if isinstance(n, ipaddress.IPv6Network)]
    return [*ipaddress.collapse_addresses(v4), *ipaddress.collapse_addresses(v6)]


# What a filtered port's chains see first: invalid packets go, and a new TCP connection must
# start with a SYN (conntrack would otherwise pick up a bare ACK as a new connection).
_NEW_ONLY = (
    "    ct state invalid drop",
    "    tcp flags & (fin|syn|rst|ack) != syn drop",
)


def _clause_expr(clause: Clause, direction: Direction) -> str:
    v6 = clause.ethertype == "IPv6"
    ip = "ip6" if v6 else "ip"
    parts = [f"meta nfproto {'ipv6' if v6 else 'ipv4'}"]
    if clause.protocol is not None:
        parts.append(f"meta l4proto {clause.protocol}")
    if clause.port_min is not None and clause.port_max is not None:
        ports = (
            str(clause.port_min)
            if clause.port_min == clause.port_max
            else f"{clause.port_min}-{clause.port_max}"
        )
        parts.append(f"th dport {ports}")
    if clause.icmp_type is not None and clause.protocol in (PROTO_ICMP, PROTO_ICMPV6):
        icmp = "icmpv6" if clause.protocol == PROTO_ICMPV6 else "icmp"
        parts.append(f"{icmp} type {clause.icmp_type}")
        if clause.icmp_code is not None:
            parts.append(f"{icmp} code {clause.icmp_code}")
    field = "saddr" if direction == "ingress" else "daddr"
    if clause.remote_prefix is not None:
        parts.append(f"{ip} {field} {clause.remote_prefix}")
    if clause.remote_set is not None:
        parts.append(f"{ip} {field} @{clause.remote_set}")
    return " ".join(parts)


def _na_rule(mac: str, prefix: ipaddress.IPv6Network) -> str:
    mask = int(prefix.netmask)
    value = int(prefix.network_address)
    return f"ether saddr {mac} @th,64,128 & 0x{mask:032x} == 0x{value:032x} accept"


Sets = dict[str, tuple[str, str]]
Chains = dict[str, tuple[str, tuple[str, ...]]]
_SET4 = "type ether_addr . ipv4_addr; flags interval;"
_SET6 = "type ether_addr . ipv6_addr; flags interval;"


@functools.lru_cache(maxsize=8192)
def _bridge_port(
    tag: int, sources: tuple[SourceAllow, ...], dhcp_server: bool, router_adverts: bool
) -> tuple[
    tuple[tuple[str, tuple[str, str]], ...], tuple[tuple[str, tuple[str, tuple[str, ...]]], ...]
]:
    """One port's sets and chains in the bridge table (cached by what they depend on)."""
    src4 = [(x.mac, x.prefix) for x in sources if x.prefix.version == 4]
    src6 = [(x.mac, x.prefix) for x in sources if x.prefix.version == 6]
    items4 = [
        f"{mac} . {net}"
        for mac in sorted({m for m, _ in src4})
        for net in _collapse([n for m, n in src4 if m == mac])
    ]
    items6 = [
        f"{mac} . {net}"
        for mac in sorted({m for m, _ in src6})
        for net in _collapse([n for m, n in src6 if m == mac])
    ]
    macs = ", ".join(sorted({x.mac for x in sources}))
    sec = [
        f"ether saddr != {{ {macs} }} drop",
        # ARP: probes (sender 0.0.0.0) or (frame MAC, sender IP) and (sender MAC, sender IP)
        # both one of the port's pairs.
        "ether type arp arp saddr ip 0.0.0.0 accept",
        f"ether type arp ether saddr . arp saddr ip != @p{tag}_src4 drop",
        f"ether type arp arp saddr ether . arp saddr ip != @p{tag}_src4 drop",
        "ether type arp accept",
        # IPv4: DHCP discovery from 0.0.0.0, else the source must be the port's.
        f"ether type ip ip saddr 0.0.0.0 udp sport {DHCPV4_CLIENT} "
        f"udp dport {DHCPV4_SERVER} accept",
        f"ether type ip ether saddr . ip saddr != @p{tag}_src4 drop",
    ]
    if not dhcp_server:
        sec.append(f"ether type ip udp sport {DHCPV4_SERVER} drop")
    sec.append("ether type ip accept")
    unspec = ", ".join(str(t) for t in ICMPV6_UNSPEC_OK)
    sec += [
        f"ether type ip6 ip6 saddr :: icmpv6 type {{ {unspec} }} accept",
        f"ether type ip6 ether saddr . ip6 saddr != @p{tag}_src6 drop",
    ]
    if not router_adverts:
        sec.append("ether type ip6 icmpv6 type nd-router-advert drop")
    if not dhcp_server:
        sec.append(f"ether type ip6 udp sport {DHCPV6_SERVER} drop")
    sec += [
        f"ether type ip6 icmpv6 type nd-neighbor-advert jump p{tag}_na",
        "ether type ip6 accept",
        "drop",
    ]
    na = [_na_rule(mac, net) for mac, net in src6 if isinstance(net, ipaddress.IPv6Network)]
    sets = (
        (f"p{tag}_src4", (_SET4, ", ".join(items4))),
        (f"p{tag}_src6", (_SET6, ", ".join(items6))),
    )
    chains = (
        (f"p{tag}_sec", ("", tuple(sec))),
        (f"p{tag}_na", ("", (*na, "drop"))),
        (
            f"p{tag}_out",
            (
                "",
                (
                    "ether type != { arp, ip, ip6 } drop",
                    f"meta mark set meta mark and 0x0000ffff or 0x{tag << 16:08x}",
                ),
            ),
        ),
    )
    return sets, chains


def _bridge_table(ports: Sequence[tuple[int, PortFilter]]) -> tuple[Sets, Chains]:
    sets: Sets = {}
    chains: Chains = {}
    for tag, p in ports:
        port_sets, port_chains = _bridge_port(
            tag, p.allowed_sources, p.allow_dhcp_server, p.allow_router_advertisements
        )
        sets.update(port_sets)
        chains.update(port_chains)
    if ports:
        marks = ", ".join(f'"{p.device}" : 0x{tag:08x}' for tag, p in ports)
        jumps = ", ".join(f'"{p.device}" : jump p{tag}_sec' for tag, p in ports)
        outs = ", ".join(f'"{p.device}" : jump p{tag}_out' for tag, p in ports)
        chains["pre"] = (
            "type filter hook prerouting priority -200; policy accept;",
            (f"meta mark set iifname map {{ {marks} }}", f"iifname vmap {{ {jumps} }}"),
        )
        chains["fe_fwd"] = (
            "type filter hook forward priority -200; policy accept;",
            (f"oifname vmap {{ {outs} }}",),
        )
    return sets, chains


_EG_HEAD = (
    *(r.strip() for r in _NEW_ONLY),
    f"udp sport {DHCPV4_CLIENT} udp dport {DHCPV4_SERVER} return",
    f"udp sport {DHCPV6_CLIENT} udp dport {DHCPV6_SERVER} return",
)
_IN_HEAD = (
    *(r.strip() for r in _NEW_ONLY),
    f"udp sport {DHCPV4_SERVER} udp dport {DHCPV4_CLIENT} accept",
    f"udp sport {DHCPV6_SERVER} udp dport {DHCPV6_CLIENT} accept",
)


def _inet_table(
    binding: Binding, zone: int, ports: Sequence[tuple[int, PortFilter]], sets: Sequence[AddressSet]
) -> tuple[Sets, Chains]:
    br = binding.bridge
    out_sets: Sets = {}
    for aset in sets:
        kind = "ipv4_addr" if aset.ethertype == "IPv4" else "ipv6_addr"
        out_sets[aset.name] = (
            f"type {kind}; flags interval;",
            ", ".join(str(n) for n in _collapse(list(aset.members))),
        )
    # The ports' fixed addresses, by IP version: what names a port for traffic that carries no
    # out-tag (the host's own, or routed into the network; port security keeps another port from
    # claiming them).
    dests: dict[int, dict[str, int]] = {4: {}, 6: {}}
    for tag, p in ports:
        for src in p.allowed_sources:
            if src.prefix.num_addresses == 1:
                dests[src.prefix.version].setdefault(str(src.prefix.network_address), tag)
    # Traffic routed in from another interface (the TOF's apps TUN, a gateway) joins the
    # network's zone by its destination, so its replies (which come from the bridge, in the
    # zone) find its connection. One priority after ``zpre``: a packet's zone is set once (the
    # kernel ignores a second ``ct zone set``), so whatever enters from a bridge keeps that
    # bridge's zone and two networks with the same subnet in one namespace stay apart.
    routed_in = [
        f'iifname != "{br}" {ip} daddr {{ {", ".join(sorted(dests[version]))} }} ct zone set {zone}'
        for version, ip in ((4, "ip"), (6, "ip6"))
        if dests[version]
    ]
    chains: Chains = {
        "zroute": (
            "type filter hook prerouting priority -299; policy accept;",
            tuple(routed_in),
        ),
        "zpre": (
            "type filter hook prerouting priority -300; policy accept;",
            (f'iifname "{br}" ct zone set {zone}',),
        ),
        "zout": (
            "type filter hook output priority -300; policy accept;",
            (f'oifname "{br}" ct zone set {zone}',),
        ),
    }

    # Ports with the same clauses (same groups) share one clause chain, named by a digest of
    # its rules: 1,000 rules over 100 ports in 10 groups are 1,000 nft rules, not 10,000, and
    # a chain's name stays the same while its content does (so updates can diff).
    def shared(clauses: tuple[Clause, ...], direction: Direction) -> str | None:
        found = _clause_chain(clauses, direction)
        if found is None:
            return None
        chains[found[0]] = ("", found[1])
        return found[0]

    for tag, p in ports:
        eg, ing = shared(p.egress, "egress"), shared(p.ingress, "ingress")
        chains[f"p{tag}_eg"] = ("", (*_EG_HEAD, *([f"jump {eg}"] if eg else []), "drop"))
        chains[f"p{tag}_in"] = ("", (*_IN_HEAD, *([f"jump {ing}"] if ing else []), "drop"))
    net = ["ct state established,related,untracked accept"]
    net_in: list[str] = []
    net_out = ["ct state established,related,untracked accept"]
    if ports:
        egs = ", ".join(f"0x{tag:08x} : jump p{tag}_eg" for tag, _ in ports)
        ins = ", ".join(f"0x{tag << 16:08x} : jump p{tag}_in" for tag, _ in ports)
        net.append(f"meta mark and 0x0000ffff vmap {{ {egs} }}")
        net_in.append(f"meta mark and 0xffff0000 vmap {{ {ins} }}")
        # Host-originated or routed-in traffic has no out-tag: its destination names the port.
        for version, ip in ((4, "ip"), (6, "ip6")):
            if dests[version]:
                items = ", ".join(f"{a} : jump p{t}_in" for a, t in sorted(dests[version].items()))
                net_out.append(f"{ip} daddr vmap {{ {items} }}")
    chains["net"] = ("", (*net, "goto net_in"))
    chains["net_in"] = ("", (*net_in, "accept"))
    chains["net_out"] = ("", (*net_out, "accept"))
    # From a port, bridged or routed out of the network: its egress rules, then (bridged) the
    # destination port's ingress rules. Routed into the network from another interface (the
    # TOF's apps TUN, a gateway): no
    # out-tag either (the bridge sends it as its own), so the destination address names the
    # port, as for the host's own traffic; ``zpre`` put its connection in the network's zone.
    chains["fe_fwd"] = (
        "type filter hook forward priority 0; policy accept;",
        (f'iifname "{br}" jump net', f'oifname "{br}" jump net_out'),
    )
    chains["fe_in"] = (
        "type filter hook input priority 0; policy accept;",
        (f'iifname "{br}" jump net',),
    )
    chains["fe_out"] = (
        "type filter hook output priority 0; policy accept;",
        (f'oifname "{br}" jump net_out',),
    )
    return out_sets, chains


_CHAINS: dict[tuple[int, str], tuple[tuple[Clause, ...], tuple[str, tuple[str, ...]] | None]] = {}
_CHAINS_MAX = 4096


def _clause_chain(
    clauses: tuple[Clause, ...], direction: Direction
) -> tuple[str, tuple[str, ...]] | None:
    """A shared clause chain's name and rules, cached by the identity of ``clauses`` (the
    incremental compiler hands back the same tuple for unchanged groups, so only a changed
    group's chain is built; hashing a 100-clause tuple per port would cost more than that)."""
    key = (id(clauses), direction)
    seen = _CHAINS.get(key)
    if seen is not None and seen[0] is clauses:
        return seen[1]
    if len(_CHAINS) >= _CHAINS_MAX:
        _CHAINS.clear()
    found = _build_clause_chain(clauses, direction)
    _CHAINS[key] = (clauses, found)
    return found


def _build_clause_chain(
    clauses: tuple[Clause, ...], direction: Direction
) -> tuple[str, tuple[str, ...]] | None:
    if not clauses:
        return None
    verdict = "accept" if direction == "ingress" else "goto net_in"
    rules = tuple(f"{_clause_expr(c, direction)} {verdict}" for c in clauses)
    digest = hashlib.sha256("\n".join(rules).encode()).hexdigest()[:12]
    return f"c{'i' if direction == 'ingress' else 'e'}_{digest}", rules


@dataclass(frozen=True)
class Table:
    """One table as data: sets (name -> (declaration, elements)) and chains (name -> (base
    chain header or "", rules)), so two versions can be diffed into a small transaction."""

    family: str
    name: str
    sets: Mapping[str, tuple[str, str]]
    chains: Mapping[str, tuple[str, tuple[str, ...]]]

    def text(self) -> list[str]:
        out = [f"table {self.family} {self.name} {{"]
        for set_name, (decl, elements) in self.sets.items():
            out += [f"  set {set_name} {{", f"    {decl}"]
            if elements:
                out.append(f"    elements = {{ {elements} }}")
            out.append("  }")
        for chain, (header, rules) in self.chains.items():
            out.append(f"  chain {chain} {{")
            if header:
                out.append(f"    {header}")
            out += [f"    {r}" for r in rules]
            out.append("  }")
        return [*out, "}"]


def build_tables(
    program: FilterProgram, binding: Binding, tags: Mapping[str, int]
) -> tuple[Table, Table] | None:
    """``binding.network``'s part of ``program`` as its two tables (None: no port, no
    tables). ``tags`` gives each filtered port's device a tag in 1..65535 (stable while the
    driver lives, so a port keeps its chain names across updates)."""
    zone = program.zone_of(binding.network)
    if zone is None:
        return None
    ports = sorted(
        (
            (tags[p.device], p)
            for p in program.ports
            if p.network == binding.network and p.port_security
        ),
        key=lambda tp: tp[0],
    )
    for tag, p in ports:
        if not 1 <= tag <= MAX_TAG:
            raise InvalidSecgroup(f"tag: {tag} for {p.device} is outside 1..{MAX_TAG}")
    sets = [s for s in program.address_sets if s.network == binding.network]
    name = table_name(binding.network)
    return (
        Table("bridge", name, *_bridge_table(ports)),
        Table("inet", name, *_inet_table(binding, zone, ports, sets)),
    )


def render_full(network: str, tables: tuple[Table, Table] | None) -> str:
    """Replace both tables whole (create-if-missing, delete, recreate) in one transaction."""
    lines = render_removal(network).splitlines()
    if tables is not None:
        for table in tables:
            lines += table.text()
    return "\n".join(lines) + "\n"


def render_network(program: FilterProgram, binding: Binding, tags: Mapping[str, int]) -> str:
    """The ``nft -f`` text installing ``binding.network``'s part of ``program`` whole."""
    return render_full(binding.network, build_tables(program, binding, tags))


def render_diff(old: tuple[Table, Table], new: tuple[Table, Table]) -> str | None:
    """A transaction turning the installed ``old`` tables into ``new`` by touching only what
    changed (None: a base chain changed, replace the tables whole; "": nothing changed).

    Order inside the transaction: new sets and chains are declared first (rules may jump to
    them), changed chains are flushed and refilled, chains and sets no rule names any more
    are deleted last, changed sets are flushed and refilled.
    """
    out: list[str] = []
    later: list[str] = []
    for before, after in zip(old, new, strict=True):
        where = f"{after.family} {after.name}"
        for chain, (header, _) in after.chains.items():
            seen = before.chains.get(chain)
            if (seen is None and header) or (seen is not None and seen[0] != header):
                return None
        for chain in before.chains:
            if before.chains[chain][0] and chain not in after.chains:
                return None
        for set_name, (decl, elements) in after.sets.items():
            seen_set = before.sets.get(set_name)
            if seen_set is None:
                out.append(f"add set {where} {set_name} {{ {decl} }}")
                if elements:
                    out.append(f"add element {where} {set_name} {{ {elements} }}")
            elif seen_set[0] != decl:
                return None
            elif seen_set[1] != elements:
                later.append(f"flush set {where} {set_name}")
                if elements:
                    later.append(f"add element {where} {set_name} {{ {elements} }}")
        for chain in after.chains:
            if chain not in before.chains:
                out.append(f"add chain {where} {chain}")
        for chain, (_, rules) in after.chains.items():
            seen_rules = before.chains.get(chain, ("", ()))[1]
            if rules != seen_rules:
                if chain in before.chains:
                    out.append(f"flush chain {where} {chain}")
                out += [f"add rule {where} {chain} {rule}" for rule in rules]
        for chain in before.chains:
            if chain not in after.chains:
                later.insert(0, f"flush chain {where} {chain}")
                later.append(f"delete chain {where} {chain}")
        for set_name in before.sets:
            if set_name not in after.sets:
                later.append(f"delete set {where} {set_name}")
    text = out + later
    return "\n".join(text) + "\n" if text else ""


def render_removal(network: str) -> str:
    name = table_name(network)
    return (
        "\n".join(
            [
                f"table bridge {name} {{}}",
                f"delete table bridge {name}",
                f"table inet {name} {{}}",
                f"delete table inet {name}",
            ]
        )
        + "\n"
    )


class RecentPids:
    """The pids of the last ``size`` processes this daemon started to change the ruleset, so
    the kernel's announcement of a change (which names the process that committed it) tells
    ours from someone else's (:mod:`fluidedge.secgroups.nftwatch`). Thread-safe; bounded, so
    a pid forgotten long after its change costs at most one needless check."""

    def __init__(self, size: int = 1024) -> None:
        self._size = size
        self._pids: collections.OrderedDict[int, None] = collections.OrderedDict()
        self._lock = threading.Lock()

    def add(self, pid: int) -> None:
        with self._lock:
            self._pids.pop(pid, None)  # a reused pid is the newest again, kept once
            self._pids[pid] = None
            if len(self._pids) > self._size:
                self._pids.popitem(last=False)

    def __contains__(self, pid: object) -> bool:
        with self._lock:
            return pid in self._pids


# ``nft -f`` processes of this daemon (the pid is known before nft reads its transaction)
OUR_NFT_PIDS = RecentPids()


def run_in_netns(
    netns: str | None,
    argv: list[str],
    stdin: str | None = None,
    *,
    started: Callable[[int], object] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` inside ``netns``: forked from a thread that entered the namespace (the
    child inherits it), which saves ``ip netns exec``'s mount-namespace set-up per call.
    ``started`` gets the child's pid before its stdin is written."""

    def call() -> subprocess.CompletedProcess[str]:
        with subprocess.Popen(
            argv,
            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        ) as proc:
            if started is not None:
                started(proc.pid)
            try:
                out, err = proc.communicate(stdin, timeout=NFT_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.communicate()
                raise
        return subprocess.CompletedProcess(argv, proc.returncode, out, err)

    return netns_mod.call_in_netns(netns, call)


class Nft:
    """The thin adapter: runs ``nft`` (argv, never a shell) in a network namespace."""

    def apply(self, netns: str | None, text: str) -> None:
        """One atomic transaction (``nft -f -``): all of ``text`` or nothing."""
        self._run(netns, ["nft", "-f", "-"], text, started=OUR_NFT_PIDS.add)

    def tables(self, netns: str | None) -> list[tuple[str, str]]:
        """(family, name) of the fluidedge security-group tables in ``netns``."""
        out = self._run(netns, ["nft", "list", "tables"], None)
        found = []
        for line in out.splitlines():
            words = line.split()
            if len(words) == 3 and words[0] == "table" and words[2].startswith(TABLE_PREFIX):
                found.append((words[1], words[2]))
        return found

    def ruleset(self, netns: str | None) -> str:
        """The whole ruleset of ``netns`` as ``nft -j`` lists it (libnftables-json(5))."""
        return self._run(netns, ["nft", "-j", "list", "ruleset"], None)

    def list_table(self, netns: str | None, family: str, name: str) -> str:
        return self._run(netns, ["nft", "list", "table", family, name], None)

    def enable_bridge_conntrack(self, netns: str | None) -> None:
        """Have bridged IP frames go through the inet hooks (and conntrack) in ``netns``.

        The knobs exist once ``br_netfilter`` is loaded, which a stock host does not do at
        boot (no /proc/sys/net/bridge until then): load it first, with a clear error if the
        kernel has no such module."""
        if not Path("/proc/sys/net/bridge").is_dir():
            try:
                done = run_in_netns(None, ["modprobe", "br_netfilter"], None)
            except (OSError, subprocess.TimeoutExpired, FluidedgeError) as exc:
                raise FilterFailure(f"modprobe br_netfilter: {exc}") from exc
            if done.returncode != 0:
                raise FilterFailure(
                    "security groups on Linux bridges need the br_netfilter module: "
                    f"modprobe br_netfilter: {done.stderr.strip()[:500]}"
                )
        for key in ("bridge-nf-call-iptables", "bridge-nf-call-ip6tables"):
            self._run(netns, ["sysctl", "-q", "-w", f"net.bridge.{key}=1"], None)

    def bridge_conntrack_on(self, netns: str | None) -> bool:
        """Whether bridged IP frames still go through the inet hooks in ``netns`` (both knobs
        of :meth:`enable_bridge_conntrack` at 1)."""
        try:
            out = self._run(
                netns,
                [
                    "sysctl",
                    "-n",
                    "net.bridge.bridge-nf-call-iptables",
                    "net.bridge.bridge-nf-call-ip6tables",
                ],
                None,
            )
        except FilterFailure:  # br_netfilter unloaded: the knobs are gone with it
            return False
        return out.split() == ["1", "1"]

    @staticmethod
    def _run(
        netns: str | None,
        argv: list[str],
        stdin: str | None,
        *,
        started: Callable[[int], object] | None = None,
    ) -> str:
        try:
            done = run_in_netns(netns, argv, stdin, started=started)
        except (OSError, subprocess.TimeoutExpired, FluidedgeError) as exc:
            raise FilterFailure(f"{argv[0]}: {exc}") from exc
        if done.returncode != 0:
            raise FilterFailure(f"{' '.join(argv[:3])}: {done.stderr.strip()[:2000]}")
        return done.stdout
