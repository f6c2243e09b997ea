"""From a lab description and a prefix to concrete names, addresses and ``ip`` batches (pure).

Nothing here touches the system: :mod:`fluidedge.lab.build` executes the :class:`Plan`. Keeping
the plan pure makes the topology reviewable (``fluidedge lab plan`` prints it) and testable
without root.

Interface names inside namespaces are short and fixed (namespaces isolate them); only the
namespace names carry the prefix. Every veth is created inside a lab namespace with its peer
placed directly into another lab namespace, so nothing of the lab ever exists in the root
namespace.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv6Address

from fluidedge.lab.config import Bearer, LabConfig, Mode, bearers, dns_zone, ipv6_twin
from fluidedge.lab.errors import LabConfigError

# Fixed interface names (inside their namespaces).
HOST_ENB_IF = "s1enb"  # host namespace, eNB side of the S1 segment
HOST_SGW_IF = "s1sgw"  # host namespace, SGW side of the S1 segment
HOST_BRIDGE = "br0"  # host namespace, joins the two S1 interfaces in bridge mode
APPS_BRIDGE = "apps0"  # host namespace, the apps network
APPS_BRIDGE_MAC = "02:fe:00:00:a0:01"  # the apps gateway's own MAC (see the plan)
S1_IF = "s1"  # eNB / SGW / MME side of their S1 link
UE_IF = "eth0"  # inside a UE or app namespace
TUN_IF = "tun0"  # eNB / SGW user-plane TUN device
PDN_IF = "pdn"  # SGW side of its link to the PDN
HOST_PDN_IF = "pdn"  # host namespace, its link to the PDN segment (the DNS server only)
PDN_HOST_PORT = "host"  # pdn namespace: the bridge port facing the host namespace
SEGMENT_BRIDGE = "br0"  # in the ran / core / pdn namespaces
RAN_HOST_PORT = "host"  # ran namespace: the bridge port facing the host (peer of s1enb)
GEN_IF = RAN_HOST_PORT  # the traffic generator transmits straight into the host's s1enb
UE_GATEWAY = IPv4Address("169.254.0.1")  # each UE's default gateway (held by its eNB's UE port)
UE_GATEWAY6 = IPv6Address("fe80::1")  # the same for IPv6
UPLINK_TABLE = 100  # eNB routing table sending UE traffic into the TUN

_PREFIX = re.compile(r"^[a-z][a-z0-9]{0,11}$")


def validate_prefix(prefix: str) -> str:
    """A lab prefix is 1-12 lowercase letters/digits starting with a letter."""
    if not _PREFIX.match(prefix):
        raise LabConfigError(
            f"invalid lab prefix {prefix!r}: 1-12 lowercase letters/digits, starting with a letter"
        )
    return prefix


@dataclass(frozen=True, slots=True)
class ProcessSpec:
    """A long-running lab process: ``module`` is run with ``python -m`` inside ``netns``."""

    name: str
    netns: str
    module: str
    spec: dict[str, object]
    stage: int = 0  # started once every process of an earlier stage is ready


@dataclass
class Plan:
    """Everything ``up`` does, in order: namespaces, sysctls, ip batches, offloads, processes."""

    namespaces: list[str] = field(default_factory=list)
    sysctls: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    create: dict[str, list[str]] = field(default_factory=dict)
    configure: dict[str, list[str]] = field(default_factory=dict)
    # Per-interface sysctls, applied once every link exists and before any is configured.
    link_sysctls: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    # IPv6 addresses, routes and rules (``ip -6 -batch``), after the IPv4 configuration.
    configure6: dict[str, list[str]] = field(default_factory=dict)
    tx_offload_off: list[tuple[str, str]] = field(default_factory=list)
    processes: list[ProcessSpec] = field(default_factory=list)
    # ``ip -batch`` scripts run once every process is ready (the osmo flavour in tof mode
    # attaches its UEs across a bridge, then cuts S1 for the TOF).
    finish: dict[str, list[str]] = field(default_factory=dict)

    def add_ns(self, name: str, sysctls: list[tuple[str, str]]) -> None:
        self.namespaces.append(name)
        self.sysctls[name] = sysctls
        self.create[name] = []
        self.configure[name] = []
        self.configure6[name] = []
        self.link_sysctls[name] = []

    def enable_ipv6(self, ns: str, *devs: str, forward: bool = False) -> None:
        """IPv6 on ``devs`` only (namespaces start with it disabled everywhere, S1 included):
        no DAD, RS or RA. Ethernet-like links keep a link-local address (neighbour discovery
        for forwarded packets needs one); TUNs get none (they need no neighbour discovery)."""
        if forward:
            self.link_sysctls[ns].append(("net/ipv6/conf/all/forwarding", "1"))
        for dev in devs:
            base = f"net/ipv6/conf/{dev}"
            self.link_sysctls[ns] += [
                (f"{base}/addr_gen_mode", "1" if dev == TUN_IF else "0"),
                (f"{base}/accept_dad", "0"),
                (f"{base}/accept_ra", "0"),
                (f"{base}/router_solicitations", "0"),
                (f"{base}/disable_ipv6", "0"),
            ]


_QUIET = [
    ("net/ipv6/conf/all/disable_ipv6", "1"),
    ("net/ipv6/conf/default/disable_ipv6", "1"),
    ("net/ipv4/conf/all/rp_filter", "0"),
    ("net/ipv4/conf/default/rp_filter", "0"),
]
_FORWARD = [*_QUIET, ("net/ipv4/ip_forward", "1")]


@dataclass(frozen=True)
class Topology:
    """Names and addresses of one lab instance (config + prefix)."""

    config: LabConfig
    prefix: str

    def ns(self, node: str) -> str:
        return f"{self.prefix}-{node}"

    @property
    def mode(self) -> Mode:
        return self.config.lab.mode

    @property
    def osmo(self) -> bool:
        """The osmo flavour (a real GTP stack) rather than the emulated S1-U nodes?"""
        return self.config.lab.flavour == "osmo"

    @property
    def host_ns(self) -> str:
        return self.ns("host")

    @property
    def ran_ns(self) -> str:
        return self.ns("ran")

    @property
    def core_ns(self) -> str:
        return self.ns("core")

    @property
    def pdn_ns(self) -> str:
        return self.ns("pdn")

    @property
    def mme_ns(self) -> str:
        return self.ns("mme")

    @property
    def bearers(self) -> tuple[Bearer, ...]:
        return bearers(self.config)

    @property
    def ipv6(self) -> bool:
        """Dual-stack UEs (inner IPv6 in the tunnels)? S1 itself is always IPv4."""
        return self.config.ue_pool.subnet6 is not None

    @property
    def pdn_address6(self) -> IPv6Address:
        pdn = self.config.pdn
        return ipv6_twin(pdn.address, pdn.subnet, pdn.subnet6) or IPv6Address("::")

    def sgw_pdn_address6(self, sgw: str) -> IPv6Address:
        pdn = self.config.pdn
        spec = next(s for s in self.config.sgw if s.name == sgw)
        return ipv6_twin(spec.pdn_address, pdn.subnet, pdn.subnet6) or IPv6Address("::")

    @property
    def pdn_dns_address6(self) -> IPv6Address | None:
        """The PDN's DNS server's IPv6 address (its IPv4 host index), when dual-stack."""
        pdn = self.config.pdn
        if not self.ipv6:
            return None
        return ipv6_twin(pdn.dns.address, pdn.subnet, pdn.subnet6)

    def ue_address6(self, ue: str) -> IPv6Address | None:
        return next(b.ue_address6 for b in self.bearers if b.ue == ue)

    def namespaces(self) -> list[str]:
        """Every namespace of the lab, in creation order."""
        cfg = self.config
        names = [self.ran_ns, self.core_ns, self.host_ns, self.pdn_ns]
        if self.osmo:
            names.append(self.ns(cfg.sgw[0].name))
            for e in cfg.enb:
                names += [self.ns(e.name), self.ns(next(u.name for u in cfg.ue if u.enb == e.name))]
            return names + [self.ns(x.name) for x in cfg.app]
        if cfg.mme:
            names.append(self.mme_ns)
        names += [self.ns(x.name) for x in cfg.enb]
        names += [self.ns(x.name) for x in cfg.sgw]
        names += [self.ns(x.name) for x in cfg.ue]
        names += [self.ns(x.name) for x in cfg.app]
        return names

    def plan(self, python: str, run_dir: str) -> Plan:
        """The full recipe; ``python`` runs the lab processes, ``run_dir`` holds their files."""
        cfg = self.config
        s1len = cfg.s1.subnet.prefixlen
        plan = Plan()
        ran, core, host, pdn = self.ran_ns, self.core_ns, self.host_ns, self.pdn_ns

        # --- the S1 segment: ran bridge (eNB side) and core bridge (SGW side)
        plan.add_ns(ran, _QUIET)
        plan.create[ran] += [
            f"link add name {SEGMENT_BRIDGE} type bridge",
            f"link add name {RAN_HOST_PORT} type veth peer name {HOST_ENB_IF} netns {host}",
        ]
        plan.configure[ran].append(f"link set dev {SEGMENT_BRIDGE} up")
        ran_ports = [RAN_HOST_PORT, *(e.name for e in cfg.enb)]
        for port in ran_ports:
            plan.configure[ran] += [
                f"link set dev {port} master {SEGMENT_BRIDGE}",
                f"link set dev {port} up",
            ]

        plan.add_ns(core, _QUIET)
        plan.create[core] += [
            f"link add name {SEGMENT_BRIDGE} type bridge",
            f"link add name host type veth peer name {HOST_SGW_IF} netns {host}",
        ]
        plan.configure[core].append(f"link set dev {SEGMENT_BRIDGE} up")
        core_ports = ["host", *(s.name for s in cfg.sgw)] + (["mme"] if cfg.mme else [])
        for port in core_ports:
            plan.configure[core] += [
                f"link set dev {port} master {SEGMENT_BRIDGE}",
                f"link set dev {port} up",
            ]

        # --- the fluidedge host: two S1 interfaces, the apps network
        host_sysctls = list(_FORWARD)
        if self.mode == "routed":
            host_sysctls.append(("net/ipv4/conf/all/proxy_arp", "1"))
        plan.add_ns(host, host_sysctls)
        # A MAC of its own (set, not inherited): a bridge without one takes its lowest port's,
        # so instances coming and going would change the gateway's MAC under the others.
        plan.create[host].append(
            f"link add name {APPS_BRIDGE} address {APPS_BRIDGE_MAC} type bridge"
        )
        plan.configure[host] += [
            f"link set dev {HOST_ENB_IF} up",
            f"link set dev {HOST_SGW_IF} up",
            f"link set dev {APPS_BRIDGE} up",
            f"addr add {cfg.apps.gateway}/{cfg.apps.subnet.prefixlen} dev {APPS_BRIDGE}",
        ]
        plan.tx_offload_off += [(host, HOST_ENB_IF), (host, HOST_SGW_IF)]
        # The osmo flavour's UEs attach (GTPv1-C) while `up` runs, before any TOF exists: in tof
        # mode S1 is bridged until they are attached, then the bridge goes.
        attach_bridged = self.osmo and self.mode == "tof"
        if attach_bridged:
            plan.finish[host] = [f"link del dev {HOST_BRIDGE}"]
        if self.mode == "bridge" or attach_bridged:
            plan.create[host].append(f"link add name {HOST_BRIDGE} type bridge")
            plan.configure[host] += [
                f"link set dev {HOST_ENB_IF} master {HOST_BRIDGE}",
                f"link set dev {HOST_SGW_IF} master {HOST_BRIDGE}",
                f"link set dev {HOST_BRIDGE} up",
            ]
        elif self.mode == "routed":
            # Proxy ARP answers are delayed up to 0.8 s by default; a router answers at once.
            plan.link_sysctls[host] += [
                (f"net/ipv4/neigh/{dev}/proxy_delay", "0") for dev in (HOST_ENB_IF, HOST_SGW_IF)
            ]
            plan.configure[host] += [
                f"addr add {cfg.s1.host_enb_side}/32 dev {HOST_ENB_IF}",
                f"addr add {cfg.s1.host_sgw_side}/32 dev {HOST_SGW_IF}",
            ]
            plan.configure[host] += [f"route add {e.address}/32 dev {HOST_ENB_IF}" for e in cfg.enb]
            plan.configure[host] += [f"route add {s.address}/32 dev {HOST_SGW_IF}" for s in cfg.sgw]
            plan.configure[host] += [f"route add {m.address}/32 dev {HOST_SGW_IF}" for m in cfg.mme]
        for app in cfg.app:
            plan.create[host].append(
                f"link add name {app.name} type veth peer name {UE_IF} netns {self.ns(app.name)}"
            )
            plan.configure[host] += [
                f"link set dev {app.name} master {APPS_BRIDGE}",
                f"link set dev {app.name} up",
            ]

        # --- PDN: a bridge holding the PDN host address, one port per SGW
        plan.add_ns(pdn, _QUIET)
        plan.create[pdn].append(f"link add name {SEGMENT_BRIDGE} type bridge")
        plan.configure[pdn] += [
            f"link set dev {SEGMENT_BRIDGE} up",
            f"addr add {cfg.pdn.address}/{cfg.pdn.subnet.prefixlen} dev {SEGMENT_BRIDGE}",
        ]
        for s in cfg.sgw:
            plan.configure[pdn] += [
                f"link set dev {s.name} master {SEGMENT_BRIDGE}",
                f"link set dev {s.name} up",
            ]
        # The DNS server's own address; and the host namespace on the PDN segment, with one
        # /32 route there: to the DNS server (the ME platform's responder asks it upstream).
        dns = cfg.pdn.dns
        plan.create[pdn].append(
            f"link add name {PDN_HOST_PORT} type veth peer name {HOST_PDN_IF} netns {host}"
        )
        plan.configure[pdn] += [
            f"addr add {dns.address}/32 dev {SEGMENT_BRIDGE}",
            f"link set dev {PDN_HOST_PORT} master {SEGMENT_BRIDGE}",
            f"link set dev {PDN_HOST_PORT} up",
        ]
        plan.configure[host] += [
            f"link set dev {HOST_PDN_IF} up",
            f"addr add {dns.host_address}/32 dev {HOST_PDN_IF}",
            f"route add {dns.address}/32 dev {HOST_PDN_IF} src {dns.host_address}",
        ]
        sgw_pdn = {s.name: s.pdn_address for s in cfg.sgw}
        if self.osmo:  # the GGSN hands out any pool address
            plan.configure[pdn].append(
                f"route add {cfg.ue_pool.subnet} via {cfg.sgw[0].pdn_address}"
            )
        else:
            plan.configure[pdn] += [
                f"route add {b.ue_address}/32 via {sgw_pdn[b.sgw]}" for b in self.bearers
            ]
        if self.ipv6:
            plan.enable_ipv6(pdn, SEGMENT_BRIDGE)
            plan.configure6[pdn].append(
                f"addr add {self.pdn_address6}/{cfg.pdn.subnet6.prefixlen} "
                f"dev {SEGMENT_BRIDGE} nodad"
            )
            plan.configure6[pdn] += [
                f"route add {b.ue_address6}/128 via {self.sgw_pdn_address6(b.sgw)}"
                for b in self.bearers
            ]
            plan.configure6[pdn].append(
                f"addr add {self.pdn_dns_address6}/128 dev {SEGMENT_BRIDGE} nodad"
            )
        plan.processes.append(
            ProcessSpec(
                name="pdn",
                netns=pdn,
                module="fluidedge.lab.services",
                spec={
                    "name": "pdn",
                    "http_port": cfg.pdn.http_port,
                    "http_body": f"pdn {cfg.pdn.address}",
                    "udp_echo_port": cfg.pdn.udp_echo_port,
                    "ipv6": self.ipv6,
                    "tcp_echo_port": None,
                    "dns": {
                        "address": str(dns.address),
                        "address6": None
                        if self.pdn_dns_address6 is None
                        else str(self.pdn_dns_address6),
                        "port": dns.port,
                        "zone": {"ttl": dns.ttl, "names": dns_zone(cfg)},
                        "stats_path": f"{run_dir}/pdn.dns.json",
                    },
                    "ready_path": f"{run_dir}/pdn.ready",
                },
            )
        )

        if self.osmo:
            self._plan_osmo(plan, run_dir)
            self._plan_apps(plan, run_dir)
            return plan

        # --- MME-like peers (non-GTP control traffic across S1)
        if cfg.mme:
            mme = self.mme_ns
            plan.add_ns(mme, _QUIET)
            plan.create[mme].append(f"link add name {S1_IF} type veth peer name mme netns {core}")
            plan.configure[mme].append(f"link set dev {S1_IF} up")
            plan.configure[mme] += [f"addr add {m.address}/{s1len} dev {S1_IF}" for m in cfg.mme]
            plan.tx_offload_off.append((mme, S1_IF))
            ports = sorted({m.port for m in cfg.mme})
            if len(ports) != 1:
                raise LabConfigError("all mme peers must use the same port")
            plan.processes.append(
                ProcessSpec(
                    name="mme",
                    netns=mme,
                    module="fluidedge.lab.services",
                    spec={
                        "name": "mme",
                        "http_port": None,
                        "http_body": "",
                        "udp_echo_port": None,
                        "tcp_echo_port": ports[0],
                        "ready_path": f"{run_dir}/mme.ready",
                    },
                )
            )

        # --- eNBs: S1 port, one port per UE, the user-plane TUN
        mme_by_name = {m.name: m for m in cfg.mme}
        for e in cfg.enb:
            ns = self.ns(e.name)
            plan.add_ns(ns, _FORWARD)
            plan.create[ns] += [
                f"link add name {S1_IF} type veth peer name {e.name} netns {ran}",
                f"tuntap add dev {TUN_IF} mode tun",
            ]
            plan.configure[ns] += [
                f"link set dev {S1_IF} up",
                f"addr add {e.address}/{s1len} dev {S1_IF}",
                f"link set dev {TUN_IF} mtu {cfg.ue_pool.mtu} up",
                f"route add default dev {TUN_IF} table {UPLINK_TABLE}",
            ]
            plan.tx_offload_off.append((ns, S1_IF))
            mine = [b for b in self.bearers if b.enb == e.name]
            for b in mine:
                plan.create[ns].append(
                    f"link add name {b.ue} type veth peer name {UE_IF} netns {self.ns(b.ue)}"
                )
                plan.configure[ns] += [
                    f"link set dev {b.ue} mtu {cfg.ue_pool.mtu} up",
                    f"addr add {UE_GATEWAY}/32 dev {b.ue}",
                    f"route add {b.ue_address}/32 dev {b.ue}",
                    f"rule add iif {b.ue} lookup {UPLINK_TABLE} priority {UPLINK_TABLE}",
                ]
                if self.ipv6:
                    plan.enable_ipv6(ns, b.ue)
                    plan.configure6[ns] += [
                        f"addr add {UE_GATEWAY6}/64 dev {b.ue} nodad",
                        f"route add {b.ue_address6}/128 dev {b.ue}",
                        f"rule add iif {b.ue} lookup {UPLINK_TABLE} priority {UPLINK_TABLE}",
                    ]
            if self.ipv6:
                plan.enable_ipv6(ns, TUN_IF, forward=True)
                plan.configure6[ns].append(f"route add default dev {TUN_IF} table {UPLINK_TABLE}")
            peer = mme_by_name.get(e.mme) if e.mme else None
            plan.processes.append(
                ProcessSpec(
                    name=e.name,
                    netns=ns,
                    module="fluidedge.lab.node",
                    spec={
                        "role": "enb",
                        "name": e.name,
                        "address": str(e.address),
                        "tun": TUN_IF,
                        "bearers": [b.as_json() for b in mine],
                        "echo_peers": sorted({str(b.sgw_address) for b in mine}),
                        "echo_interval": cfg.gtpu.echo_interval,
                        "mme": None if peer is None else [str(peer.address), peer.port],
                        "stats_path": f"{run_dir}/{e.name}.stats.json",
                    },
                )
            )

        # --- SGWs: S1 port, PDN port, the user-plane TUN
        for s in cfg.sgw:
            ns = self.ns(s.name)
            plan.add_ns(ns, _FORWARD)
            plan.create[ns] += [
                f"link add name {S1_IF} type veth peer name {s.name} netns {core}",
                f"link add name {PDN_IF} type veth peer name {s.name} netns {pdn}",
                f"tuntap add dev {TUN_IF} mode tun",
            ]
            plan.configure[ns] += [
                f"link set dev {S1_IF} up",
                f"addr add {s.address}/{s1len} dev {S1_IF}",
                f"link set dev {PDN_IF} up",
                f"addr add {s.pdn_address}/{cfg.pdn.subnet.prefixlen} dev {PDN_IF}",
                f"link set dev {TUN_IF} mtu {cfg.ue_pool.mtu} up",
                f"route add {cfg.ue_pool.subnet} dev {TUN_IF}",
            ]
            if self.ipv6:
                plan.enable_ipv6(ns, PDN_IF, TUN_IF, forward=True)
                plan.configure6[ns] += [
                    f"addr add {self.sgw_pdn_address6(s.name)}/{cfg.pdn.subnet6.prefixlen} "
                    f"dev {PDN_IF} nodad",
                    f"route add {cfg.ue_pool.subnet6} dev {TUN_IF}",
                ]
            plan.tx_offload_off.append((ns, S1_IF))
            mine = [b for b in self.bearers if b.sgw == s.name]
            plan.processes.append(
                ProcessSpec(
                    name=s.name,
                    netns=ns,
                    module="fluidedge.lab.node",
                    spec={
                        "role": "sgw",
                        "name": s.name,
                        "address": str(s.address),
                        "tun": TUN_IF,
                        "bearers": [b.as_json() for b in mine],
                        "echo_peers": [],
                        "echo_interval": 0.0,
                        "mme": None,
                        "stats_path": f"{run_dir}/{s.name}.stats.json",
                    },
                )
            )

        # --- UEs: a /32 and a default route through their eNB
        for u in cfg.ue:
            ns = self.ns(u.name)
            plan.add_ns(ns, _QUIET)
            plan.configure[ns] += [
                f"link set dev {UE_IF} mtu {cfg.ue_pool.mtu} up",
                f"addr add {u.address}/32 dev {UE_IF}",
                f"route add default via {UE_GATEWAY} dev {UE_IF} onlink",
            ]
            six = self.ue_address6(u.name)
            if six is not None:
                plan.enable_ipv6(ns, UE_IF)
                plan.configure6[ns] += [
                    f"addr add {six}/128 dev {UE_IF} nodad",
                    f"route add default via {UE_GATEWAY6} dev {UE_IF}",
                ]

        self._plan_apps(plan, run_dir)
        return plan

    def _plan_apps(self, plan: Plan, run_dir: str) -> None:
        """Edge apps on the apps network (the same in both flavours)."""
        cfg = self.config
        for app in cfg.app:
            ns = self.ns(app.name)
            plan.add_ns(ns, _QUIET)
            plan.configure[ns] += [
                f"link set dev {UE_IF} up",
                f"addr add {app.address}/{cfg.apps.subnet.prefixlen} dev {UE_IF}",
                f"route add default via {cfg.apps.gateway} dev {UE_IF}",
            ]
            plan.processes.append(
                ProcessSpec(
                    name=app.name,
                    netns=ns,
                    module="fluidedge.lab.services",
                    spec={
                        "name": app.name,
                        "http_port": app.http_port,
                        "http_body": f"edge-app {app.name} {app.address}",
                        "udp_echo_port": None,
                        "tcp_echo_port": None,
                        "ready_path": f"{run_dir}/{app.name}.ready",
                    },
                )
            )

    def _plan_osmo(self, plan: Plan, run_dir: str) -> None:
        """The osmo flavour's core and radio side: osmo-ggsn and one sgsnemu per UE.

        The GGSN namespace holds the S1 (Gn) address, its TUN (created by osmo-ggsn) and the
        PDN link; each SGSN namespace holds its S1 address and runs sgsnemu, which moves the
        UE's TUN (with the address the GGSN assigned and a default route) into the UE's own
        namespace. Processes start in stages (GGSN, then the UEs one by one), so the first
        attach gives each UE the address the config names.
        """
        cfg = self.config
        s1len = cfg.s1.subnet.prefixlen
        ggsn = cfg.sgw[0]
        gns = self.ns(ggsn.name)
        plan.add_ns(gns, _FORWARD)
        plan.create[gns] += [
            f"link add name {S1_IF} type veth peer name {ggsn.name} netns {self.core_ns}",
            f"link add name {PDN_IF} type veth peer name {ggsn.name} netns {self.pdn_ns}",
        ]
        plan.configure[gns] += [
            "link set dev lo up",  # the GGSN's VTY and CTRL listen on 127.0.0.1 (this netns)
            f"link set dev {S1_IF} up",
            f"addr add {ggsn.address}/{s1len} dev {S1_IF}",
            f"link set dev {PDN_IF} up",
            f"addr add {ggsn.pdn_address}/{cfg.pdn.subnet.prefixlen} dev {PDN_IF}",
        ]
        plan.tx_offload_off.append((gns, S1_IF))
        plan.processes.append(
            ProcessSpec(
                name=ggsn.name,
                netns=gns,
                module="fluidedge.lab.osmo",
                spec={
                    "role": "ggsn",
                    "name": ggsn.name,
                    "address": str(ggsn.address),
                    "pool": str(cfg.ue_pool.subnet),
                    "dns": str(cfg.pdn.dns.address),  # the UEs' resolver (PCO)
                    "mtu": cfg.ue_pool.mtu,
                    "tun": "tun4",
                    "state_dir": f"{run_dir}/{ggsn.name}",
                    "ready_path": f"{run_dir}/{ggsn.name}.ready",
                },
            )
        )
        for stage, e in enumerate(cfg.enb, start=1):
            ue = next(u for u in cfg.ue if u.enb == e.name)
            ns = self.ns(e.name)
            plan.add_ns(ns, _QUIET)
            plan.create[ns].append(
                f"link add name {S1_IF} type veth peer name {e.name} netns {self.ran_ns}"
            )
            plan.configure[ns] += [
                "link set dev lo up",
                f"link set dev {S1_IF} up",
                f"addr add {e.address}/{s1len} dev {S1_IF}",
            ]
            plan.tx_offload_off.append((ns, S1_IF))
            plan.add_ns(self.ns(ue.name), _QUIET)
            plan.configure[self.ns(ue.name)].append("link set dev lo up")
            plan.processes.append(
                ProcessSpec(
                    name=e.name,
                    netns=ns,
                    module="fluidedge.lab.osmo",
                    spec=sgsn_spec(self, e.name, ue.name, run_dir, attach=0),
                    stage=stage,
                )
            )


def imsi(index: int, attach: int) -> str:
    """A distinct 15-digit IMSI per UE and attach (test network MCC 001, MNC 01)."""
    return f"00101{index:04d}{attach:06d}"


def sgsn_spec(
    topo: Topology, sgsn: str, ue: str, run_dir: str, *, attach: int
) -> dict[str, object]:
    """What ``fluidedge.lab.osmo`` needs to run sgsnemu for ``ue`` (attach number ``attach``)."""
    cfg = topo.config
    index = [e.name for e in cfg.enb].index(sgsn) + 1
    address = next(e.address for e in cfg.enb if e.name == sgsn)
    return {
        "role": "sgsn",
        "name": sgsn,
        "ue": ue,
        "ue_netns": topo.ns(ue),
        "address": str(address),
        "ggsn": str(cfg.sgw[0].address),
        "imsi": imsi(index, attach),
        "attach": attach,
        "mtu": cfg.ue_pool.mtu,
        "tun": "tun0",
        "state_dir": f"{run_dir}/{sgsn}",
        "ready_path": f"{run_dir}/{sgsn}.ready",
    }
