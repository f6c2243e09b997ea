"""Byte layouts of the fast path's eBPF maps, and the pure projection pipeline -> maps.

The C structs in ``fastpath.bpf.c`` and the packers here must agree; the unit tests pin the
sizes. Addresses, ports and TEIDs are kept in network order (raw bytes), as the program reads
them from packets; counters are host-order ``u64``.

:func:`project` turns the reference pipeline's state into the exact map contents the program
needs (IPv4 only; IPv6 tunnels and flows simply stay with the agent), and :func:`diff` turns
"what is installed" and "what should be" into upserts and deletes. Both are pure so the
"no stale or duplicate entry" property is testable without a kernel.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass, field

from fluidedge.tof.pipeline import Pipeline

# cfg array indexes (enum cfg_index)
CFG_ENB_IF, CFG_SGW_IF, CFG_PUNT_ENB_IF, CFG_PUNT_SGW_IF, CFG_TUN_IF = range(5)
CFG_S1_MTU, CFG_PUNT_RATE, CFG_PUNT_BURST = 5, 6, 7
# stats array indexes (enum stat_index), with the names the API shows.
STAT_NAMES = (
    "switched_non_ip",
    "switched_non_gtp",
    "passthrough_uplink",
    "passthrough_downlink",
    "offloaded_uplink",
    "offloaded_downlink",
    "punted_from_enb",
    "punted_from_sgw",
    "punt_rate_limited",
    "apps_to_agent",
    "errors",
    "failopen_switched",  # switched because no agent was alive (its counts go with the program)
)
# punt_reasons array indexes (enum punt_reason).
PUNT_REASONS = (
    "short_frame",
    "ethertype",
    "outer_ip_shape",
    "outer_fragment",
    "outer_udp_shape",
    "gtp_not_gpdu",
    "extension_chain",
    "inner_shape",
    "unknown_tunnel",
    "pinger_reply",
    "inner_fragment",
    "tcp_syn",
    "inner_protocol",
    "new_flow",
    "ue_changed",  # a learned key carrying another inner UE (TEID reuse): the agent decides
    "gtpc",  # GTPv1-C (UDP 2123): the agent learns/forgets bearers from it, then passes it
)
# Counters the pipeline also keeps under the same name (merged into its ``counters``).
SHARED_COUNTERS = ("switched_non_ip", "switched_non_gtp")

U32 = struct.Struct("=I")
U64 = struct.Struct("=Q")
TUNNEL_VAL = struct.Struct("=QQQQ4s4x")  # packets, bytes, last_seen ns, offloaded, UE
SERVICE_VAL = struct.Struct("=4sI")  # application IP, slot
FLOW_KEY = struct.Struct("=BB2s2sH4s4s")  # proto, pad, app port, ue port, pad, app, ue
FLOW_VAL = struct.Struct("=4s4s4sIQ")  # service IP, eNB, SGW, slot, last_seen ns
DOWNLINK_VAL = struct.Struct("=14sBB2sH4sQ")  # eth, tos, ttl, sport, pad, TEID, offloaded
SERVICE_STATS = struct.Struct("=QQQQ")  # up packets, up bytes, down packets, down bytes

TUNNEL_KEY_SIZE = 12
BEARER_KEY_SIZE = 12
MAX_SERVICES = 4096


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


def project(pipeline: Pipeline, slots: Mapping[str, int]) -> Projection:
    """What the eBPF maps must hold for ``pipeline``'s current state (IPv4 entries only)."""
    out = Projection()
    for table in (pipeline.up, pipeline.down):
        for key, bearer in table.items():
            if len(key) == TUNNEL_KEY_SIZE:
                out.tunnels.add(key)
                out.tunnel_ues[key] = bearer.ue
    for service_ip, (name, app_ip) in pipeline.services.items():
        slot = slots.get(name)
        if len(service_ip) == 4 and slot is not None:
            out.services[service_ip] = SERVICE_VAL.pack(app_ip, slot)
    for (proto, app, app_port, ue, ue_port), flow in pipeline.flows.items():
        slot = slots.get(flow.service)
        if len(app) != 4 or slot is None:
            continue
        if pipeline.services.get(flow.service_ip) != (flow.service, flow.application_ip):
            continue
        enb, sgw, _ue = flow.bearer
        key = flow_key(proto, app, app_port, ue, ue_port)
        out.flows[key] = FLOW_VAL.pack(flow.service_ip, enb, sgw, slot, 0)
    for bearer in pipeline.bearers.values():
        if (
            len(bearer.ue) == 4
            and len(bearer.enb) == 4
            and bearer.dl_teid is not None
            and len(bearer.dl_eth) == 14
            and not bearer.queue
        ):
            value = DOWNLINK_VAL.pack(
                bearer.dl_eth,
                bearer.dl_tos,
                bearer.dl_ttl,
                bearer.dl_sport.to_bytes(2, "big"),
                0,
                bearer.dl_teid.to_bytes(4, "big"),
                0,
            )
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
