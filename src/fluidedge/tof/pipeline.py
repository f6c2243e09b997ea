"""The TOF's packet logic as a pure pipeline: state + frame in, frames out (no I/O, no clock).

A backend (userspace AF_PACKET/TUN, or a faster one) owns the ports and the clock and calls:

- :meth:`Pipeline.from_s1` for every Ethernet frame received on the eNB side or the SGW side;
- :meth:`Pipeline.from_apps` for every IP packet the apps network sends back (TUN);
- :meth:`Pipeline.tick` a few times per second (Pinger, queue time-outs, idle purge).

:meth:`Pipeline.tick` costs what is due, not the table sizes: it visits only the bearers with
an active Pinger or queued replies, and the once-a-second purge takes from expiry wheels
(:mod:`fluidedge.tof.timers`) only the bearers, flows and fragment pairs whose idle deadline
has come, re-checking each against its ``last_seen``.

Each returns a list of ``(port, frame)`` to transmit, where ``port`` is :data:`ENB`, :data:`SGW`
or :data:`APPS`. A pass-through frame is returned as the very object that came in, so its bytes
cannot change (§4.3.1 "regular switch"; the bump in the wire is invisible).

What happens to a frame (the GTP Filter of §4.3.2.1.1, then the UE-decapsulated path):

1. Not IPv4/IPv6 + UDP to port 2152, or an outer fragment: switched to the other side.
2. GTP-U that does not parse (bad version, GTP', truncated, broken extension chain, unknown
   extension with comprehension bits 11): switched unchanged and counted by reason — it is not
   ours to judge, the peers will. Unknown extensions an intermediate node forwards (bits 00,
   01, 10; TS 29.281 §5.2.1) are G-PDUs like any other: learned, passed byte for byte; bits
   10 are never offloaded (the endpoint must understand them and we do not).
3. Echo, Supported Extension Headers: switched. End Marker and Error Indication: switched, and
   the tunnel they name is forgotten (see :meth:`Pipeline._on_end_marker`).
4. G-PDU: looked up by ``(outer source, outer destination, TEID)``; an unknown key is learned
   (uplink: the SGW's TEID and the UE = inner source; downlink: the eNB's TEID and the UE =
   inner destination), both directions of one UE between one eNB and one SGW forming a
   :class:`Bearer`. Colliding TEIDs across peers are different keys. A key seen with another
   inner UE address than its bearer's names a new bearer (re-attach with TEID reuse): the old
   one is retired (an event with a reason), the new one learned (:meth:`Pipeline._retire`).
5. An uplink G-PDU whose inner destination is a service IP is decapsulated and NATed to the
   application (flow state kept per 5-tuple) and goes to :data:`APPS`; everything else is
   switched unchanged.
6. The app's reply is reverse-NATed (source = service IP) and encapsulated with the bearer's
   downlink TEID, outer source = SGW, outer destination = eNB, Ethernet and outer-IP details
   copied from the downlink frames we saw, and sent to :data:`ENB`. Without a downlink TEID
   yet, the reply is queued (bounded, timed out) and the Pinger (§4.3.2.2.4, Figure 16 steps
   5-12) sends ICMP echo requests from the UE through the uplink tunnel until the SGW's reply
   reveals the downlink TEID; those replies are swallowed, the queue is flushed and the Pinger
   stops.
"""

from __future__ import annotations

import ipaddress
import itertools
import re
import struct
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

from fluidedge.codec import gtpu
from fluidedge.codec.errors import CodecError
from fluidedge.codec.gtpc import GTPC_PORT
from fluidedge.codec.gtpu.constants import GTPU_PORT, IEType, MessageType
from fluidedge.codec.net import checksum as ck
from fluidedge.codec.net import inner as inner_codec
from fluidedge.codec.net import ipv4 as ipv4_codec
from fluidedge.codec.net import ipv6 as ipv6_codec
from fluidedge.codec.net import nat
from fluidedge.codec.net import udp as udp_codec
from fluidedge.codec.net.ipv4 import IPv4Header
from fluidedge.codec.stack import IpGpdu, Kind, classify, decode_frame
from fluidedge.tof.accounting import policy as acct_policy
from fluidedge.tof.accounting.ratelimit import RateLimiter
from fluidedge.tof.accounting.usage import Accountant, Usage
from fluidedge.tof.config import TofConfig
from fluidedge.tof.gtpc_learning import GtpcLearner
from fluidedge.tof.intercept.model import Copier
from fluidedge.tof.models import (
    DROP,
    DUPLICATE,
    DUPLICATE_ENCAPSULATED,
    FORWARD_ENCAPSULATED,
    OFFLOAD,
    PASS,
    Match,
    Service,
)
from fluidedge.tof.superfluid.table import OnDemandTable
from fluidedge.tof.timers import ExpiryWheel
from fluidedge.tof.tunnel_pages import keyset_bearers

_ICMP_PROTOS = (inner_codec.PROTO_ICMP, inner_codec.PROTO_ICMPV6)

ENB = 0
SGW = 1
APPS = 2
PORT_NAMES = ("enb", "sgw", "apps")

# Short names for the codec's GTP-U numbers (one source: codec/gtpu/constants.py), as ints.
GTP_ECHO_REQUEST = int(MessageType.ECHO_REQUEST)
GTP_ECHO_RESPONSE = int(MessageType.ECHO_RESPONSE)
GTP_ERROR_INDICATION = int(MessageType.ERROR_INDICATION)
GTP_SUPPORTED_EXT = int(MessageType.SUPPORTED_EXTENSION_HEADERS_NOTIFICATION)
GTP_END_MARKER = int(MessageType.END_MARKER)
GTP_GPDU = int(MessageType.G_PDU)
IE_RECOVERY = int(IEType.RECOVERY)
IE_TEID_DATA_I = int(IEType.TEID_DATA_I)
IE_PEER_ADDRESS = int(IEType.GTPU_PEER_ADDRESS)

PINGER_ID = 0xF1ED
PINGER_MAGIC = b"fluidedge-pinger"

Action = tuple[int, bytes]

_EXT_CLASS_ENDPOINT = 0x80  # TS 29.281 §5.2.1: comprehension bits 10, the endpoint's to read

_NUMBERS = re.compile(r" (0x[0-9a-fA-F]+|[0-9]+)\b")  # "IE 133" -> "IE": bounded label sets
_GPDU = int(Kind.GTP_GPDU)
_OTHER = int(Kind.GTP_OTHER)
_MALFORMED = int(Kind.MALFORMED)
_SWITCHED = {
    int(Kind.NON_IP): "switched_non_ip",
    int(Kind.NON_GTP): "switched_non_gtp",
    int(Kind.FRAGMENT): "switched_outer_fragment",
}
_GTP = struct.Struct("!BBHI")


@dataclass(slots=True)
class Bearer:
    """One UE's tunnel pair between one eNB and one SGW (what the agent learns, Figure 16)."""

    enb: bytes
    sgw: bytes
    ue: bytes
    ul_teid: int | None = None
    dl_teid: int | None = None
    # Templates copied from the frames we saw: Ethernet header (with VLAN tags), outer IP
    # TOS/TTL, UDP ports. Uplink ones build Pinger frames, downlink ones build app replies.
    ul_eth: bytes = b""
    ul_tos: int = 0
    ul_ttl: int = 64
    ul_sport: int = GTPU_PORT
    dl_eth: bytes = b""
    dl_tos: int = 0
    dl_ttl: int = 64
    dl_sport: int = GTPU_PORT
    learned_at: float = 0.0
    last_seen: float = 0.0
    ul_packets: int = 0
    ul_bytes: int = 0
    dl_packets: int = 0
    dl_bytes: int = 0
    offloaded_up: int = 0
    offloaded_down: int = 0
    pinger_since: float | None = None
    pinger_next: float = 0.0
    pinger_sent: int = 0
    pinger_seq: int = 0
    pinger_replies: int = 0
    # App replies waiting for the downlink TEID: (deadline, packet, its flow).
    queue: deque[tuple[float, bytes, Flow]] = field(default_factory=deque)
    learned_from: str = "user_plane"  # or "gtpc"
    seq: int = 0  # learning order (the pipeline's timers visit bearers in this order)
    usage: dict[str, Usage] = field(default_factory=dict)  # open usage records, per service
    # Its ``GET /tunnels`` page marker, made on the first page that looks at it
    # (:func:`fluidedge.tof.tunnel_pages.bearer_marker`); "" until then.
    marker: str = field(default="", repr=False, compare=False)

    @property
    def key(self) -> tuple[bytes, bytes, bytes]:
        return (self.enb, self.sgw, self.ue)

    def to_api(self) -> dict[str, object]:
        return {
            "enb": _ip_text(self.enb),
            "sgw": _ip_text(self.sgw),
            "ue": _ip_text(self.ue),
            "uplinkTEID": self.ul_teid,
            "downlinkTEID": self.dl_teid,
            "learnedAt": self.learned_at,
            "lastSeen": self.last_seen,
            "uplink": {"packets": self.ul_packets, "bytes": self.ul_bytes},
            "downlink": {"packets": self.dl_packets, "bytes": self.dl_bytes},
            "offloaded": {"up": self.offloaded_up, "down": self.offloaded_down},
            "pinger": {
                "active": self.pinger_since is not None,
                "sent": self.pinger_sent,
                "replies": self.pinger_replies,
            },
            "queued": len(self.queue),
            "learnedFrom": self.learned_from,
        }

    def summary(self) -> dict[str, object]:
        """The identity part of :meth:`to_api` (what an event names; addresses as raw bytes,
        turned into text only when the log is read)."""
        return {
            "enb": self.enb,
            "sgw": self.sgw,
            "ue": self.ue,
            "uplinkTEID": self.ul_teid,
            "downlinkTEID": self.dl_teid,
        }


