"""The verdict of a compiled program on one new connection (pure).

Renderers never call this on packets (the data plane decides); the driver uses it to tell
which live conntrack entries a changed program no longer allows (neutron deletes those), and
tests use it to check the IR against an independent evaluation of the model.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass

from fluidedge.core.fields import PROTO_ICMP, PROTO_ICMPV6, Ethertype
from fluidedge.secgroups.compiler import AddressSet, Clause, FilterProgram, PortFilter
from fluidedge.secgroups.model import Direction, IPAddress, ethertype_of


@dataclass(frozen=True)
class Flow:
    """The original direction of a connection: ``src`` opened it towards ``dst``."""

    protocol: int
    src: IPAddress
    dst: IPAddress
    dport: int | None = None
    icmp_type: int | None = None
    icmp_code: int | None = None

    @property
    def ethertype(self) -> Ethertype:
        return ethertype_of(self.src)


def clause_matches(
    clause: Clause, flow: Flow, direction: Direction, sets: Mapping[str, AddressSet]
) -> bool:
    if clause.ethertype != flow.ethertype:
        return False
    if clause.protocol is not None and clause.protocol != flow.protocol:
        return False
    if (
        clause.port_min is not None
        and clause.port_max is not None
        and (flow.dport is None or not clause.port_min <= flow.dport <= clause.port_max)
    ):
        return False
    if clause.icmp_type is not None and flow.protocol in (PROTO_ICMP, PROTO_ICMPV6):
        if flow.icmp_type != clause.icmp_type:
            return False
        if clause.icmp_code is not None and flow.icmp_code != clause.icmp_code:
            return False
    remote = flow.src if direction == "ingress" else flow.dst
    if clause.remote_prefix is not None and remote not in clause.remote_prefix:
        return False
    if clause.remote_set is not None:
        members = sets.get(clause.remote_set)
        if members is None or not any(remote in m for m in members.members):
            return False
    return True


def port_allows(
    port: PortFilter, flow: Flow, direction: Direction, sets: Mapping[str, AddressSet]
) -> bool:
    """Whether ``port`` lets a new connection through in ``direction`` (no port security:
    always)."""
    if not port.port_security:
        return True
    return any(clause_matches(c, flow, direction, sets) for c in port.clauses(direction))


def admits_new(
    program: FilterProgram, src_port: str | None, dst_port: str | None, flow: Flow
) -> bool:
    """A new connection from ``src_port`` to ``dst_port`` (``None`` = not a filtered port,
    e.g. the bridge's own address) passes the sender's egress and the receiver's ingress."""
    sets = {s.name: s for s in program.address_sets}
    checks: tuple[tuple[str | None, Direction], ...] = (
        (src_port, "egress"),
        (dst_port, "ingress"),
    )
    for port_id, direction in checks:
        port = None if port_id is None else program.port(port_id)
        if port is not None and not port_allows(port, flow, direction, sets):
            return False
    return True


def source_allowed(port: PortFilter, mac: str, src: IPAddress) -> bool:
    """Port security: may ``port`` send from (``mac``, ``src``)?"""
    if not port.port_security:
        return True
    return any(s.mac == mac and src in s.prefix for s in port.allowed_sources)


def owner_of(program: FilterProgram, network: str, address: IPAddress) -> str | None:
    """The filtered port on ``network`` that may send from ``address`` (first by port id)."""
    for port in program.ports:
        if port.network != network:
            continue
        if any(address in s.prefix for s in port.allowed_sources):
            return port.port
    return None


def parse_ip(text: str) -> IPAddress:
    return ipaddress.ip_address(text)
