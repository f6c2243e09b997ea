"""The Open vSwitch firewall driver: the seed's §6 API over the OpenFlow renderer.

State (ports, groups) lives here as neutron's ``SGPortMap`` does; every call recompiles the
program (pure, :mod:`.compiler`), renders each affected bridge's table (pure,
:mod:`.ovs_render`) and installs the difference from what this driver installed last as one
OpenFlow bundle per bridge (:class:`~fluidedge.ovs.ofctl.Ofctl`): a packet sees the old policy
or the new one, never a mix. The first install on a bridge (start, restart) replaces the whole
table in one bundle instead, so nothing stale or duplicated survives a restart.

Inside :meth:`OvsFirewall.defer_apply` (neutron's ``defer_apply_on``/``off``) calls only
update the state; the install happens once, when the outermost block exits.

After an install, connections the new program no longer admits are cut: the data plane marks
them on their next packet (``ct_mark``, see :mod:`.ovs_render`) and the driver also deletes
their conntrack entries (``dpctl/flush-conntrack zone=<network's zone> <original tuple>``), as
neutron does; connections still allowed are never touched.
"""

from __future__ import annotations

import contextlib
import ipaddress
import re
import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

from fluidedge.ovs.daemons import OvsDaemons
from fluidedge.ovs.errors import OvsError
from fluidedge.ovs.ofctl import Ofctl, conntrack, flush_conntrack
from fluidedge.ovs.vsctl import Vsctl
from fluidedge.secgroups import ovs_render
from fluidedge.secgroups.compiler import FilterProgram, compile_program
from fluidedge.secgroups.errors import FilterFailure, GroupNotFound, InvalidSecgroup
from fluidedge.secgroups.model import Port, Rule, SecurityGroup
from fluidedge.secgroups.verdict import Flow, admits_new, owner_of

_ENTRY = re.compile(
    r"^(?P<proto>\w+),orig=\((?P<orig>[^)]*)\).*?zone=(?P<zone>\d+)",
)


@dataclass(frozen=True)
class CtEntry:
    """One conntrack entry's original direction (what ``dump-conntrack`` prints)."""

    protocol: int
    fields: Mapping[str, str]
    zone: int

    def flow(self) -> Flow | None:
        try:
            src = ipaddress.ip_address(self.fields["src"])
            dst = ipaddress.ip_address(self.fields["dst"])
        except (KeyError, ValueError):
            return None
        dport = int(self.fields["dport"]) if "dport" in self.fields else None
        icmp_type = int(self.fields["type"]) if "type" in self.fields else None
        icmp_code = int(self.fields["code"]) if "code" in self.fields else None
        return Flow(self.protocol, src, dst, dport, icmp_type, icmp_code)

    def tuple_text(self) -> str:
        """The original tuple as ``flush-conntrack`` takes it."""
        v6 = ":" in self.fields.get("src", "")
        ip = "ct_ipv6" if v6 else "ct_nw"
        parts = [
            f"{ip}_src={self.fields['src']}",
            f"{ip}_dst={self.fields['dst']}",
            f"ct_nw_proto={self.protocol}",
        ]
        if "sport" in self.fields:
            parts += [f"ct_tp_src={self.fields['sport']}", f"ct_tp_dst={self.fields['dport']}"]
        for key, name in (("type", "icmp_type"), ("code", "icmp_code"), ("id", "icmp_id")):
            if key in self.fields:
                parts.append(f"{name}={self.fields[key]}")
        return ",".join(parts)


_PROTOS = {"tcp": 6, "udp": 17, "icmp": 1, "icmpv6": 58, "sctp": 132, "udplite": 136, "dccp": 33}


def parse_conntrack(lines: Iterable[str]) -> list[CtEntry]:
    """Entries of ``ovs-appctl dpctl/dump-conntrack`` (unknown protocols are skipped)."""
    out = []
    for line in lines:
        m = _ENTRY.match(line.strip())
        if m is None or m["proto"] not in _PROTOS:
            continue
        fields = dict(kv.split("=", 1) for kv in m["orig"].split(",") if "=" in kv)
        out.append(CtEntry(_PROTOS[m["proto"]], fields, int(m["zone"])))
    return out


def denied_entries(
    program: FilterProgram, network: str, entries: Iterable[CtEntry]
) -> list[CtEntry]:
    """The entries of ``network``'s zone that ``program`` would not admit as new (pure)."""
    zone = program.zone_of(network)
    out = []
    for entry in entries:
        if entry.zone != zone:
            continue
        flow = entry.flow()
        if flow is None:
            continue
        src = owner_of(program, network, flow.src)
        dst = owner_of(program, network, flow.dst)
        if not admits_new(program, src, dst, flow):
            out.append(entry)
    return out