@dataclass(slots=True)
class Flow:
    """NAT state of one offloaded flow, keyed by the app reply's 5-tuple."""

    service: str
    service_ip: bytes
    application_ip: bytes
    bearer: tuple[bytes, bytes, bytes]
    last_seen: float


@dataclass(slots=True)
class ServiceCounters:
    up_packets: int = 0
    up_bytes: int = 0
    down_packets: int = 0
    down_bytes: int = 0

    def to_api(self) -> dict[str, int]:
        return {
            "upPackets": self.up_packets,
            "upBytes": self.up_bytes,
            "downPackets": self.down_packets,
            "downBytes": self.down_bytes,
        }


def _ip_text(raw: bytes) -> str:
    return str(ipaddress.ip_address(raw))


def _packed(text: str) -> bytes:
    return ipaddress.ip_address(text).packed


class ServiceIndex(Protocol):
    """Where a service's flows and (app, UE) pairs are, kept by whoever tracks the pipeline's
    tables (the fast path's dirty set): with it a service change looks at that service's
    flows only, not at every flow (O(N) at 1,000,000 flows)."""

    def flows_of(self, service: str) -> Iterable[tuple[int, bytes, int, bytes, int]]: ...

    def pairs_of(self, service: str) -> Iterable[tuple[bytes, bytes]]: ...


