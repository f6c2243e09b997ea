"""The security-group program as OVN northbound rows (pure), and the commands that get there.

Input is the compiler's :class:`~fluidedge.secgroups.compiler.FilterProgram` (the same IR the
nftables and OpenFlow renderers take), one network (= one logical switch) at a time. Output:

``Port_Group`` ``fe_<net>_drop``
    every filtered port of the network (``port_security`` true). Its ACLs: priority 1001
    ``drop`` of all IP both ways (``inport``/``outport == @pg && ip``), priority 1002
    ``allow`` of what every host needs without a rule (DHCP client requests and replies,
    ICMPv6 neighbour discovery and MLD; the compiler's IR doc lists them), priority 1003
    ``drop`` of a new TCP connection that does not start with a bare SYN.
``Port_Group`` ``fe_<net>_<hash of the port's groups>``
    ports of the network whose rules come from the same groups (their clauses are the same,
    as the compiler computes them once per (groups, network)); one priority-1002
    ``allow-related`` ACL per clause: egress clauses are ``from-lport`` on ``inport``, with
    the remote as destination; ingress clauses ``to-lport`` on ``outport``, the remote as
    source. ``allow-related`` commits the connection: replies need no rule, and a
    connection whose clause goes is blocked by OVN itself (``ct_label.blocked``).
``Port_Group`` ``fe_<net>_nodhcp`` / ``fe_<net>_nora``
    filtered ports that may not act as a DHCP server / send router advertisements:
    priority-1003 ``drop`` of those.
``Address_Set`` ``fe_rs_<hash of group and network>_<4|6>``
    each remote-group address set of the network, as the compiler computes it (per network,
    fixed IPs *and* allowed-address-pair prefixes): OVN's automatic ``$pg_ip4`` sets span
    every network and leave pairs out, so they would admit an overlapping subnet's member and
    refuse a pair. The set is **shared by the nodes**: a group's members on every node are in
    it. Each node writes its own part under ``external_ids:fluidedge-members-<node>`` and
    changes ``addresses`` only by mutation (``add``/``remove`` of its own addresses, never
    one another node lists), so two nodes never undo each other; a set no node lists any
    more is destroyed by a guarded delete (:func:`abandoned`: only if its ``external_ids``
    are still what the deleting node read, so a node that started using it meanwhile keeps
    it).
``Logical_Switch_Port.port_security``
    per filtered port, ``"<mac> <prefix>..."`` per MAC of its allowed sources (fixed IPs,
    pairs, link-locals): OVN then drops spoofed Ethernet/ARP/IP/ND sources (and delivers to
    the port only its own addresses); an unfiltered port gets none.

Port groups (and the port security of its ports) are **per node**: every node of a site
writes its own ports' rows, named from a hash of (network, node) and tagged
``external_ids:fluidedge-node=<node>``, so a node's diff never removes another node's
members or ACLs. ``node=""`` (one writer: the lab and the benches) keeps the readable names
``fe_<net>_...`` and no node tag. Rows of the network without a node tag are adopted (replaced
by the node's own) by a node that has one: they were written by one writer before.

Every row carries ``external_ids:fluidedge-network=<net>``, so :func:`diff` touches only
ours. Names: network and group ids match ``[a-z][a-z0-9-]*``, so ``-`` -> ``_`` is injective.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from fluidedge.core.fields import IPNetwork
from fluidedge.secgroups.compiler import (
    DHCPV4_CLIENT,
    DHCPV4_SERVER,
    DHCPV6_CLIENT,
    DHCPV6_SERVER,
    ICMPV6_EGRESS_OK,
    ICMPV6_INGRESS_OK,
    ICMPV6_NA,
    ICMPV6_RA,
    AddressSet,
    Clause,
    FilterProgram,
    GroupMembers,
    PortFilter,
)
from fluidedge.secgroups.errors import FilterFailure

OWNER_KEY = "fluidedge-network"
NODE_KEY = "fluidedge-node"
GROUPS_KEY = "fluidedge-groups"
SET_KEY = "fluidedge-set"  # "<group> <4|6>" on a shared address set
MEMBERS_KEY = "fluidedge-members-"  # + the node (``local`` for node="")
PRIO_DROP, PRIO_ALLOW, PRIO_DENY = 1001, 1002, 1003
_PORT_FIELDS = {6: "tcp", 17: "udp", 132: "sctp"}


@dataclass(frozen=True, order=True)
class Acl:
    direction: str  # from-lport | to-lport
    priority: int
    match: str
    action: str  # allow | allow-related | drop


@dataclass(frozen=True)
class PortGroup:
    ports: frozenset[str]
    acls: frozenset[Acl]
    external_ids: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class SharedSet:
    """A shared address set as the NB holds it: its addresses and every node's part."""

    addresses: frozenset[str]
    external_ids: tuple[tuple[str, str], ...]

    def parts(self) -> dict[str, frozenset[str]]:
        """Member key -> the addresses that node contributes."""
        return {
            key: frozenset(a for a in value.split(",") if a)
            for key, value in self.external_ids
            if key.startswith(MEMBERS_KEY)
        }

    def others(self, key: str) -> frozenset[str]:
        """What the nodes other than ``key``'s contribute."""
        out: set[str] = set()
        for k, part in self.parts().items():
            if k != key:
                out |= part
        return frozenset(out)


