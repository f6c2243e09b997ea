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
      chain zpre (prerouting, -300)         iif = bridge -> ct zone set <zone>
      chain zout (output, -300)             oif = bridge -> ct zone set <zone>
      chain fe_fwd (forward, 0) / fe_in (input, 0) -> chain net
      chain fe_out (output, 0)              host -> port: ingress by destination address
      chain net                             est/rel accept; egress vmap on the in-tag, ingress
                                            vmap on the out-tag; accept
      chain p<n>_eg / p<n>_in               invalid drop, new TCP must be a SYN, the port's
                                            clauses (return / accept), then drop
      set   rg_<group>_<zone>_<4|6>         remote-group members on this network

Every update writes both tables whole (create-if-missing, delete, recreate) in one ``nft -f``
transaction: a reader never sees half a policy, nothing stale survives, and connection state
(conntrack) is not touched by it.
"""

from __future__ import annotations

import ipaddress
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

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
)
from fluidedge.secgroups.errors import FilterFailure, InvalidSecgroup
from fluidedge.secgroups.model import PROTO_ICMP, PROTO_ICMPV6, Direction, IPNetwork

MAX_TAG = 0xFFFF
TABLE_PREFIX = "fesg_"
NFT_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Binding:
    """Where a network's filter is installed: its bridge and that bridge's namespace."""

    network: str
    bridge: str
    netns: str | None = None


def table_name(network: str) -> str:
    return TABLE_PREFIX + network.replace("-", "_")


def _collapse(nets: Sequence[IPNetwork]) -> list[IPNetwork]:
    v4 = [n for n in nets if isinstance(n, ipaddress.IPv4Network)]
    v6 = [n for n in nets if isinstance(n, ipaddress.IPv6Network)]
    return [*ipaddress.collapse_addresses(v4), *ipaddress.collapse_addresses(v6)]


def _elements(items: Sequence[str]) -> str:
    return "elements = { " + ", ".join(items) + " }" if items else ""


def _set(name: str, kind: str, items: Sequence[str]) -> list[str]:
    body = [f"  set {name} {{", f"    type {kind}; flags interval;"]
    if items:
        body.append("    " + _elements(items))
    return [*body, "  }"]


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
    return f"    ether saddr {mac} @th,64,128 & 0x{mask:032x} == 0x{value:032x} accept"


def _bridge_table(ports: Sequence[tuple[int, PortFilter]]) -> list[str]:
    out: list[str] = []
    for tag, p in ports:
        src4 = [(s.mac, s.prefix) for s in p.allowed_sources if s.prefix.version == 4]
        src6 = [(s.mac, s.prefix) for s in p.allowed_sources if s.prefix.version == 6]
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
        out += _set(f"p{tag}_src4", "ether_addr . ipv4_addr", items4)
        out += _set(f"p{tag}_src6", "ether_addr . ipv6_addr", items6)
        macs = ", ".join(p.macs())
        sec = [
            f"  chain p{tag}_sec {{",
            f"    ether saddr != {{ {macs} }} drop",
            # ARP: probes (sender 0.0.0.0) or (frame MAC, sender IP) and (sender MAC,
            # sender IP) both one of the port's pairs.
            "    ether type arp arp saddr ip 0.0.0.0 accept",
            f"    ether type arp ether saddr . arp saddr ip != @p{tag}_src4 drop",
            f"    ether type arp arp saddr ether . arp saddr ip != @p{tag}_src4 drop",
            "    ether type arp accept",
            # IPv4: DHCP discovery from 0.0.0.0, else the source must be the port's.
            f"    ether type ip ip saddr 0.0.0.0 udp sport {DHCPV4_CLIENT} "
            f"udp dport {DHCPV4_SERVER} accept",
            f"    ether type ip ether saddr . ip saddr != @p{tag}_src4 drop",
        ]
        if not p.allow_dhcp_server:
            sec.append(f"    ether type ip udp sport {DHCPV4_SERVER} drop")
        sec.append("    ether type ip accept")
        unspec = ", ".join(str(t) for t in ICMPV6_UNSPEC_OK)
        sec += [
            f"    ether type ip6 ip6 saddr :: icmpv6 type {{ {unspec} }} accept",
            f"    ether type ip6 ether saddr . ip6 saddr != @p{tag}_src6 drop",
        ]
        if not p.allow_router_advertisements:
            sec.append("    ether type ip6 icmpv6 type nd-router-advert drop")
        if not p.allow_dhcp_server:
            sec.append(f"    ether type ip6 udp sport {DHCPV6_SERVER} drop")
        sec += [
            f"    ether type ip6 icmpv6 type nd-neighbor-advert jump p{tag}_na",
            "    ether type ip6 accept",
            "    drop",
            "  }",
        ]
        out += sec
        out.append(f"  chain p{tag}_na {{")
        for mac, net in src6:
            if isinstance(net, ipaddress.IPv6Network):
                out.append(_na_rule(mac, net))
        out += ["    drop", "  }"]
        out += [
            f"  chain p{tag}_out {{",
            "    ether type != { arp, ip, ip6 } drop",
            f"    meta mark set meta mark and 0x0000ffff or 0x{tag << 16:08x}",
            "  }",
        ]
    if ports:
        marks = ", ".join(f'"{p.device}" : 0x{tag:08x}' for tag, p in ports)
        jumps = ", ".join(f'"{p.device}" : jump p{tag}_sec' for tag, p in ports)
        outs = ", ".join(f'"{p.device}" : jump p{tag}_out' for tag, p in ports)
        out += [
            "  chain pre {",
            "    type filter hook prerouting priority -200; policy accept;",
            f"    meta mark set iifname map {{ {marks} }}",
            f"    iifname vmap {{ {jumps} }}",
            "  }",
            "  chain fe_fwd {",
            "    type filter hook forward priority -200; policy accept;",
            f"    oifname vmap {{ {outs} }}",
            "  }",
        ]
    return out


def _inet_table(
    binding: Binding, zone: int, ports: Sequence[tuple[int, PortFilter]], sets: Sequence[AddressSet]
) -> list[str]:
    br = binding.bridge
    out: list[str] = []
    for s in sets:
        kind = "ipv4_addr" if s.ethertype == "IPv4" else "ipv6_addr"
        out += _set(s.name, kind, [str(n) for n in _collapse(list(s.members))])
    out += [
        "  chain zpre {",
        "    type filter hook prerouting priority -300; policy accept;",
        f'    iifname "{br}" ct zone set {zone}',
        "  }",
        "  chain zout {",
        "    type filter hook output priority -300; policy accept;",
        f'    oifname "{br}" ct zone set {zone}',
        "  }",
    ]
    for tag, p in ports:
        eg = [
            f"  chain p{tag}_eg {{",
            *_NEW_ONLY,
            f"    udp sport {DHCPV4_CLIENT} udp dport {DHCPV4_SERVER} return",
            f"    udp sport {DHCPV6_CLIENT} udp dport {DHCPV6_SERVER} return",
        ]
        eg += [f"    {_clause_expr(c, 'egress')} return" for c in p.egress]
        out += [*eg, "    drop", "  }"]
        ing = [
            f"  chain p{tag}_in {{",
            *_NEW_ONLY,
            f"    udp sport {DHCPV4_SERVER} udp dport {DHCPV4_CLIENT} accept",
            f"    udp sport {DHCPV6_SERVER} udp dport {DHCPV6_CLIENT} accept",
        ]
        ing += [f"    {_clause_expr(c, 'ingress')} accept" for c in p.ingress]
        out += [*ing, "    drop", "  }"]
    state = ["    ct state established,related,untracked accept"]
    net = ["  chain net {", *state]
    out_chain = ["  chain net_out {", *state]
    if ports:
        egs = ", ".join(f"0x{tag:08x} : jump p{tag}_eg" for tag, _ in ports)
        ins = ", ".join(f"0x{tag << 16:08x} : jump p{tag}_in" for tag, _ in ports)
        net += [
            f"    meta mark and 0x0000ffff vmap {{ {egs} }}",
            f"    meta mark and 0xffff0000 vmap {{ {ins} }}",
        ]
        # Host-originated traffic has no out-tag: its destination address names the port
        # (fixed addresses only; port security keeps another port from claiming them).
        for version, ip in ((4, "ip"), (6, "ip6")):
            dests: dict[str, int] = {}
            for tag, p in ports:
                for src in p.allowed_sources:
                    if src.prefix.version == version and src.prefix.num_addresses == 1:
                        dests.setdefault(str(src.prefix.network_address), tag)
            if dests:
                items = ", ".join(f"{a} : jump p{t}_in" for a, t in sorted(dests.items()))
                out_chain.append(f"    {ip} daddr vmap {{ {items} }}")
    out += [*net, "    accept", "  }", *out_chain, "    accept", "  }"]
    out += [
        "  chain fe_fwd {",
        "    type filter hook forward priority 0; policy accept;",
        f'    iifname "{br}" oifname "{br}" jump net',
        "  }",
        "  chain fe_in {",
        "    type filter hook input priority 0; policy accept;",
        f'    iifname "{br}" jump net',
        "  }",
        "  chain fe_out {",
        "    type filter hook output priority 0; policy accept;",
        f'    oifname "{br}" jump net_out',
        "  }",
    ]
    return out


def render_network(program: FilterProgram, binding: Binding, tags: Mapping[str, int]) -> str:
    """The ``nft -f`` text installing ``binding.network``'s part of ``program``.

    ``tags`` gives each filtered port's device a tag in 1..65535 (stable while the driver
    lives, so a port keeps its chain names across updates).
    """
    zone = program.zone_of(binding.network)
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
    lines = [
        f"table bridge {name} {{}}",
        f"delete table bridge {name}",
        f"table inet {name} {{}}",
        f"delete table inet {name}",
    ]
    if zone is None:
        # No port on this network: nothing to filter, the tables are just removed.
        return "\n".join(lines) + "\n"
    lines += [f"table bridge {name} {{", *_bridge_table(ports), "}"]
    lines += [f"table inet {name} {{", *_inet_table(binding, zone, ports, sets), "}"]
    return "\n".join(lines) + "\n"


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


def _in_netns(netns: str | None, argv: list[str]) -> list[str]:
    return argv if netns is None else ["ip", "netns", "exec", netns, *argv]


class Nft:
    """The thin adapter: runs ``nft`` (argv, never a shell) in a network namespace."""

    def apply(self, netns: str | None, text: str) -> None:
        """One atomic transaction (``nft -f -``): all of ``text`` or nothing."""
        self._run(netns, ["nft", "-f", "-"], text)

    def tables(self, netns: str | None) -> list[tuple[str, str]]:
        """(family, name) of the fluidedge security-group tables in ``netns``."""
        out = self._run(netns, ["nft", "list", "tables"], None)
        found = []
        for line in out.splitlines():
            words = line.split()
            if len(words) == 3 and words[0] == "table" and words[2].startswith(TABLE_PREFIX):
                found.append((words[1], words[2]))
        return found

    def list_table(self, netns: str | None, family: str, name: str) -> str:
        return self._run(netns, ["nft", "list", "table", family, name], None)

    def enable_bridge_conntrack(self, netns: str | None) -> None:
        """Have bridged IP frames go through the inet hooks (and conntrack) in ``netns``."""
        for key in ("bridge-nf-call-iptables", "bridge-nf-call-ip6tables"):
            self._run(netns, ["sysctl", "-q", "-w", f"net.bridge.{key}=1"], None)

    @staticmethod
    def _run(netns: str | None, argv: list[str], stdin: str | None) -> str:
        cmd = _in_netns(netns, argv)
        try:
            done = subprocess.run(
                cmd,
                input=stdin,
                capture_output=True,
                text=True,
                timeout=NFT_TIMEOUT_S,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise FilterFailure(f"{argv[0]}: {exc}") from exc
        if done.returncode != 0:
            raise FilterFailure(f"{' '.join(argv[:3])}: {done.stderr.strip()[:2000]}")
        return done.stdout