class Pipeline:
    """The TOF data plane's state machine (see the module docstring)."""

    def __init__(self, config: TofConfig) -> None:
        self.config = config
        # Tunnel keys: outer source + outer destination + TEID (+ b"6" when the UE is IPv6, so
        # a dual-stack bearer's two families never look like a UE change; see :func:`tunnel_key`).
        self.up: dict[bytes, Bearer] = {}  # (enb, sgw, TEID) -> bearer
        self.down: dict[bytes, Bearer] = {}  # (sgw, enb, TEID) -> bearer
        # Outer destination -> how many tunnel keys (both tables) each outer source has toward
        # it: an Error Indication names only the destination and the TEID, so this turns its
        # lookup into one probe per peer pair instead of a walk over every tunnel.
        self._peer_srcs: dict[bytes, Counter[bytes]] = {}
        self.bearers: dict[tuple[bytes, bytes, bytes], Bearer] = {}
        self.flows: dict[tuple[int, bytes, int, bytes, int], Flow] = {}
        self.pairs: dict[tuple[bytes, bytes], Flow] = {}  # (app, ue) -> last flow, for fragments
        self.services: dict[bytes, tuple[str, bytes]] = {}  # serviceIP -> (name, applicationIP)
        # Classified services (``Service.match``), by service IP, in their match's order; a
        # service IP is in one table or the other (the catalog's rule).
        self.classified: dict[bytes, tuple[Rule, ...]] = {}
        # Set by a tracker of ``flows`` and ``pairs`` (fastpath.dirty); None: a service change
        # scans every flow.
        self.service_index: ServiceIndex | None = None
        self.service_counters: dict[str, ServiceCounters] = {}
        self.counters: Counter[str] = Counter()
        self.drops: Counter[str] = Counter()
        self.malformed: Counter[str] = Counter()
        self.events = EventLog(config.event_log)
        self.enb_filter = frozenset(_packed(a) for a in config.enb_addresses)
        self.sgw_filter = frozenset(_packed(a) for a in config.sgw_addresses)
        self.pinger4 = _packed(config.pinger_target)
        self.pinger6 = _packed(config.pinger_target6) if config.pinger_target6 else None
        self._ip_id = 0
        self._next_purge = 0.0
        # Timers (see the module docstring): bearers with a Pinger or a queue, by ``seq``;
        # bearers, flows and (app, UE) pairs filed by the earliest time they can be idle.
        self._seq = itertools.count(1)
        self._timed: dict[int, Bearer] = {}
        self._bearer_expiry: ExpiryWheel[Bearer] = ExpiryWheel()
        self._flow_expiry: ExpiryWheel[tuple[tuple[int, bytes, int, bytes, int], Flow]] = (
            ExpiryWheel()
        )
        # A pair's flow changes with every new flow of its UE to its app: the wheel holds each
        # pair key once (``_pairs_filed``) and re-checks whatever flow it has when due.
        self._pair_expiry: ExpiryWheel[tuple[bytes, bytes]] = ExpiryWheel()
        self._pairs_filed: set[tuple[bytes, bytes]] = set()
        self._clock = 0.0  # the latest tick's time (for events without a packet)
        self._deltas: dict[bytes, int] = {}
        # Largest TCP MSS whose segment still fits one S1 frame once encapsulated (outer IPv4
        # 20 + UDP 8 + GTP-U 16 with a PDU Session Container, inner IPv6 40 + TCP 20).
        self._mss_limit = config.s1_mtu - 104 if config.mss_clamp else 0
        self.gtpc = GtpcLearner(self)
        # On-demand services (docs/superfluid.md): their table entry has no application IP
        # (b""); packets go through this table, which queues them until an instance is ready.
        self.ondemand_waited: float | None = None  # of the latest ondemand_ready
        self.ondemand = OnDemandTable(
            config.ondemand_queue_per_ue, config.ondemand_queue_total, config.ondemand_queue_timeout
        )
        # Per-UE usage records (docs/accounting.md); None: accounting off, one test per packet.
        self.accounting: Accountant | None = (
            Accountant(config.accounting) if config.accounting.enabled else None
        )
        # Per-UE rate limits (docs/accounting.md); None: no service is limited.
        limiter = RateLimiter(config.ratelimit)
        self.ratelimit: RateLimiter | None = limiter if limiter.limits else None
        # Lawful-intercept mirrors by UE address (fluidedge.tof.intercept); empty: one test.
        self.mirrors: Mapping[bytes, Copier] = {}

    # ------------------------------------------------------------------ control

    def set_services(self, services: Mapping[str, Service]) -> set[str]:
        """Install a complete service set (atomic: one assignment) and drop stale NAT flows.

        Returns the names whose table entry changed (added, removed, moved, re-pointed): only
        their flows can have become stale, since every flow matched its service's entry when
        it was made and after every earlier change. With a :attr:`service_index` only those
        flows are looked at.
        """
        table = {
            _packed(s.service_ip): (
                s.name,
                b"" if s.ondemand is not None else _packed(s.application_ip),
            )
            for s in services.values()
            if s.match is None
        }
        rules: dict[bytes, list[Rule]] = {}
        for s in sorted(services.values(), key=_rule_order):
            if s.match is not None:
                rule = Rule(s.match, s.action, s.name, _packed(s.application_ip))
                rules.setdefault(_packed(s.service_ip), []).append(rule)
        classified = {ip: tuple(r) for ip, r in rules.items()}
        old = self.services
        changed = {entry[0] for ip, entry in old.items() if table.get(ip) != entry}
        changed |= {entry[0] for ip, entry in table.items() if old.get(ip) != entry}
        was = {(ip, r) for ip, rs in self.classified.items() for r in rs}
        will = {(ip, r) for ip, rs in classified.items() for r in rs}
        changed |= {r.name for _ip, r in was ^ will}
        self.services = table
        self.classified = classified
        self.service_counters = {
            name: self.service_counters.get(name, ServiceCounters()) for name in services
        }
        self.ondemand.configure(
            {s.name: s.ondemand.per_ue for s in services.values() if s.ondemand is not None}
        )
        if changed:
            self._drop_stale_flows(changed)
        return changed

    def _drop_stale_flows(self, services: set[str]) -> None:
        index = self.service_index
        if index is None:
            flow_keys: Iterable[tuple[int, bytes, int, bytes, int]] = list(self.flows)
            pair_keys: Iterable[tuple[bytes, bytes]] = list(self.pairs)
        else:
            flow_keys = [k for name in services for k in index.flows_of(name)]
            pair_keys = [k for name in services for k in index.pairs_of(name)]
        for key in flow_keys:
            flow = self.flows.get(key)
            if flow is not None and not self._flow_current(flow):
                del self.flows[key]
        for pair in pair_keys:
            flow = self.pairs.get(pair)
            if flow is not None and not self._flow_current(flow):
                del self.pairs[pair]

    def _flow_current(self, flow: Flow) -> bool:
        """Whether ``flow``'s service still maps its service IP to its application IP (an
        on-demand service's flows stay while the service is on-demand under the same name)."""
        entry = self.services.get(flow.service_ip)
        if entry is None:
            rules = self.classified.get(flow.service_ip) if self.classified else None
            return rules is not None and any(
                r.name == flow.service
                and r.application_ip == flow.application_ip
                and r.action == OFFLOAD
                for r in rules
            )
        if entry[0] != flow.service:
            return False
        return entry[1] == flow.application_ip or entry[1] == b""

    def purge_all(self, now: float | None = None) -> int:
        """Forget every learned bearer and flow (they are re-learned from traffic)."""
        now = self._clock if now is None else now
        n = len(self.bearers)
        if self.accounting is not None:
            for bearer in self.bearers.values():
                self.accounting.close_bearer(bearer, acct_policy.BEARER_END, now, "purged")
        if self.ratelimit is not None:
            self.ratelimit.reset()
        self.up.clear()
        self.down.clear()
        self._peer_srcs.clear()
        self.bearers.clear()
        self.flows.clear()
        self.pairs.clear()
        self.gtpc.clear()
        self._timed.clear()
        self._bearer_expiry.clear()
        self._flow_expiry.clear()
        self._pair_expiry.clear()
        self._pairs_filed.clear()
        self.counters["bearers_purged"] += n
        self.counters["bearers_retired_purged"] += n
        self.events.add(now, "purged", "api", {"bearers": n})
        return n

    # ------------------------------------------------------------------ S1 side

    def from_s1(self, frame: bytes, port: int, now: float) -> list[Action]:
        """Handle one Ethernet frame received on the eNB side (``ENB``) or SGW side (``SGW``)."""
        other = SGW if port == ENB else ENB
        c = classify(frame)
        if type(c) is IpGpdu:
            if port == ENB:
                return self._uplink(frame, c, now)
            return self._downlink(frame, c, now)
        kind = c.kind
        if kind == _GPDU:
            self.counters["switched_gpdu_not_ip"] += 1
            return [(other, frame)]
        if kind == _OTHER:
            mtype = c.message_type
            self.counters[f"gtpu_type_{mtype}"] += 1
            if mtype == GTP_END_MARKER and c.outer_src and c.outer_dst and c.teid is not None:
                self._on_end_marker(c.outer_src, c.outer_dst, c.teid, now)
            elif mtype == GTP_ERROR_INDICATION:
                self._on_error_indication(frame, now)
            return [(other, frame)]
        if kind == _MALFORMED:
            error = c.error
            reason = f"{_NUMBERS.sub('', error.header)}/{error.error}" if error else "unknown"
            self.malformed[reason] += 1
            return [(other, frame)]
        if kind == int(Kind.NON_GTP) and GTPC_PORT in (c.src_port, c.dst_port):
            self.gtpc.on_frame(frame, c, port, now)
        self.counters[_SWITCHED[kind]] += 1
        return [(other, frame)]

    def _tunnel_bearer(self, frame: bytes, c: IpGpdu, now: float, *, uplink: bool) -> Bearer | None:
        """The bearer a G-PDU's tunnel key names, checked against its inner UE address.

        A key whose bearer has another UE means the peers re-used the TEID for a new bearer
        (re-attach): the old bearer is retired and the new one learned from this frame.
        """
        ue = c.inner_src if uplink else c.inner_dst
        table = self.up if uplink else self.down
        bearer = table.get(tunnel_key(c.outer_src, c.outer_dst, c.teid, ue))
        if bearer is not None and bearer.ue != ue:
            self._retire(
                bearer,
                "uplink_teid_reused" if uplink else "downlink_teid_reused",
                now,
                by=ue,
            )
            bearer = None
        if bearer is None:
            bearer = self._learn(frame, c, now, uplink=uplink)
        return bearer

    @staticmethod
    def _credit(bearer: Bearer, c: IpGpdu, now: float, *, uplink: bool) -> None:
        """Count a user G-PDU on its bearer: the only thing that keeps a bearer alive."""
        bearer.last_seen = now
        size = c.inner_end - c.inner_offset
        if uplink:
            bearer.ul_packets += 1
            bearer.ul_bytes += size
        else:
            bearer.dl_packets += 1
            bearer.dl_bytes += size

    def _uplink(self, frame: bytes, c: IpGpdu, now: float) -> list[Action]:
        key = c.outer_src + c.outer_dst + c.teid.to_bytes(4, "big")
        ue = c.inner_src
        if len(ue) != 4:
            key += b"6"
        bearer = self.up.get(key)
        if bearer is None or bearer.ue != ue:
            bearer = self._tunnel_bearer(frame, c, now, uplink=True)
            if bearer is None:
                return [(SGW, frame)]
        bearer.last_seen = now
        bearer.ul_packets += 1
        bearer.ul_bytes += c.inner_end - c.inner_offset
        service = self.services.get(c.inner_dst) if self.services else None
        if service is None:
            if self.classified:
                rules = self.classified.get(c.inner_dst)
                if rules is not None:
                    return self._classified_up(frame, c, bearer, rules, now)
            return [(SGW, frame)]
        unknown = c.unknown_ext
        if unknown is not None and unknown & _EXT_CLASS_ENDPOINT:
            # TS 29.281 §5.2.1: an unknown extension with comprehension bits 10 must be
            # understood by the endpoint. We are not that endpoint: forward it, do not offload.
            self.counters["offload_refused_unknown_extension"] += 1
            return [(SGW, frame)]
        if not service[1]:  # on-demand: the instance's address, or queued for one
            app_ip = self.ondemand.admit(service[0], ue, bearer.key, frame, now)
            if not app_ip:
                return []
            service = (service[0], app_ip)
        return self._offload_up(frame, c, bearer, service, now)

    def _downlink(self, frame: bytes, c: IpGpdu, now: float) -> list[Action]:
        if c.icmp_id == PINGER_ID and self._is_pinger_reply(frame, c):
            return self._pinger_reply(frame, c, now)
        key = c.outer_src + c.outer_dst + c.teid.to_bytes(4, "big")
        ue = c.inner_dst
        if len(ue) != 4:
            key += b"6"
        bearer = self.down.get(key)
        out: list[Action] = []
        if bearer is None or bearer.ue != ue:
            bearer = self._tunnel_bearer(frame, c, now, uplink=False)
            if bearer is None:
                return [(ENB, frame)]
            out = self._flush_queue(bearer, now)
        bearer.last_seen = now
        bearer.dl_packets += 1
        bearer.dl_bytes += c.inner_end - c.inner_offset
        out.append((ENB, frame))
        return out

    def _pinger_reply(self, frame: bytes, c: IpGpdu, now: float) -> list[Action]:
        """An echo reply carrying the Pinger's identifier and magic.

        It completes (downlink TEID) and is swallowed only by the bearer whose Pinger sent the
        request it answers (same peers, its UE, one of its sequence numbers). It never counts as
        user traffic, so it cannot keep any bearer alive; anyone else's is passed on untouched.
        """
        enb, sgw, ue = c.outer_dst, c.outer_src, c.inner_dst
        bearer = self.bearers.get((enb, sgw, ue))
        seq = self._pinger_reply_seq(frame, c)
        if bearer is None or not bearer.pinger_sent or not _pinged(bearer, seq):
            self.counters["pinger_reply_not_ours_passed"] += 1
            return [(ENB, frame)]
        out: list[Action] = []
        key = tunnel_key(c.outer_src, c.outer_dst, c.teid, ue)
        if self.down.get(key) is not bearer:
            other = self.down.get(key)
            if other is not None:
                self._retire(other, "downlink_teid_reused", now, by=ue)
            last_seen = bearer.last_seen
            if self._learn(frame, c, now, uplink=False) is bearer:
                out = self._flush_queue(bearer, now)
            bearer.last_seen = last_seen  # learning from our own echo is not user traffic
        bearer.pinger_replies += 1
        self.counters["pinger_replies_swallowed"] += 1
        return out

    # ------------------------------------------------------------------ learning

    def _learn(self, frame: bytes, c: IpGpdu, now: float, *, uplink: bool) -> Bearer | None:
        """The control agent's part of Figure 16: learn a tunnel from its first G-PDU."""
        src, dst, teid = c.outer_src, c.outer_dst, c.teid
        ue = c.inner_src if uplink else c.inner_dst
        enb, sgw = (src, dst) if uplink else (dst, src)
        if (self.enb_filter and enb not in self.enb_filter) or (
            self.sgw_filter and sgw not in self.sgw_filter
        ):
            self.counters["not_learned_peer_not_provisioned"] += 1
            return None
        if c.vlan is None and len(src) == 4 and frame[12:14] == b"\x08\x00":
            ip_off = 14  # untagged IPv4: read TOS/TTL in place (classify checked the header)
            tos, ttl = frame[15], frame[22]
        else:
            decoded = decode_frame(frame)
            ip, ip_off_found = decoded.ip, decoded.ip_offset
            if ip is None or ip_off_found is None:
                return None
            ip_off = ip_off_found
            if isinstance(ip, IPv4Header):
                tos, ttl = ip.tos, ip.ttl
            else:
                tos, ttl = ip.traffic_class, ip.hop_limit
        bearer = self._bearer_for(enb, sgw, ue, now, "user_plane")
        if bearer is None:
            return None
        self._set_tunnel(
            bearer, teid, uplink=uplink, eth=frame[:ip_off], tos=tos, ttl=ttl, sport=c.src_port
        )
        return bearer

    def _bearer_for(
        self, enb: bytes, sgw: bytes, ue: bytes, now: float, source: str
    ) -> Bearer | None:
        """The bearer of ``ue`` between these peers, created (and logged) if new."""
        key = (enb, sgw, ue)
        bearer = self.bearers.get(key)
        if bearer is None:
            if len(self.bearers) >= self.config.max_tunnels:
                self.drops["tunnel_table_full"] += 1
                return None
            bearer = Bearer(
                enb,
                sgw,
                ue,
                learned_at=now,
                last_seen=now,
                learned_from=source,
                seq=next(self._seq),
            )
            self.bearers[key] = bearer
            self._bearer_expiry.add(bearer, now + self.config.idle_timeout)
            self.counters["bearers_learned"] += 1
            self.counters[f"bearers_learned_{source}"] += 1
            self.events.add(now, "learned", source, bearer.summary())
        return bearer

    def _set_tunnel(
        self,
        bearer: Bearer,
        teid: int,
        *,
        uplink: bool,
        eth: bytes | None,
        tos: int,
        ttl: int,
        sport: int,
    ) -> None:
        """Give ``bearer`` its uplink or downlink TEID (replacing an older one of its own)."""
        if self.accounting is not None and bearer.usage:
            old = bearer.ul_teid if uplink else bearer.dl_teid
            if old is not None and old != teid:  # a record names one pair of TEIDs
                self.accounting.close_bearer(bearer, acct_policy.TEID_REPLACED, self._clock)
        if uplink:
            src, dst = bearer.enb, bearer.sgw
            if bearer.ul_teid is not None and bearer.ul_teid != teid:
                self._tunnel_pop(self.up, src, dst, bearer.ul_teid, bearer.ue)
                self.counters["tunnels_replaced_uplink"] += 1
            bearer.ul_teid = teid
            if eth is not None:
                bearer.ul_eth, bearer.ul_tos, bearer.ul_ttl = eth, tos, ttl
            bearer.ul_sport = sport
            self._tunnel_put(self.up, src, dst, teid, bearer)
            self.counters["tunnels_learned_uplink"] += 1
            return
        src, dst = bearer.sgw, bearer.enb
        if bearer.dl_teid is not None and bearer.dl_teid != teid:
            self._tunnel_pop(self.down, src, dst, bearer.dl_teid, bearer.ue)
            self.counters["tunnels_replaced_downlink"] += 1
        bearer.dl_teid = teid
        if eth is not None:
            bearer.dl_eth, bearer.dl_tos, bearer.dl_ttl = eth, tos, ttl
        bearer.dl_sport = sport
        self._tunnel_put(self.down, src, dst, teid, bearer)
        self.counters["tunnels_learned_downlink"] += 1
        if bearer.pinger_since is not None:
            bearer.pinger_since = None  # Figure 16 step 11: stop the Pinger
            self.counters["pinger_stopped_learned"] += 1

    def install_bearer(
        self,
        enb: bytes,
        sgw: bytes,
        ue: bytes,
        ul_teid: int | None,
        dl_teid: int | None,
        *,
        now: float,
        source: str = "gtpc",
        ul_eth: bytes | None = None,
        dl_eth: bytes | None = None,
    ) -> Bearer | None:
        """Learn a bearer the control plane announced (both TEIDs at once, no traffic needed).

        A tunnel key that already names another UE's bearer retires that bearer first
        (``<source>_replaced``). Frame templates are taken when the caller has them (a GTP-C
        frame between the same two hosts); else the first G-PDU of each direction fills them.
        """
        for teid, uplink in ((ul_teid, True), (dl_teid, False)):
            if teid is None:
                continue
            table = self.up if uplink else self.down
            src, dst = (enb, sgw) if uplink else (sgw, enb)
            other = table.get(tunnel_key(src, dst, teid, ue))
            if other is not None and other.ue != ue:
                self._retire(other, f"{source}_replaced", now, by=ue)
        if self.enb_filter and enb not in self.enb_filter:
            self.counters["not_learned_peer_not_provisioned"] += 1
            return None
        if self.sgw_filter and sgw not in self.sgw_filter:
            self.counters["not_learned_peer_not_provisioned"] += 1
            return None
        bearer = self._bearer_for(enb, sgw, ue, now, source)
        if bearer is None:
            return None
        if ul_teid is not None:
            self._set_tunnel(
                bearer, ul_teid, uplink=True, eth=ul_eth or None, tos=0, ttl=64, sport=GTPU_PORT
            )
        if dl_teid is not None:
            self._set_tunnel(
                bearer, dl_teid, uplink=False, eth=dl_eth or None, tos=0, ttl=64, sport=GTPU_PORT
            )
        return bearer

    def retire_bearer(self, bearer: Bearer, reason: str, now: float) -> None:
        """Forget ``bearer`` entirely (both directions), logged with ``reason``."""
        self._retire(bearer, reason, now)

    def _retire(self, bearer: Bearer, reason: str, now: float, by: bytes | None = None) -> None:
        detail = bearer.summary()
        if by is not None:
            detail["replacedBy"] = by
        self._forget(bearer, uplink=True, downlink=True, reason=reason)
        self.bearers.pop(bearer.key, None)
        self._drop_queue(bearer)
        bearer.pinger_since = None
        self.counters[f"bearers_retired_{reason}"] += 1
        self.events.add(now, "retired", reason, detail)

    def _drop_queue(self, bearer: Bearer) -> None:
        if bearer.queue:
            self.drops["queue_bearer_gone"] += len(bearer.queue)
            bearer.queue.clear()

    def _forget(self, bearer: Bearer, *, uplink: bool, downlink: bool, reason: str) -> None:
        if (
            self.accounting is not None
            and bearer.usage
            and (uplink or bearer.ul_teid is None)
            and (downlink or bearer.dl_teid is None)
        ):  # the bearer ends: its records close with its TEIDs still set
            self.accounting.close_bearer(bearer, acct_policy.BEARER_END, self._clock, reason)
        if uplink and bearer.ul_teid is not None:
            self._tunnel_pop(self.up, bearer.enb, bearer.sgw, bearer.ul_teid, bearer.ue)
            bearer.ul_teid = None
        if downlink and bearer.dl_teid is not None:
            self._tunnel_pop(self.down, bearer.sgw, bearer.enb, bearer.dl_teid, bearer.ue)
            bearer.dl_teid = None
        self.counters[f"tunnels_forgotten_{reason}"] += 1
        if bearer.ul_teid is None and bearer.dl_teid is None:
            self.bearers.pop(bearer.key, None)
            self._drop_queue(bearer)

    def _forget_logged(
        self, bearer: Bearer, now: float, *, uplink: bool, downlink: bool, reason: str
    ) -> None:
        """:meth:`_forget` one direction; when that was the bearer's last, it is retired."""
        self._forget(bearer, uplink=uplink, downlink=downlink, reason=reason)
        if self.bearers.get(bearer.key) is not bearer:
            self.counters[f"bearers_retired_{reason}"] += 1
            self.events.add(now, "retired", reason, bearer.summary())

    def _on_end_marker(self, src: bytes, dst: bytes, teid: int, now: float) -> None:
        """End Marker (TS 29.281 §7.3.2): the tunnel it travels on carries no more G-PDUs.

        We forget that one direction; the other stays. A later G-PDU on a new tunnel is
        learned as usual, and offloaded replies wait (queue + Pinger) for the new downlink.
        """
        tkey = src + dst + teid.to_bytes(4, "big")
        for key in (tkey, tkey + b"6"):
            bearer = self.down.get(key)
            if bearer is not None:
                self._forget_logged(bearer, now, uplink=False, downlink=True, reason="end_marker")
            bearer = self.up.get(key)
            if bearer is not None:
                self._forget_logged(bearer, now, uplink=True, downlink=False, reason="end_marker")

    def _on_error_indication(self, frame: bytes, now: float) -> None:
        """Error Indication (TS 29.281 §7.3.1): its sender does not know TEID-I.

        The sender is the GTP-U Peer Address IE (the destination of the G-PDU that triggered
        it). Every tunnel toward that address with that TEID is dead on the peer: we forget it.
        """
        msg = decode_frame(frame).gtpu
        if not isinstance(msg, gtpu.ErrorIndication):
            self.malformed["gtpu_error_indication_undecodable"] += 1
            return
        peer = msg.peer_address.packed
        teid = msg.teid_data_i.to_bytes(4, "big")
        srcs = self._peer_srcs.get(peer)
        if not srcs:
            return
        for src in list(srcs):  # one probe per peer pair (and family), not a walk
            for tail in (b"", b"6"):
                key = src + peer + teid + tail
                for table, is_up in ((self.up, True), (self.down, False)):
                    bearer = table.get(key)
                    if bearer is not None:
                        self._forget_logged(
                            bearer, now, uplink=is_up, downlink=not is_up, reason="error_indication"
                        )

    def _tunnel_put(
        self, table: dict[bytes, Bearer], src: bytes, dst: bytes, teid: int, bearer: Bearer
    ) -> None:
        key = tunnel_key(src, dst, teid, bearer.ue)
        if key not in table:
            srcs = self._peer_srcs.get(dst)
            if srcs is None:
                srcs = self._peer_srcs[dst] = Counter()
            srcs[src] += 1
        table[key] = bearer

    def _tunnel_pop(
        self, table: dict[bytes, Bearer], src: bytes, dst: bytes, teid: int, ue: bytes
    ) -> None:
        if table.pop(tunnel_key(src, dst, teid, ue), None) is None:
            return
        srcs = self._peer_srcs[dst]
        srcs[src] -= 1
        if srcs[src] <= 0:
            del srcs[src]
            if not srcs:
                del self._peer_srcs[dst]

    # ------------------------------------------------------------------ offload

    def _classified_up(
        self, frame: bytes, c: IpGpdu, bearer: Bearer, rules: tuple[Rule, ...], now: float
    ) -> list[Action]:
        """An uplink G-PDU to a classified service IP: the first rule whose match takes the
        inner packet (protocol, destination port, source address and port) decides; none: on
        to the core."""
        if c.icmp_id is None:
            port, sport = c.inner_dport, c.inner_sport
        else:
            port = sport = None
        for rule in rules:
            if rule.match.matches(c.inner_proto, port, c.inner_src, sport):
                break
        else:
            self.counters["classified_unmatched"] += 1
            return [(SGW, frame)]
        action = rule.action
        if action == PASS:
            self.counters["classified_passed"] += 1
            return [(SGW, frame)]
        if action == DROP:
            sc = self.service_counters.get(rule.name)
            if sc is not None:
                sc.up_packets += 1
                sc.up_bytes += c.inner_end - c.inner_offset
            self.drops["classified_drop"] += 1
            return []
        if action == FORWARD_ENCAPSULATED:  # the tunnel's packet as is: no extension refused
            return self._encapsulated_up(frame, c, rule)
        if action == DUPLICATE_ENCAPSULATED:
            return [(SGW, frame), *self._encapsulated_up(frame, c, rule)]
        unknown = c.unknown_ext
        if unknown is not None and unknown & _EXT_CLASS_ENDPOINT:
            self.counters["offload_refused_unknown_extension"] += 1
            return [(SGW, frame)]
        if action == DUPLICATE:
            return [(SGW, frame), *self._duplicate_up(frame, c, rule)]
        return self._offload_up(frame, c, bearer, (rule.name, rule.application_ip), now)

    def _duplicate_up(self, frame: bytes, c: IpGpdu, rule: Rule) -> list[Action]:
        """A decapsulated copy of an uplink packet, NATed to the app; no flow is made, so the
        app's answers to it are dropped (``apps_no_flow``): the UE hears only the core."""
        packet = bytearray(frame[c.inner_offset : c.inner_end])
        try:
            if (packet[0] >> 4) == 4 and not c.inner_fragment:
                del packet[(packet[2] << 8) | packet[3] :]  # link padding, if any
            nat.rewrite(packet, destination=rule.application_ip)
        except CodecError as exc:
            self.drops[f"duplicate_inner_{type(exc).__name__}"] += 1
            return []
        sc = self.service_counters.get(rule.name)
        if sc is not None:
            sc.up_packets += 1
            sc.up_bytes += len(packet)
        self.counters["classified_duplicated"] += 1
        return [(APPS, bytes(packet))]

    def _encapsulated_up(self, frame: bytes, c: IpGpdu, rule: Rule) -> list[Action]:
        """The G-PDU's GTP-U header and T-PDU, unchanged (TEID, extensions, the UE's packet),
        in a UDP datagram from the UE's address to the app's port 2152: it takes the apps
        side's usual way (the UE pools are routed through the TOF, as for decapsulated
        traffic). No flow is made: whatever the app sends back to it is dropped."""
        gtp = frame[c.udp_offset + 8 : c.inner_end]
        source, app = c.inner_src, rule.application_ip
        try:  # an app of the other family is refused by the UDP encoder's pseudo-header
            datagram = udp_codec.encode(source, app, GTPU_PORT, GTPU_PORT, gtp)
            if len(app) == 4:
                packet = ipv4_codec.encode(source, app, udp_codec.PROTO_UDP, datagram)
            else:
                packet = ipv6_codec.encode(source, app, udp_codec.PROTO_UDP, datagram)
        except CodecError as exc:
            self.drops[f"encapsulated_{type(exc).__name__}"] += 1
            return []
        sc = self.service_counters.get(rule.name)
        if sc is not None:
            sc.up_packets += 1
            sc.up_bytes += len(packet)
        self.counters["classified_encapsulated"] += 1
        return [(APPS, packet)]

    def _offload_up(
        self, frame: bytes, c: IpGpdu, bearer: Bearer, service: tuple[str, bytes], now: float
    ) -> list[Action]:
        """Decapsulate, DNAT serviceIP -> applicationIP, remember the flow, send to the apps."""
        name, app_ip = service
        service_ip, ue = c.inner_dst, c.inner_src
        limiter = self.ratelimit
        if limiter is not None:
            at = c.inner_offset  # the inner IPv4 length (no link padding), as accounted
            size = (frame[at + 2] << 8) | frame[at + 3] if len(ue) == 4 else c.inner_end - at
            if not limiter.allow(ue, name, True, min(size, c.inner_end - at), now):
                self.drops["rate_limited_uplink"] += 1
                return []
        packet = bytearray(frame[c.inner_offset : c.inner_end])
        try:
            if len(ue) == 4 and not c.inner_fragment and (packet[0] >> 4) == 4:
                del packet[(packet[2] << 8) | packet[3] :]  # link padding, if any
                self._nat4(packet, 16, service_ip, app_ip, c.inner_proto or 0)
            else:
                nat.rewrite(packet, destination=app_ip)
            if c.icmp_id is None and c.inner_proto in _ICMP_PROTOS:
                # An ICMP error from the UE quotes the packet it got "from" the service IP.
                nat.rewrite_icmp_error(packet, quoted_source=(service_ip, app_ip))
            if self._mss_limit and c.inner_proto == 6:
                self._clamp_mss(packet)
        except CodecError as exc:
            self.drops[f"offload_inner_{type(exc).__name__}"] += 1
            return []
        if c.icmp_id is not None:
            sport = dport = c.icmp_id
        else:
            sport = c.inner_sport or 0
            dport = c.inner_dport or 0
        rkey = (c.inner_proto or 0, app_ip, dport, ue, sport)
        flow = self.flows.get(rkey)
        if flow is None or flow.service_ip != service_ip or flow.bearer != bearer.key:
            if len(self.flows) >= self.config.max_flows:
                self.drops["flow_table_full"] += 1
                return []
            flow = Flow(name, service_ip, app_ip, bearer.key, now)
            if not c.inner_fragment or c.inner_sport is not None:
                self.flows[rkey] = flow
                self._flow_expiry.add((rkey, flow), now + self.config.flow_timeout)
            self.counters["flows_created"] += 1
        pair = (app_ip, ue)
        if self.pairs.get(pair) is not flow:
            self.pairs[pair] = flow
            if pair not in self._pairs_filed:
                self._pairs_filed.add(pair)
                self._pair_expiry.add(pair, now + self.config.flow_timeout)
        flow.last_seen = now
        size = len(packet)
        bearer.offloaded_up += 1
        sc = self.service_counters.get(name)
        if sc is not None:
            sc.up_packets += 1
            sc.up_bytes += size
        accounting = self.accounting
        if accounting is not None:
            usage = bearer.usage.get(name)
            if usage is None:
                usage = accounting.open(bearer, name, service_ip, now)
            usage.ul_packets += 1
            usage.ul_bytes += size
            usage.last = now
        data = bytes(packet)
        if self.mirrors:
            mirror = self.mirrors.get(ue)
            if mirror is not None and mirror.target.matches(ue, bearer.enb, bearer.sgw):
                mirror.copy(data)  # as the app sees it (after the NAT)
        if bearer.dl_teid is None and bearer.pinger_since is None:
            self._start_pinger(bearer, now)
        out: list[Action] = [(APPS, data)]
        if bearer.pinger_since is not None and now >= bearer.pinger_next:
            out.extend(self._ping(bearer, now))
        return out

    def from_apps(self, packet: bytes, now: float) -> list[Action]:
        """Handle one IP packet from the apps network: reverse NAT and encapsulate toward the UE."""
        n = len(packet)
        fast = False
        proto = sport = dport = 0
        if n >= 20 and packet[0] >> 4 == 4:
            # Fast path: an unfragmented IPv4 TCP/UDP/ICMP-echo packet, read in place.
            ihl = (packet[0] & 15) * 4
            total = (packet[2] << 8) | packet[3]
            proto = packet[9]
            if 20 <= ihl <= total <= n and not ((packet[6] & 0x3F) or packet[7]):
                if (proto == 6 and total >= ihl + 20) or (proto == 17 and total >= ihl + 8):
                    sport = (packet[ihl] << 8) | packet[ihl + 1]
                    dport = (packet[ihl + 2] << 8) | packet[ihl + 3]
                    fast = True
                elif proto == 1 and total >= ihl + 8 and packet[ihl] in (0, 8):
                    sport = dport = (packet[ihl + 4] << 8) | packet[ihl + 5]
                    fast = True
        if fast:
            src, dst = packet[12:16], packet[16:20]
            buf = bytearray(packet[:total])
        else:
            buf = bytearray(packet)
            try:
                inner = inner_codec.decode(buf)
            except CodecError as exc:
                self.drops[f"apps_{type(exc).__name__}"] += 1
                return []
            if inner.end < len(buf):
                del buf[inner.end :]
            proto, src, dst = inner.protocol, inner.source, inner.destination
            if inner.icmp_id is not None:
                sport = dport = inner.icmp_id
            else:
                sport = inner.source_port or 0
                dport = inner.destination_port or 0
        flow = self.flows.get((proto, src, sport, dst, dport))
        if flow is None:
            flow = self.pairs.get((src, dst))
            if flow is None:
                self.drops["apps_no_flow"] += 1
                return []
        if self.services.get(flow.service_ip) != (
            flow.service,
            flow.application_ip,
        ) and not self._flow_current(flow):
            self.drops["apps_stale_flow"] += 1
            return []
        ondemand = self.ondemand
        if ondemand.policies and flow.service in ondemand.policies:
            ondemand.seen(flow.service, flow.bearer[2], flow.application_ip, now)  # replies count
        limiter = self.ratelimit
        if limiter is not None and not limiter.allow(
            flow.bearer[2], flow.service, False, len(buf), now
        ):
            self.drops["rate_limited_downlink"] += 1
            return []
        try:
            if fast:
                self._nat4(buf, 12, src, flow.service_ip, proto)
            else:
                nat.rewrite(buf, source=flow.service_ip)
                if proto in _ICMP_PROTOS:
                    # An ICMP error from the app quotes the UE's packet to the application IP.
                    quoted = (flow.application_ip, flow.service_ip)
                    nat.rewrite_icmp_error(buf, quoted_destination=quoted)
            if self._mss_limit and proto == 6:
                self._clamp_mss(buf)
        except CodecError as exc:
            self.drops[f"apps_{type(exc).__name__}"] += 1
            return []
        flow.last_seen = now
        sc = self.service_counters.get(flow.service)
        if sc is not None:
            sc.down_packets += 1
            sc.down_bytes += len(buf)
        bearer = self.bearers.get(flow.bearer)
        if bearer is None:
            self.drops["apps_bearer_gone"] += 1
            return []
        if self.mirrors:
            mirror = self.mirrors.get(bearer.ue)
            if mirror is not None and mirror.target.matches(bearer.ue, bearer.enb, bearer.sgw):
                mirror.copy(bytes(packet[: len(buf)]))  # as the app sent it (before the NAT)
        if bearer.dl_teid is None or not bearer.dl_eth:
            return self._enqueue(bearer, bytes(buf), flow, now)
        bearer.offloaded_down += 1
        accounting = self.accounting
        if accounting is not None:  # _account_down, inlined on the hot path
            usage = bearer.usage.get(flow.service)
            if usage is None:
                usage = accounting.open(bearer, flow.service, flow.service_ip, now)
            usage.dl_packets += 1
            usage.dl_bytes += len(buf)
            usage.last = now
        return self._encap_down(bearer, buf)

    def _nat4(self, packet: bytearray, at: int, old: bytes, new: bytes, proto: int) -> None:
        """Rewrite the IPv4 address at ``at`` from ``old`` to ``new`` in an unfragmented packet.

        The hot-path twin of :func:`fluidedge.codec.net.nat.rewrite` (which the unit tests hold
        it to): the RFC 1624 delta of an address pair is computed once and cached, so a packet
        costs three 16-bit patches (IP header, TCP/UDP pseudo-header; ICMP has none).
        """
        key = old + new
        delta = self._deltas.get(key)
        if delta is None:
            delta = ck.delta(old, new)
            if len(self._deltas) > 4096:
                self._deltas.clear()
            self._deltas[key] = delta
        packet[at : at + 4] = new
        packet[10:12] = _patched(packet[10], packet[11], delta).to_bytes(2, "big")
        l4 = (packet[0] & 15) * 4
        if proto == 6:
            at = l4 + 16
        elif proto == 17:
            at = l4 + 6
            if not (packet[at] or packet[at + 1]):
                return  # IPv4 UDP without checksum stays without
        else:
            return
        value = _patched(packet[at], packet[at + 1], delta)
        if proto == 17 and value == 0:
            value = 0xFFFF
        packet[at : at + 2] = value.to_bytes(2, "big")

    def _enqueue(self, bearer: Bearer, packet: bytes, flow: Flow, now: float) -> list[Action]:
        if len(bearer.queue) >= self.config.queue_limit:
            self.drops["queue_overflow"] += 1
            return []
        bearer.queue.append((now + self.config.queue_timeout, packet, flow))
        self._timed[bearer.seq] = bearer
        self.counters["queued_waiting_downlink_teid"] += 1
        out: list[Action] = []
        if bearer.pinger_since is None:
            self._start_pinger(bearer, now)
        if now >= bearer.pinger_next:
            out.extend(self._ping(bearer, now))
        return out

    def _flush_queue(self, bearer: Bearer, now: float) -> list[Action]:
        out: list[Action] = []
        while bearer.queue:
            deadline, packet, flow = bearer.queue.popleft()
            if deadline < now:
                self.drops["queue_timeout"] += 1
                continue
            bearer.offloaded_down += 1
            if self.accounting is not None:
                _account_down(self.accounting, bearer, flow, len(packet), now)
            out.extend(self._encap_down(bearer, packet))
            self.counters["queue_flushed"] += 1
        return out

    def _next_id(self) -> int:
        self._ip_id = (self._ip_id + 1) & 0xFFFF
        return self._ip_id

    def _clamp_mss(self, packet: bytearray) -> None:
        """Lower the MSS option of a TCP SYN so that offloaded segments fit the S1 MTU.

        WHY: the UE and the app negotiate the MSS from their own 1500-byte MTUs, but every
        segment crosses S1 inside 36-44 bytes of GTP-U encapsulation; without clamping, the
        eNB and we would have to fragment the outer packets (routers do the same clamping).
        """
        version = packet[0] >> 4
        l4 = (packet[0] & 15) * 4 if version == 4 else 40
        if version == 6 and packet[6] != 6:
            return
        if len(packet) < l4 + 20 or not packet[l4 + 13] & 0x02:  # not a SYN
            return
        end = min(l4 + (packet[l4 + 12] >> 4) * 4, len(packet))
        pos = l4 + 20
        while pos < end:
            kind = packet[pos]
            if kind == 0:
                return
            if kind == 1:
                pos += 1
                continue
            if pos + 1 >= end or packet[pos + 1] < 2:
                return
            if kind == 2 and packet[pos + 1] == 4 and pos + 4 <= end:
                mss = (packet[pos + 2] << 8) | packet[pos + 3]
                if mss > self._mss_limit:
                    start = l4 + ((pos + 2 - l4) & ~1)
                    stop = start + 4
                    old = bytes(packet[start:stop])
                    packet[pos + 2 : pos + 4] = self._mss_limit.to_bytes(2, "big")
                    csum = (packet[l4 + 16] << 8) | packet[l4 + 17]
                    csum = ck.update(csum, old, packet[start:stop])
                    packet[l4 + 16 : l4 + 18] = csum.to_bytes(2, "big")
                    self.counters["tcp_mss_clamped"] += 1
                return
            pos += packet[pos + 1]

    def _encap_down(self, bearer: Bearer, packet: bytes | bytearray) -> list[Action]:
        """A G-PDU SGW -> eNB with the bearer's downlink TEID, like the SGW would send it.

        An outer packet above ``s1_mtu`` is fragmented (IPv4), as the SGW's own stack would.
        """
        teid = bearer.dl_teid or 0
        gtp = _GTP.pack(0x30, GTP_GPDU, len(packet), teid)
        ident = self._next_id()
        frame = _outer(
            bearer.dl_eth,
            bearer.sgw,
            bearer.enb,
            bearer.dl_sport,
            gtp + bytes(packet),
            tos=bearer.dl_tos,
            ttl=bearer.dl_ttl,
            ident=ident,
        )
        eth_len = len(bearer.dl_eth)
        if len(frame) - eth_len <= self.config.s1_mtu:
            return [(ENB, frame)]
        if len(bearer.sgw) != 4:
            self.drops["downlink_too_big_ipv6"] += 1
            return []
        self.counters["downlink_fragmented"] += 1
        body = frame[eth_len + 20 :]
        chunk = (self.config.s1_mtu - 20) & ~7
        out: list[Action] = []
        for offset in range(0, len(body), chunk):
            piece = body[offset : offset + chunk]
            more = offset + chunk < len(body)
            header = ipv4_codec.encode_header(
                bearer.sgw,
                bearer.enb,
                17,
                len(piece),
                ttl=bearer.dl_ttl,
                tos=bearer.dl_tos,
                identification=ident,
                more_fragments=more,
                fragment_offset=offset,
            )
            out.append((ENB, bearer.dl_eth + header + piece))
        return out

    # ------------------------------------------------------------------ Pinger

    def _start_pinger(self, bearer: Bearer, now: float) -> None:
        if bearer.ul_teid is None or not bearer.ul_eth:
            return  # no uplink tunnel to ping through (yet)
        bearer.pinger_since = now
        bearer.pinger_next = now
        self._timed[bearer.seq] = bearer
        self.counters["pinger_started"] += 1

    def _ping(self, bearer: Bearer, now: float) -> list[Action]:
        """Figure 16 step 6: an ICMP echo request from the UE, through its uplink tunnel."""
        if bearer.ul_teid is None:
            return []
        bearer.pinger_seq = (bearer.pinger_seq + 1) & 0xFFFF
        bearer.pinger_next = now + self.config.pinger_interval
        body = PINGER_MAGIC
        if len(bearer.ue) == 4:
            icmp = bytearray(struct.pack("!BBHHH", 8, 0, 0, PINGER_ID, bearer.pinger_seq) + body)
            struct.pack_into("!H", icmp, 2, ck.checksum(icmp))
            inner = ipv4_codec.encode(bearer.ue, self.pinger4, inner_codec.PROTO_ICMP, icmp, ttl=64)
        else:
            if self.pinger6 is None:
                self.drops["pinger_no_ipv6_target"] += 1
                return []
            icmp = bytearray(struct.pack("!BBHHH", 128, 0, 0, PINGER_ID, bearer.pinger_seq) + body)
            csum = ck.transport_checksum(bearer.ue, self.pinger6, inner_codec.PROTO_ICMPV6, icmp)
            struct.pack_into("!H", icmp, 2, csum)
            inner = ipv6_codec.encode(bearer.ue, self.pinger6, inner_codec.PROTO_ICMPV6, icmp)
        gtp = _GTP.pack(0x30, GTP_GPDU, len(inner), bearer.ul_teid)
        bearer.pinger_sent += 1
        self.counters["pinger_requests_sent"] += 1
        return [
            (
                SGW,
                _outer(
                    bearer.ul_eth,
                    bearer.enb,
                    bearer.sgw,
                    bearer.ul_sport,
                    gtp + inner,
                    tos=bearer.ul_tos,
                    ttl=bearer.ul_ttl,
                    ident=self._next_id(),
                ),
            )
        ]

    @staticmethod
    def _pinger_reply_seq(frame: bytes, c: IpGpdu) -> int:
        """The sequence number of an echo reply :meth:`_is_pinger_reply` accepted."""
        p = c.inner_offset
        l4 = p + ((frame[p] & 15) * 4 if c.inner_proto == inner_codec.PROTO_ICMP else 40)
        return (frame[l4 + 6] << 8) | frame[l4 + 7]

    def _is_pinger_reply(self, frame: bytes, c: IpGpdu) -> bool:
        """An echo reply to one of our requests: right type, our identifier and our magic."""
        p = c.inner_offset
        if c.inner_proto == inner_codec.PROTO_ICMP and c.icmp_type == 0:
            l4 = p + (frame[p] & 15) * 4
        elif c.inner_proto == inner_codec.PROTO_ICMPV6 and c.icmp_type == 129:
            l4 = p + 40
        else:
            return False
        magic = frame[l4 + 8 : l4 + 8 + len(PINGER_MAGIC)]
        return l4 + 8 + len(PINGER_MAGIC) <= c.inner_end and magic == PINGER_MAGIC

    # ------------------------------------------------------------------ timers

    def tick(self, now: float) -> list[Action]:
        """Pinger retransmissions, queue time-outs and, once a second, the idle purge."""
        out: list[Action] = []
        self._clock = now
        give_up = self.config.pinger_give_up
        bearers = self.bearers
        timed = self._timed
        for ident in sorted(timed):  # learning order, as a walk of the bearers would be
            bearer = timed[ident]
            if bearers.get(bearer.key) is not bearer:
                del timed[ident]  # retired or purged: not ticked any more
                continue
            if bearer.pinger_since is not None:
                if bearer.dl_teid is not None:
                    bearer.pinger_since = None
                elif now - bearer.pinger_since > give_up:
                    bearer.pinger_since = None
                    self.counters["pinger_gave_up"] += 1
                elif now >= bearer.pinger_next:
                    out.extend(self._ping(bearer, now))
            queue = bearer.queue
            while queue and queue[0][0] < now:
                queue.popleft()
                self.drops["queue_timeout"] += 1
            if bearer.pinger_since is None and not queue:
                del timed[ident]
        if self.ondemand.queued:
            self.ondemand.expire(now)
        accounting = self.accounting
        if accounting is not None and now >= accounting.next_check:
            accounting.check(now)
        if now >= self._next_purge:
            self._next_purge = now + 1.0
            self._purge(now)
        return out

    # ------------------------------------------------------------------ on-demand services

    def ondemand_ready(self, service: str, ue: bytes, app_ip: bytes, now: float) -> list[Action]:
        """The instance of (``service``, ``ue``) is ready at ``app_ip``: its queued packets,
        offloaded to it in arrival order (docs/superfluid.md)."""
        released = self.ondemand.ready(service, ue, app_ip, now)
        self.ondemand_waited = released.waited
        out: list[Action] = []
        for frame, bearer_key in released.items:
            bearer = self.bearers.get(bearer_key)  # type: ignore[call-overload]
            if bearer is None:
                self.ondemand.drops["bearer_gone"] += 1
                continue
            c = classify(frame)
            entry = self.services.get(c.inner_dst) if isinstance(c, IpGpdu) else None
            if not isinstance(c, IpGpdu) or entry is None or entry[0] != service:
                self.ondemand.drops["service_gone"] += 1
                continue
            out.extend(self._offload_up(frame, c, bearer, (service, app_ip), now))
        return out

    def ondemand_forget(self, service: str, ue: bytes, *, force: bool = False) -> bool:
        """Remove a paused binding and the NAT flows toward its instance (about to go)."""
        app_ip = self.ondemand.forget(service, ue, force=force)
        if app_ip is None:
            return False
        index = self.service_index  # with it: the service's flows only, not every flow
        flow_keys = list(self.flows) if index is None else list(index.flows_of(service))
        pair_keys = list(self.pairs) if index is None else list(index.pairs_of(service))
        for key in flow_keys:
            flow = self.flows.get(key)
            if flow is not None and flow.service == service and flow.application_ip == app_ip:
                del self.flows[key]
        for pair in pair_keys:
            flow = self.pairs.get(pair)
            if flow is not None and flow.service == service and flow.application_ip == app_ip:
                del self.pairs[pair]
        return True

    def _purge(self, now: float) -> None:
        """§4.3.1 "auto-purge stale SGW/eNodeB tunnels after some configured idle time".

        Idle means no user G-PDU on the S1 side: the Pinger, its replies and the apps' packets
        do not count, so no state can keep itself alive (an active Pinger does not either).
        """
        timeout = self.config.idle_timeout
        idle = now - timeout
        bearers = self.bearers
        due = self._bearer_expiry.due(now)
        due.sort(key=_learning_order)  # retired (and logged) in the order a walk would
        for bearer in due:
            if bearers.get(bearer.key) is not bearer:
                continue  # gone already (retired, End Marker...)
            if bearer.last_seen < idle:
                self._retire(bearer, "idle", now)
                self.counters["bearers_purged"] += 1
            else:
                self._bearer_expiry.add(bearer, bearer.last_seen + timeout)
        timeout = self.config.flow_timeout
        stale = now - timeout
        flows = self.flows
        for key, flow in self._flow_expiry.due(now):
            if flows.get(key) is not flow:
                continue  # replaced or removed (service change, on-demand instance gone)
            if flow.last_seen < stale:
                del flows[key]
                self.counters["flows_expired"] += 1
            else:
                self._flow_expiry.add((key, flow), flow.last_seen + timeout)
        pairs, filed = self.pairs, self._pairs_filed
        for pair in self._pair_expiry.due(now):
            current = pairs.get(pair)
            if current is not None and current.last_seen < stale:
                del pairs[pair]
                current = None
            if current is None:
                filed.discard(pair)
            else:
                self._pair_expiry.add(pair, current.last_seen + timeout)

    def bearers_expiring(self, before: float) -> list[Bearer]:
        """The bearers the idle purge would retire at ``before`` as things stand (their
        ``last_seen`` + ``idle_timeout`` < ``before``), found in the expiry wheel: at the cost
        of the bearers near their deadline, not of the table (the fast path folds the kernel's
        newer ``last_seen`` into just these before a purge)."""
        limit = before - self.config.idle_timeout
        bearers = self.bearers
        return [
            b
            for b in self._bearer_expiry.upto(before)
            if b.last_seen < limit and bearers.get(b.key) is b
        ]

    def flows_expiring(self, before: float) -> list[tuple[int, bytes, int, bytes, int]]:
        """The keys of the flows the expiry would remove at ``before`` as things stand (see
        :meth:`bearers_expiring`)."""
        limit = before - self.config.flow_timeout
        flows = self.flows
        return [
            key
            for key, flow in self._flow_expiry.upto(before)
            if flow.last_seen < limit and flows.get(key) is flow
        ]

    # ------------------------------------------------------------------ read-outs

    def tunnels(self) -> list[dict[str, object]]:
        return [b.to_api() for b in self.bearers.values()]

    def tunnel_page(
        self, keep: Callable[[Bearer], bool] | None, offset: int, limit: int
    ) -> tuple[int, list[dict[str, object]]]:
        """``(matches, rows)``: the bearers ``keep`` accepts (all when None), in learning order,
        and the API view of only the ``limit`` of them from ``offset`` (a page of a large table
        without building 100,000 dicts). The null backend's; the data-plane backends choose
        their page outside their lock (``DataPlaneBase.tunnel_page``)."""
        if keep is None:
            page = list(itertools.islice(self.bearers.values(), offset, offset + limit))
            return len(self.bearers), [b.to_api() for b in page]
        matches = [b for b in self.bearers.values() if keep(b)]
        return len(matches), [b.to_api() for b in matches[offset : offset + limit]]

    def tunnels_after(
        self, after: str | None, limit: int | None
    ) -> tuple[list[dict[str, object]], str | None]:
        """``(rows, next marker)``: a keyset page of ``GET /tunnels`` (the API view of only the
        page's bearers; see :mod:`fluidedge.tof.tunnel_pages`)."""
        bearers, marker = self.bearers_after(after, limit)
        return [b.to_api() for b in bearers], marker

    def bearers_after(
        self, after: str | None, limit: int | None
    ) -> tuple[list[Bearer], str | None]:
        """The bearers of :meth:`tunnels_after`, not yet rows."""
        return keyset_bearers(self.bearers.values(), after, limit)

    def bearer_events(self) -> list[dict[str, object]]:
        """The bounded event log, oldest first (``GET /tunnels/events``)."""
        return self.events.rows()

    def stats(self) -> dict[str, object]:
        return {
            "counters": dict(self.counters),
            "drops": dict(self.drops),
            "malformed": dict(self.malformed),
            "services": {name: c.to_api() for name, c in self.service_counters.items()},
            "bearers": len(self.bearers),
            "bearerEvents": self.events.by_reason(),
            "flows": len(self.flows),
            "queued": sum(
                len(b.queue) for b in self._timed.values() if self.bearers.get(b.key) is b
            ),
            "onDemand": self.ondemand.stats(),
            "rateLimited": {} if self.ratelimit is None else self.ratelimit.totals(),
        }