@dataclass
class NbState:
    """One node's part of the NB for one logical switch.

    ``address_sets`` is this node's contribution to each shared set; ``set_labels`` (desired)
    the ``external_ids`` a set is created with; ``shared`` (current) the sets of the network
    as they are, every node's part included; ``legacy_sets`` (current) sets of the earlier
    naming (one writer, per zone), destroyed.
    """

    port_groups: dict[str, PortGroup] = field(default_factory=dict)
    address_sets: dict[str, tuple[str, ...]] = field(default_factory=dict)
    port_security: dict[str, tuple[str, ...]] = field(default_factory=dict)
    set_labels: dict[str, tuple[tuple[str, str], ...]] = field(default_factory=dict)
    shared: dict[str, SharedSet] = field(default_factory=dict)
    legacy_sets: set[str] = field(default_factory=set)


LspOf = Callable[[PortFilter], str]


def lsp_by_port_id(port: PortFilter) -> str:
    """The default logical port name: the port's id (unique across hosts)."""
    return port.port


def ident(name: str) -> str:
    return name.replace("-", "_")


def addr_text(prefix: IPNetwork) -> str:
    """A prefix as OVN writes it: a bare address for a host prefix."""
    if prefix.prefixlen == prefix.max_prefixlen:
        return str(prefix.network_address)
    return str(prefix)


def _groups_of(port: PortFilter) -> tuple[str, ...]:
    """The groups the port's clauses come from (``rules`` are ``group/rule``)."""
    return tuple(sorted({r.split("/", 1)[0] for c in port.ingress + port.egress for r in c.rules}))


def _l4(clause: Clause) -> list[str]:
    v4 = clause.ethertype == "IPv4"
    terms: list[str] = []
    proto = clause.protocol
    if proto is None:
        return terms
    if proto in _PORT_FIELDS:
        name = _PORT_FIELDS[proto]
        terms.append(name)
        if clause.port_min is not None:
            high = clause.port_max if clause.port_max is not None else clause.port_min
            if high == clause.port_min:
                terms.append(f"{name}.dst == {clause.port_min}")
            else:
                terms.append(f"{name}.dst >= {clause.port_min} && {name}.dst <= {high}")
        return terms
    if clause.port_min is not None:
        raise FilterFailure(f"ovn: no port match for protocol {proto} (rules {clause.rules})")
    icmp = "icmp4" if proto == 1 and v4 else "icmp6" if proto == 58 and not v4 else None
    if icmp is None:
        terms.append(f"ip.proto == {proto}")
        return terms
    terms.append(icmp)
    if clause.icmp_type is not None:
        terms.append(f"{icmp}.type == {clause.icmp_type}")
    if clause.icmp_code is not None:
        terms.append(f"{icmp}.code == {clause.icmp_code}")
    return terms


def clause_match(clause: Clause, direction: str, pg: str, sets: Mapping[str, str]) -> str:
    """The OVN match of one clause of the port group ``pg``; ``sets`` names the NB address
    set of each of the network's remote sets (by the compiler's name)."""
    v4 = clause.ethertype == "IPv4"
    ipf = "ip4" if v4 else "ip6"
    if direction == "egress":
        terms = [f"inport == @{pg}", ipf]
        side = f"{ipf}.dst"
    else:
        terms = [f"outport == @{pg}", ipf]
        side = f"{ipf}.src"
    terms += _l4(clause)
    if clause.remote_set is not None:
        terms.append(f"{side} == ${sets[clause.remote_set]}")
    elif clause.remote_prefix is not None:
        terms.append(f"{side} == {addr_text(clause.remote_prefix)}")
    return " && ".join(terms)