class OvsFirewall:
    """Security groups on the bridges of one of our switches (``networks``: name -> bridge)."""

    def __init__(self, daemons: OvsDaemons, networks: Mapping[str, str] | None = None) -> None:
        self.daemons = daemons
        self.networks: dict[str, str] = dict(networks or {})
        self.ports: dict[str, Port] = {}
        self.groups: dict[str, SecurityGroup] = {}
        self.installed: dict[str, list[ovs_render.Flow]] = {}
        self.program = FilterProgram((), (), ())
        self._lock = threading.RLock()
        self._defer = 0
        self._dirty = False
        self.cut_connections = 0

    # ------------------------------------------------------------------ the seed's API
    def bind_network(self, network: str, bridge: str) -> None:
        with self._lock:
            self.networks[network] = bridge

    def prepare_port_filter(self, port: Port) -> None:
        """Start filtering a new port (neutron: called once, when the port appears)."""
        with self._lock:
            if port.id in self.ports:
                raise InvalidSecgroup(f"port: {port.id} is already filtered")
            self._check(port)
            self.ports[port.id] = port
            self._changed()

    def update_port_filter(self, port: Port) -> None:
        """The port changed (groups, addresses, port security): its flows are regenerated."""
        with self._lock:
            self._check(port)
            self.ports[port.id] = port
            self._changed()

    def remove_port_filter(self, port_id: str) -> None:
        with self._lock:
            if self.ports.pop(port_id, None) is not None:
                self._changed()

    def update_security_group_rules(self, group_id: str, rules: Iterable[Rule]) -> None:
        """Rewrite all the rules of a group (created if new)."""
        with self._lock:
            old = self.groups.get(group_id)
            tenant = old.tenant if old else "default"
            description = old.description if old else ""
            self.groups[group_id] = SecurityGroup(
                id=group_id, tenant=tenant, rules=tuple(rules), description=description
            )
            self._changed()

    def update_security_group(self, group: SecurityGroup) -> None:
        with self._lock:
            self.groups[group.id] = group
            self._changed()

    def remove_security_group(self, group_id: str) -> None:
        with self._lock:
            if group_id not in self.groups:
                raise GroupNotFound(f"security group {group_id!r} does not exist")
            del self.groups[group_id]
            self._changed()

    def update_security_group_members(self, group_id: str, members: Iterable[str]) -> None:
        """Neutron passes the member addresses; here membership follows from the ports the
        driver holds (the compiler derives it), so this only checks they agree and
        re-installs (a member port that moved is already in :attr:`ports`)."""
        with self._lock:
            if group_id not in self.groups:
                raise GroupNotFound(f"security group {group_id!r} does not exist")
            _ = list(members)
            self._changed()

    @contextlib.contextmanager
    def defer_apply(self) -> Iterator[None]:
        """Batch: every change inside is installed once, at the end of the outermost block."""
        with self._lock:
            self._defer += 1
        try:
            yield
        finally:
            with self._lock:
                self._defer -= 1
                if self._defer == 0 and self._dirty:
                    self.apply()

    # ------------------------------------------------------------------ install
    def _check(self, port: Port) -> None:
        if port.network not in self.networks:
            raise InvalidSecgroup(
                f"network: port {port.id} is on {port.network}, not an ovs network"
            )

    def _changed(self) -> None:
        self._dirty = True
        if self._defer == 0:
            self.apply()

    def apply(self, *, full: bool = False) -> None:
        """Compile, render and install every bound bridge; cut what is no longer allowed."""
        with self._lock:
            program = compile_program(self.ports.values(), self.groups)
            try:
                ofports = self._ofports()
                for network, bridge in sorted(self.networks.items()):
                    flows = ovs_render.render(program, ofports.get(bridge, {}))
                    ofctl = Ofctl(self.daemons, bridge)
                    old = self.installed.get(bridge)
                    if old is None or full:
                        ofctl.replace(ovs_render.texts(flows))
                    else:
                        ofctl.bundle(ovs_render.diff(old, flows))
                    self.installed[bridge] = flows
                    if program.zone_of(network) is not None:
                        self._cut(program, network)
            except OvsError as exc:
                raise FilterFailure(f"ovs firewall: {exc}") from exc
            self.program = program
            self._dirty = False

    def _ofports(self) -> dict[str, dict[str, int]]:
        """bridge -> {device: OpenFlow port} for the devices our ports name."""
        vsctl = Vsctl(self.daemons)
        devices = {p.device for p in self.ports.values()}
        interfaces = vsctl.interfaces()
        out: dict[str, dict[str, int]] = {}
        for bridge in set(self.networks.values()):
            on_bridge = set(vsctl.ports(bridge)) & devices
            out[bridge] = {
                name: int(str(interfaces[name]["ofport"]))
                for name in on_bridge
                if name in interfaces and int(str(interfaces[name]["ofport"])) > 0
            }
        return out

    def _cut(self, program: FilterProgram, network: str) -> None:
        zone = program.zone_of(network)
        entries = parse_conntrack(conntrack(self.daemons, zone))
        for entry in denied_entries(program, network, entries):
            flush_conntrack(self.daemons, entry.zone, entry.tuple_text())
            self.cut_connections += 1

    def flows(self, bridge: str) -> list[ovs_render.Flow]:
        return list(self.installed.get(bridge, []))