class Rule(NamedTuple):
    """One classified service in the pipeline's table (see :attr:`Pipeline.classified`)."""

    match: Match
    action: str
    name: str
    application_ip: bytes


def _rule_order(service: Service) -> tuple[int, str]:
    return (service.match.priority if service.match is not None else 0, service.name)


def tunnel_key(src: bytes, dst: bytes, teid: int, ue: bytes) -> bytes:
    """The lookup key of one tunnel direction: outer source + destination + TEID.

    IPv6 UEs get a ``b"6"`` suffix: a dual-stack (IPv4v6) bearer carries both families on one
    TEID, and each family's address is its own bearer, so a frame of the other family must not
    look like a UE change. 12-octet keys (IPv4 peers, IPv4 UE) are what the fast path mirrors.
    """
    key = src + dst + teid.to_bytes(4, "big")
    return key if len(ue) == 4 else key + b"6"


def _learning_order(bearer: Bearer) -> int:
    return bearer.seq


def _account_down(
    accounting: Accountant, bearer: Bearer, flow: Flow, size: int, now: float
) -> None:
    """Count an offloaded reply sent toward the UE on its open usage record."""
    usage = bearer.usage.get(flow.service)
    if usage is None:
        usage = accounting.open(bearer, flow.service, flow.service_ip, now)
    usage.dl_packets += 1
    usage.dl_bytes += size
    usage.last = now