def _digest(*parts: str, size: int = 16) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:size]


def shared_set_name(group: str, network: str, ethertype: str) -> str:
    """The NB name of ``group``'s address set on ``network``: the same on every node (a
    conntrack zone, part of the compiler's name, is one node's choice)."""
    return f"fe_rs_{_digest(group, network)}_{4 if ethertype == 'IPv4' else 6}"


def member_key(node: str) -> str:
    return MEMBERS_KEY + (node or "local")


def _prefix(network: str, node: str) -> str:
    return f"fe_{ident(network)}" if not node else f"fe_p{_digest(network, node)}"


def owner_ids(network: str, node: str) -> tuple[tuple[str, str], ...]:
    return ((OWNER_KEY, network), (NODE_KEY, node)) if node else ((OWNER_KEY, network),)


def pg_names(network: str, node: str = "") -> dict[str, str]:
    base = _prefix(network, node)
    return {"drop": f"{base}_drop", "nodhcp": f"{base}_nodhcp", "nora": f"{base}_nora"}


def rules_pg_name(network: str, groups: tuple[str, ...], node: str = "") -> str:
    digest = hashlib.sha256(",".join(groups).encode()).hexdigest()[:12]
    return f"{_prefix(network, node)}_g{digest}"


def _base_acls(pg: str) -> set[Acl]:
    egress_icmp6 = ", ".join(str(t) for t in sorted({*ICMPV6_EGRESS_OK, ICMPV6_NA}))
    ingress_icmp6 = ", ".join(str(t) for t in sorted(ICMPV6_INGRESS_OK))
    # A new TCP connection starts with a bare SYN: the userspace connection tracker would
    # otherwise pick a bare ACK up as a new connection (flags SYN|ACK|RST|FIN masked: SYN).
    not_syn = "ct.new && tcp && !(tcp.flags == 0x002/0x017)"
    return {
        Acl("from-lport", PRIO_DENY, f"inport == @{pg} && {not_syn}", "drop"),
        Acl("to-lport", PRIO_DENY, f"outport == @{pg} && {not_syn}", "drop"),
        Acl("from-lport", PRIO_DROP, f"inport == @{pg} && ip", "drop"),
        Acl("to-lport", PRIO_DROP, f"outport == @{pg} && ip", "drop"),
        Acl(
            "from-lport",
            PRIO_ALLOW,
            f"inport == @{pg} && ((ip4 && udp.src == {DHCPV4_CLIENT} && "
            f"udp.dst == {DHCPV4_SERVER}) || (ip6 && udp.src == {DHCPV6_CLIENT} && "
            f"udp.dst == {DHCPV6_SERVER}) || (icmp6 && icmp6.type == {{{egress_icmp6}}}))",
            "allow",
        ),
        Acl(
            "to-lport",
            PRIO_ALLOW,
            f"outport == @{pg} && ((ip4 && udp.src == {DHCPV4_SERVER} && "
            f"udp.dst == {DHCPV4_CLIENT}) || (ip6 && udp.src == {DHCPV6_SERVER} && "
            f"udp.dst == {DHCPV6_CLIENT}) || (icmp6 && icmp6.type == {{{ingress_icmp6}}}))",
            "allow",
        ),
    }


def port_security(port: PortFilter) -> tuple[str, ...]:
    """``port_security`` entries: one ``"<mac> <prefix>..."`` per MAC it may send from."""
    by_mac: dict[str, list[str]] = {}
    for source in port.allowed_sources:
        by_mac.setdefault(source.mac, []).append(addr_text(source.prefix))
    return tuple(f"{mac} {' '.join(prefixes)}" for mac, prefixes in sorted(by_mac.items()))


