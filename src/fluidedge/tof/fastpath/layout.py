"""Byte layouts of the fast path's eBPF maps, and the pure projection pipeline -> maps.

The C structs in ``fastpath.bpf.c`` and the packers here must agree: indexes are read from
the C enums (:mod:`~fluidedge.tof.fastpath.cdefs`) and the unit tests check every format
against its C struct, field by field. Addresses, ports and TEIDs are kept in network order
(raw bytes), as the program reads them from packets; counters are host-order ``u64``.

:func:`project` turns the reference pipeline's state into the exact map contents the program
needs (IPv4 only; IPv6 tunnels and flows simply stay with the agent), and :func:`diff` turns
"what is installed" and "what should be" into upserts and deletes. Both are pure so the
"no stale or duplicate entry" property is testable without a kernel.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from fluidedge.tof.fastpath import cdefs
from fluidedge.tof.pipeline import Bearer, Flow, Pipeline, tunnel_key
from fluidedge.tof.superfluid.table import READY

# cfg array indexes, read from enum cfg_index (cdefs: the C file is the one source).
_CFG = cdefs.enum("cfg_index")
CFG_ENB_IF, CFG_SGW_IF = _CFG["CFG_ENB_IF"], _CFG["CFG_SGW_IF"]
CFG_PUNT_ENB_IF, CFG_PUNT_SGW_IF = _CFG["CFG_PUNT_ENB_IF"], _CFG["CFG_PUNT_SGW_IF"]
CFG_TUN_IF, CFG_S1_MTU = _CFG["CFG_TUN_IF"], _CFG["CFG_S1_MTU"]
CFG_PUNT_RATE, CFG_PUNT_BURST = _CFG["CFG_PUNT_RATE"], _CFG["CFG_PUNT_BURST"]
CFG_CONTROL_RATE, CFG_CONTROL_BURST = _CFG["CFG_CONTROL_RATE"], _CFG["CFG_CONTROL_BURST"]
CFG_LEARN_RATE, CFG_LEARN_BURST = _CFG["CFG_LEARN_RATE"], _CFG["CFG_LEARN_BURST"]
CFG_ACCOUNTING = _CFG["CFG_ACCOUNTING"]  # 1: offloaded packets counted per bearer and service
CFG_INTERCEPT = _CFG["CFG_INTERCEPT"]  # lawful-intercept targets in the intercepts map

# The names the API shows for enum stat_index members (the order comes from the C enum).
STAT_API_NAMES = {
    "ST_SWITCHED_NON_IP": "switched_non_ip",
    "ST_SWITCHED_NON_GTP": "switched_non_gtp",
    "ST_PASS_UP": "passthrough_uplink",
    "ST_PASS_DOWN": "passthrough_downlink",
    "ST_OFFLOAD_UP": "offloaded_uplink",
    "ST_OFFLOAD_DOWN": "offloaded_downlink",
    "ST_PUNT_ENB": "punted_from_enb",
    "ST_PUNT_SGW": "punted_from_sgw",
    "ST_PUNT_LIMITED": "punt_rate_limited",
    "ST_APPS_TO_AGENT": "apps_to_agent",
    "ST_ERRORS": "errors",
    # switched because no agent was alive (its counts go with the program)
    "ST_FAILOPEN": "failopen_switched",
    # over the budget of its class (switched unchanged): control messages, learning, data
    "ST_LIMITED_CONTROL": "punt_limited_control",
    "ST_LIMITED_LEARN": "punt_limited_learn",
    "ST_LIMITED_DATA": "punt_limited_data",
    # per-UE rate limits (docs/accounting.md): dropped over a UE's rate; a bucket the full
    # ue_limits map could not hold (its packet went unlimited)
    "ST_RL_DROP_UP": "rate_limited_uplink",
    "ST_RL_DROP_DOWN": "rate_limited_downlink",
    "ST_RL_UNTRACKED": "rate_limit_untracked",
}
# The names of enum punt_reason members (punt_<name> in the API).
PUNT_API_NAMES = {
    "P_SHORT": "short_frame",
    "P_ETHERTYPE": "ethertype",
    "P_OUTER_IP": "outer_ip_shape",
    "P_OUTER_FRAGMENT": "outer_fragment",
    "P_OUTER_UDP": "outer_udp_shape",
    "P_GTP_MESSAGE": "gtp_not_gpdu",
    "P_EXTENSIONS": "extension_chain",
    "P_INNER": "inner_shape",
    "P_UNKNOWN_TUNNEL": "unknown_tunnel",
    "P_PINGER_REPLY": "pinger_reply",
    "P_INNER_FRAGMENT": "inner_fragment",
    "P_TCP_SYN": "tcp_syn",
    "P_INNER_PROTO": "inner_protocol",
    "P_NEW_FLOW": "new_flow",
    "P_UE_CHANGED": "ue_changed",  # a learned key carrying another inner UE (TEID reuse)
    "P_GTPC": "gtpc",  # GTPv1-C (UDP 2123): the agent learns/forgets bearers, then passes it
    "P_OUTER_UDP_LENGTH": "outer_udp_length",  # G-PDU whose UDP length is not the IP's
    "P_SERVICE_PUNT": "service_punt",  # a service flagged SERVICE_PUNT (e.g. app not ready)
    "P_GTP_MALFORMED": "gtp_malformed",  # bad GTP-U version/PT or length (data budget)
    "P_GSO": "gso_frame",  # a GSO super-frame (data budget)
    "P_USAGE_FULL": "usage_full",  # accounting on, the usage map full: the agent counts it
    "P_ONDEMAND": "ondemand_not_ready",  # on-demand, no ready binding: the agent queues/wakes
}


def _ordered(enum_name: str, names: Mapping[str, str], last: str) -> tuple[str, ...]:
    members = {k: v for k, v in cdefs.enum(enum_name).items() if k != last}
    return tuple(names[k] for k, _ in sorted(members.items(), key=lambda kv: kv[1]))


STAT_NAMES = _ordered("stat_index", STAT_API_NAMES, "ST_MAX")
PUNT_REASONS = _ordered("punt_reason", PUNT_API_NAMES, "P_MAX")
# service_val.flags (enum service_flag)
_FLAGS = cdefs.enum("service_flag")
SERVICE_PUNT = _FLAGS["SVC_PUNT"]  # every packet to the agent (an app that is not ready yet)
SERVICE_VIA_STACK = _FLAGS["SVC_VIA_STACK"]  # offloaded packets through routing + netfilter
SERVICE_UE_LIMITS = _FLAGS["SVC_UE_LIMITS"]  # some UEs have their own limits (ue_overrides)
SERVICE_ONDEMAND = _FLAGS["SVC_ONDEMAND"]  # the instance IP is a ready binding's (ondemand)
SERVICE_PER_UE = _FLAGS["SVC_PER_UE"]  # on-demand per-ue: bindings keyed by UE (else UE 0)
OVERRIDE_VAL = struct.Struct("=IIII")  # up rate, up burst, down rate, down burst (bytes)
# Counters the pipeline also keeps under the same name (merged into its ``counters``).
SHARED_COUNTERS = ("switched_non_ip", "switched_non_gtp")

U32 = struct.Struct("=I")
U64 = struct.Struct("=Q")
TUNNEL_VAL = struct.Struct("=QQQQ4s4x")  # packets, bytes, last_seen ns, offloaded, UE
# application IP, slot, flags, uplink rate (bytes/s) and burst (bytes), downlink rate, burst
SERVICE_VAL = struct.Struct("=4sIIIIII")
FLOW_KEY = struct.Struct("=BB2s2sH4s4s")  # proto, pad, app port, ue port, pad, app, ue
FLOW_VAL = struct.Struct("=4s4s4sIQ")  # service IP, eNB, SGW, slot, last_seen ns
DOWNLINK_VAL = struct.Struct("=14sBB2sH4sQ")  # eth, tos, ttl, sport, pad, TEID, offloaded
SERVICE_STATS = struct.Struct("=QQQQ")  # up packets, up bytes, down packets, down bytes
USAGE_KEY = struct.Struct("=4s4s4sI")  # eNB, SGW, UE, slot
USAGE_VAL = struct.Struct("=QQQQQQ")  # up packets, bytes, down packets, bytes, first/last ns
LIMIT_KEY = struct.Struct("=4sHH")  # UE, slot, direction (0 uplink, 1 downlink)
LIMIT_VAL = struct.Struct("=4x4xQQQQ")  # (spin lock, pad) tokens, last ns, drops, dropped bytes
OVERRIDE_KEY = struct.Struct("=4sI")  # UE, slot
INTERCEPT_VAL = struct.Struct("=I4s4sI")  # mirror ifindex, eNB, SGW (0: any), failed copies
ONDEMAND_KEY = struct.Struct("=4s4s")  # service IP, UE (0.0.0.0: a shared service's binding)
ONDEMAND_VAL = struct.Struct("=4s4xQ")  # instance IP, (pad), last seen ns

TUNNEL_KEY_SIZE = 12
BEARER_KEY_SIZE = 12
MAX_SERVICES = cdefs.map_max_entries("services")
# Python format <-> C struct pairs (checked field by field in tests/unit/tof_fastpath).
STRUCTS = {
    "tunnel_val": TUNNEL_VAL,
    "service_val": SERVICE_VAL,
    "flow_key": FLOW_KEY,
    "flow_val": FLOW_VAL,
    "downlink_val": DOWNLINK_VAL,
    "service_stats": SERVICE_STATS,
    "usage_key": USAGE_KEY,
    "usage_val": USAGE_VAL,
    "limit_key": LIMIT_KEY,
    "limit_val": LIMIT_VAL,
    "override_key": OVERRIDE_KEY,
    "override_val": OVERRIDE_VAL,
    "intercept_val": INTERCEPT_VAL,
    "ondemand_key": ONDEMAND_KEY,
    "ondemand_val": ONDEMAND_VAL,
}


def map_sizes(
    max_tunnels: int, max_flows: int, override: Mapping[str, int] | None = None
) -> dict[str, int]:
    """``max_entries`` of the hash maps for a config: a bearer has two tunnel keys (uplink and
    downlink) and at most one downlink entry; ``override`` (tests, benches) wins."""
    sizes = {
        "tunnels": 2 * max_tunnels,
        "flows": max_flows,
        "downlink": max_tunnels,
        # a bucket per UE, limited service and direction (created by the program)
        "ue_limits": 4 * max_tunnels,
        # offloaded usage per bearer and service (accounting on; created by the program)
        "usage": 2 * max_tunnels,
    }
    for name, size in (override or {}).items():
        if name not in sizes or size < 1:
            raise ValueError(f"map {name!r} cannot be sized {size}")
        sizes[name] = size
    return sizes


@dataclass
class MapState:
    """What the agent knows of one sized map: its capacity, the entries it holds, the entries
    the pipeline wants there that it refused (their traffic stays on the agent), and the
    refused writes so far (full, or another error)."""

    capacity: int
    entries: int = 0
    waiting: int = 0
    full_failures: int = 0
    other_failures: int = 0

    def report(self) -> dict[str, int | bool]:
        return {
            "capacity": self.capacity,
            "entries": self.entries,
            "waiting": self.waiting,
            "full": self.waiting > 0,
            "fullFailures": self.full_failures,
            "otherFailures": self.other_failures,
        }


class SlotsExhausted(ValueError):
    """Every slot is held by a service."""


@dataclass
class SlotAllocator:
    """Per-service slots (the index of a service's kernel counters, stamped on its flows).

    A name keeps its slot while it exists (PUT changes the mapping, not the identity). New
    names get slots round robin, so a slot freed by a deleted service is handed out again
    only after every other free slot: flows stamped with it may still be in the kernel until
    the next sync, and the program must not match them to a new service.
    """

    capacity: int
    next_slot: int = 0

    def assign(self, current: Mapping[str, int], names: Iterable[str]) -> dict[str, int]:
        wanted = list(names)
        slots = {n: current[n] for n in wanted if n in current}
        used = set(current.values())  # still in force until the new set is installed
        for name in wanted:
            if name in slots:
                continue
            for step in range(self.capacity):
                candidate = (self.next_slot + step) % self.capacity
                if candidate not in used:
                    break
            else:
                raise SlotsExhausted(f"all {self.capacity} service slots are in use")
            slots[name] = candidate
            used.add(candidate)
            self.next_slot = (candidate + 1) % self.capacity
        return slots


def flow_key(proto: int, app: bytes, app_port: int, ue: bytes, ue_port: int) -> bytes:
    return FLOW_KEY.pack(
        proto, 0, app_port.to_bytes(2, "big"), ue_port.to_bytes(2, "big"), 0, app, ue
    )


@dataclass
class Projection:
    """The contents the maps should have (values without the counters the program owns)."""

    tunnels: set[bytes] = field(default_factory=set)
    tunnel_ues: dict[bytes, bytes] = field(default_factory=dict)  # key -> its bearer's UE
    services: dict[bytes, bytes] = field(default_factory=dict)
    flows: dict[bytes, bytes] = field(default_factory=dict)
    downlink: dict[bytes, bytes] = field(default_factory=dict)


FlowPipelineKey = tuple[int, bytes, int, bytes, int]
BearerKey = tuple[bytes, bytes, bytes]


def flow_pipeline_key(key: bytes) -> FlowPipelineKey:
    """The pipeline's flow key from a ``flows`` map key (the inverse of :func:`flow_key`)."""
    proto, _pad, app_port, ue_port, _pad2, app, ue = FLOW_KEY.unpack(key)
    return (proto, app, int.from_bytes(app_port, "big"), ue, int.from_bytes(ue_port, "big"))


def tunnel_key_of(bearer: Bearer, *, uplink: bool) -> bytes:
    """The ``tunnels`` key of ``bearer``'s uplink or downlink TEID (IPv4: src + dst + TEID)."""
    teid = bearer.ul_teid if uplink else bearer.dl_teid
    src, dst = (bearer.enb, bearer.sgw) if uplink else (bearer.sgw, bearer.enb)
    return tunnel_key(src, dst, teid or 0, bearer.ue)


def tunnel_entry(pipeline: Pipeline, key: bytes) -> bytes | None:
    """The UE the ``tunnels`` entry ``key`` must carry, or None: no entry."""
    if len(key) != TUNNEL_KEY_SIZE:
        return None
    bearer = pipeline.down.get(key)
    if bearer is None:
        bearer = pipeline.up.get(key)
    return None if bearer is None else bearer.ue


def flow_entry(
    pipeline: Pipeline, pkey: FlowPipelineKey, slots: Mapping[str, int]
) -> tuple[bytes, bytes | None]:
    """The ``flows`` map key of the pipeline's flow ``pkey`` and the value it must have."""
    proto, app, app_port, ue, ue_port = pkey
    key = flow_key(proto, app, app_port, ue, ue_port) if len(app) == 4 else b""
    flow = pipeline.flows.get(pkey)
    if flow is None or not key:
        return key, None
    slot = slots.get(flow.service)
    if slot is None:
        return key, None
    entry = pipeline.services.get(flow.service_ip)
    if entry != (flow.service, flow.application_ip) and not (
        entry == (flow.service, b"") and _bound(pipeline, flow)
    ):
        return key, None
    enb, sgw, _ue = flow.bearer
    return key, FLOW_VAL.pack(flow.service_ip, enb, sgw, slot, 0)


def _bound(pipeline: Pipeline, flow: Flow) -> bool:
    """Whether an on-demand service's flow goes to its binding's instance (whatever the
    binding's state: the ``ondemand`` entry, not the flow, says whether the kernel may offload)."""
    table = pipeline.ondemand
    binding = table.bindings.get(table.key(flow.service, flow.bearer[2]))
    return binding is not None and binding.app_ip == flow.application_ip


def ondemand_entry(
    pipeline: Pipeline, key: tuple[str, bytes], service_ips: Mapping[str, bytes]
) -> tuple[bytes, bytes] | None:
    """The ``ondemand`` entry (map key, instance IP) of binding ``key`` (service, UE or ``b""``),
    or None: only a *ready* binding of an IPv4 service to an IPv4 instance is the kernel's.
    ``service_ips``: on-demand service name -> its service IP."""
    binding = pipeline.ondemand.bindings.get(key)
    sip = service_ips.get(key[0])
    if binding is None or binding.state != READY or sip is None or len(sip) != 4:
        return None
    ue = key[1] or bytes(4)
    if len(ue) != 4 or len(binding.app_ip) != 4:
        return None
    return ONDEMAND_KEY.pack(sip, ue), binding.app_ip


def downlink_entry(pipeline: Pipeline, bkey: BearerKey) -> bytes | None:
    """The ``downlink`` value of bearer ``bkey`` (map key ``enb + sgw + ue``), or None."""
    bearer = pipeline.bearers.get(bkey)
    if (
        bearer is None
        or len(bearer.ue) != 4
        or len(bearer.enb) != 4
        or bearer.dl_teid is None
        or len(bearer.dl_eth) != 14
        or bearer.queue
    ):
        return None
    return DOWNLINK_VAL.pack(
        bearer.dl_eth,
        bearer.dl_tos,
        bearer.dl_ttl,
        bearer.dl_sport.to_bytes(2, "big"),
        0,
        bearer.dl_teid.to_bytes(4, "big"),
        0,
    )


def service_value(pipeline: Pipeline, name: str, app: bytes, slot: int, flags: int) -> bytes:
    """The ``services`` value of service ``name``: its application IP, slot, flags and the
    per-UE rate limits of ``[tof.ratelimit]`` (bytes/s and bytes; 0: unlimited)."""
    limits = pipeline.ratelimit.limits.get(name) if pipeline.ratelimit is not None else None
    (ur, ub), (dr, db) = limits if limits is not None else ((0, 0), (0, 0))
    return SERVICE_VAL.pack(app, slot, flags, ur, ub, dr, db)


def ue_overrides(pipeline: Pipeline, slots: Mapping[str, int]) -> dict[bytes, bytes]:
    """The ``ue_overrides`` entries: (IPv4 UE, service slot) -> that UE's own limits."""
    limiter = pipeline.ratelimit
    out: dict[bytes, bytes] = {}
    if limiter is None:
        return out
    for (ue, name), ((ur, ub), (dr, db)) in limiter.overrides.items():
        slot = slots.get(name)
        if slot is not None and len(ue) == 4:
            out[OVERRIDE_KEY.pack(ue, slot)] = OVERRIDE_VAL.pack(ur, ub, dr, db)
    return out


def project(pipeline: Pipeline, slots: Mapping[str, int]) -> Projection:
    """What the eBPF maps must hold for ``pipeline``'s current state (IPv4 entries only).

    The union of the per-key projections (:func:`tunnel_entry`, :func:`flow_entry`,
    :func:`downlink_entry`), which the incremental sync applies to changed keys only.
    """
    out = Projection()
    for table in (pipeline.up, pipeline.down):
        for key in table:
            ue = tunnel_entry(pipeline, key)
            if ue is not None:
                out.tunnels.add(key)
                out.tunnel_ues[key] = ue
    for service_ip, (name, app_ip) in pipeline.services.items():
        slot = slots.get(name)
        if len(service_ip) == 4 and slot is not None:
            out.services[service_ip] = service_value(pipeline, name, app_ip, slot, 0)
    for service_ip, rules in pipeline.classified.items():
        slot = slots.get(rules[0].name)
        if len(service_ip) == 4 and slot is not None:  # every packet to the agent
            first = rules[0]
            out.services[service_ip] = service_value(
                pipeline, first.name, first.application_ip, slot, SERVICE_PUNT
            )
    for pkey in pipeline.flows:
        key, value = flow_entry(pipeline, pkey, slots)
        if value is not None:
            out.flows[key] = value
    for bkey, bearer in pipeline.bearers.items():
        value = downlink_entry(pipeline, bkey)
        if value is not None:
            out.downlink[bearer.enb + bearer.sgw + bearer.ue] = value
    return out


def strip_counters_flow(value: bytes) -> bytes:
    """A flow value without its ``last_seen`` (the part the agent decides)."""
    return value[:16]


def strip_counters_downlink(value: bytes) -> bytes:
    return value[:24]


def diff(
    installed: Mapping[bytes, bytes], desired: Mapping[bytes, bytes]
) -> tuple[dict[bytes, bytes], list[bytes]]:
    """Upserts (new or changed values) and deletes that turn ``installed`` into ``desired``."""
    upserts = {k: v for k, v in desired.items() if installed.get(k) != v}
    deletes = [k for k in installed if k not in desired]
    return upserts, deletes