def _pinged(bearer: Bearer, seq: int) -> bool:
    """Whether ``seq`` is one of the sequence numbers ``bearer``'s Pinger has sent."""
    return ((bearer.pinger_seq - seq) & 0xFFFF) < min(bearer.pinger_sent, 0x8000)


class EventLog:
    """Bearer events (learned, retired with a reason), bounded: the oldest are dropped.

    Times are the pipeline's clock; counts by event and reason are kept for every event ever
    logged, so ``/stats`` stays exact after the log wraps.
    """

    def __init__(self, size: int) -> None:
        self._rows: deque[dict[str, object]] = deque(maxlen=size)
        self._next_id = 1
        self.counts: Counter[tuple[str, str]] = Counter()
        self.dropped = 0

    def add(self, now: float, event: str, reason: str, detail: Mapping[str, object]) -> None:
        if self._rows.maxlen and len(self._rows) == self._rows.maxlen:
            self.dropped += 1
        self._rows.append(
            {"id": self._next_id, "at": now, "event": event, "reason": reason, **detail}
        )
        self._next_id += 1
        self.counts[(event, reason)] += 1

    def rows(self) -> list[dict[str, object]]:
        """The events, oldest first, addresses as text."""
        return [
            {k: _ip_text(v) if isinstance(v, bytes) else v for k, v in row.items()}
            for row in self._rows
        ]

    def by_reason(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for (event, reason), n in sorted(self.counts.items()):
            out.setdefault(event, {})[reason] = n
        return out


def _patched(hi: int, lo: int, delta: int) -> int:
    """RFC 1624 eq. 3: the checksum ``hi:lo`` after data changed by one's-complement ``delta``."""
    total = (~((hi << 8) | lo) & 0xFFFF) + delta
    total = (total & 0xFFFF) + (total >> 16)
    total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _outer(
    eth: bytes,
    src: bytes,
    dst: bytes,
    sport: int,
    udp_payload: bytes,
    *,
    tos: int,
    ttl: int,
    ident: int,
) -> bytes:
    """Ethernet + outer IP + UDP (to 2152) around a GTP-U message."""
    ulen = 8 + len(udp_payload)
    if len(src) == 4:
        udp = struct.pack("!HHHH", sport, GTPU_PORT, ulen, 0)
        ip = ipv4_codec.encode_header(
            src, dst, 17, ulen, ttl=ttl, tos=tos, identification=ident, dont_fragment=False
        )
        return eth + ip + udp + udp_payload
    udp_b = bytearray(struct.pack("!HHHH", sport, GTPU_PORT, ulen, 0) + udp_payload)
    struct.pack_into("!H", udp_b, 6, ck.transport_checksum(src, dst, 17, udp_b) or 0xFFFF)
    ip6 = struct.pack("!IHBB", (6 << 28) | (tos << 20), ulen, 17, ttl) + src + dst
    return eth + ip6 + bytes(udp_b)