def render(
    program: FilterProgram, network: str, lsp_of: LspOf = lsp_by_port_id, node: str = ""
) -> NbState:
    """``node``'s NB rows of ``network``'s part of ``program`` (pure)."""
    owner = owner_ids(network, node)
    state = NbState()
    # the compiler names a clause's remote set in the clause's network (its zone in the name)
    shared = {
        aset.name: shared_set_name(aset.group, network, aset.ethertype)
        for aset in program.address_sets
        if aset.network == network
    }
    ports = [p for p in program.ports if p.network == network]
    filtered = [p for p in ports if p.port_security]
    for port in ports:
        state.port_security[lsp_of(port)] = port_security(port) if port.port_security else ()
    names = pg_names(network, node)
    if filtered:
        state.port_groups[names["drop"]] = PortGroup(
            frozenset(lsp_of(p) for p in filtered), frozenset(_base_acls(names["drop"])), owner
        )
    for kind, allowed, match in (
        ("nodhcp", "allow_dhcp_server", f"((ip4 && udp.src == {DHCPV4_SERVER}) || "
         f"(ip6 && udp.src == {DHCPV6_SERVER}))"),
        ("nora", "allow_router_advertisements", f"icmp6 && icmp6.type == {ICMPV6_RA}"),
    ):  # fmt: skip
        members = frozenset(lsp_of(p) for p in filtered if not getattr(p, allowed))
        if members:
            pg = names[kind]
            acl = Acl("from-lport", PRIO_DENY, f"inport == @{pg} && {match}", "drop")
            state.port_groups[pg] = PortGroup(members, frozenset({acl}), owner)
    by_groups: dict[tuple[str, ...], list[PortFilter]] = {}
    for port in filtered:
        if port.ingress or port.egress:
            by_groups.setdefault(_groups_of(port), []).append(port)
    for groups, members_ in sorted(by_groups.items()):
        pg = rules_pg_name(network, groups, node)
        first = members_[0]
        acls = {
            Acl(
                "from-lport" if direction == "egress" else "to-lport",
                PRIO_ALLOW,
                clause_match(clause, direction, pg, shared),
                "allow-related",
            )
            for direction in ("ingress", "egress")
            for clause in first.clauses(direction)
        }
        state.port_groups[pg] = PortGroup(
            frozenset(lsp_of(p) for p in members_),
            frozenset(acls),
            (*owner, (GROUPS_KEY, ",".join(groups))),
        )
    # This node's part of every shared set: the sets its clauses name, and its members of
    # every group some rule names as a remote (another node's clauses may name it).
    specs: list[AddressSet | GroupMembers] = [*program.address_sets, *program.contributions]
    for spec in specs:
        if spec.network == network:
            name = shared_set_name(spec.group, network, spec.ethertype)
            state.address_sets[name] = tuple(addr_text(m) for m in spec.members)
            state.set_labels[name] = (
                (OWNER_KEY, network),
                (SET_KEY, f"{spec.group} {4 if spec.ethertype == 'IPv4' else 6}"),
            )
    return state


def _set_value(items: tuple[str, ...] | frozenset[str]) -> str:
    return "[" + ",".join(f'"{i}"' for i in sorted(items)) + "]"


def _ids(ids: tuple[tuple[str, str], ...]) -> list[str]:
    return [f'external_ids:{key}="{value}"' for key, value in ids]


def _quoted(items: Iterable[str]) -> list[str]:
    return [f'"{i}"' for i in sorted(items)]


def _sets_first(current: NbState, desired: NbState, node: str) -> list[list[str]]:
    """Create or update the shared sets ``desired`` uses, before the ACLs that name them."""
    key = member_key(node)
    commands: list[list[str]] = []
    for name, mine in sorted(desired.address_sets.items()):
        value = ",".join(mine)
        now = current.shared.get(name)
        if now is None:
            labels = (*desired.set_labels.get(name, ()), (key, value))
            commands.append(
                ["create", "Address_Set", f"name={name}", f"addresses={_set_value(mine)}",
                 *_ids(labels)]
            )  # fmt: skip
            continue
        keep = set(mine) | now.others(key)
        add = set(mine) - now.addresses
        remove = now.addresses - keep  # ours that went, and strays nobody lists
        if add:
            commands.append(["add", "Address_Set", name, "addresses", *_quoted(add)])
        if remove:
            commands.append(["remove", "Address_Set", name, "addresses", *_quoted(remove)])
        if dict(now.external_ids).get(key) != value:
            commands.append(["set", "Address_Set", name, *_ids(((key, value),))])
    return commands


def _sets_last(current: NbState, desired: NbState, node: str) -> list[list[str]]:
    """Withdraw this node's part of the sets it no longer uses; destroy legacy sets."""
    key = member_key(node)
    commands: list[list[str]] = []
    for name, now in sorted(current.shared.items()):
        if name in desired.address_sets or key not in dict(now.external_ids):
            continue
        remove = now.addresses - now.others(key)
        if remove:
            commands.append(["remove", "Address_Set", name, "addresses", *_quoted(remove)])
        commands.append(["remove", "Address_Set", name, "external_ids", f'"{key}"'])
    for name in sorted(current.legacy_sets - set(desired.address_sets)):
        commands.append(["destroy", "Address_Set", name])
    return commands


def diff(current: NbState, desired: NbState, network: str, node: str = "") -> list[list[str]]:
    """``ovn-nbctl`` commands (one transaction) that turn ``node``'s part ``current`` into
    ``desired``. Shared sets no node uses afterwards are :func:`abandoned`'s."""
    commands = _sets_first(current, desired, node)
    for name, pg in sorted(desired.port_groups.items()):
        old = current.port_groups.get(name)
        if old is None:
            commands.append(["pg-add", name, *sorted(pg.ports)])
            commands.append(["set", "Port_Group", name, *_ids(pg.external_ids)])
            gone: frozenset[Acl] = frozenset()
            new = pg.acls
        else:
            if old.ports != pg.ports:
                commands.append(["pg-set-ports", name, *sorted(pg.ports)])
            gone, new = old.acls - pg.acls, pg.acls - old.acls
        for acl in sorted(gone):
            commands.append(
                ["--type=port-group", "acl-del", name, acl.direction, str(acl.priority), acl.match]
            )
        for acl in sorted(new):
            commands.append(
                ["--type=port-group", "acl-add", name, acl.direction, str(acl.priority),
                 acl.match, acl.action]
            )  # fmt: skip
    for name in sorted(set(current.port_groups) - set(desired.port_groups)):
        commands.append(["pg-del", name])
    commands += _sets_last(current, desired, node)
    for lsp, entries in sorted(desired.port_security.items()):
        if tuple(current.port_security.get(lsp, ())) != entries:
            commands.append(["lsp-set-port-security", lsp, *entries])
    return commands


def abandoned(
    current: NbState, desired: NbState, node: str = ""
) -> list[tuple[str, dict[str, str]]]:
    """Shared sets that no node lists once :func:`diff`'s transaction is in: each with the
    ``external_ids`` it must still have for its delete (a node that started using it since
    the read has added its key, and keeps it)."""
    key = member_key(node)
    out: list[tuple[str, dict[str, str]]] = []
    for name, now in sorted(current.shared.items()):
        if name in desired.address_sets:
            continue
        ids = dict(now.external_ids)
        ids.pop(key, None)
        if not any(k.startswith(MEMBERS_KEY) for k in ids):
            out.append((name, ids))
    return out


def owned(ids: Mapping[str, str], network: str, node: str = "") -> bool:
    """Whether a port group with ``ids`` is ``node``'s on ``network``: tagged with the node, or
    untagged (one writer's, adopted by a node with a name)."""
    if ids.get(OWNER_KEY) != network:
        return False
    tag = ids.get(NODE_KEY)
    return tag == node if tag is not None else True


# What each command of :func:`diff` puts back, as the check's log says it (see describe)
_PUTS_BACK = {
    "pg-add": "a port group missing",
    "pg-del": "a port group not ours",
    "pg-set-ports": "a port group's ports changed",
    "acl-add": "an ACL missing or changed",
    "acl-del": "an ACL not ours",
    "lsp-set-port-security": "a port's port security changed",
    "create": "an address set missing",
    "destroy": "an address set not ours",
}


def describe(commands: list[list[str]]) -> str:
    """What :func:`diff`'s ``commands`` put back, counted by kind, in words (for the log of
    a check that found the NB changed from outside). Pure."""
    counts: dict[str, int] = {}
    for command in commands:
        verb = next((w for w in command if not w.startswith("--")), "")
        if verb in {"add", "remove"} and "Address_Set" in command:
            what = "an address set's addresses changed"
        elif verb == "set" and "Address_Set" in command:
            what = "an address set's members changed"
        elif verb == "set":
            what = "a port group's labels changed"
        else:
            what = _PUTS_BACK.get(verb, f"a {verb}")
        counts[what] = counts.get(what, 0) + 1
    return ", ".join(what if n == 1 else f"{what} (x{n})" for what, n in counts.items())
