"""Learning and forgetting bearers from GTPv1-C (TS 29.060) where it crosses the TOF's wire.

WHY: learning from the user plane alone waits for traffic (and the Pinger) and cannot know
when a bearer ends; the Gn/Gp control plane says both at once. Where it is visible (UDP 2123
between the two sides), the TOF uses it; where it is not, user-plane learning stays correct on
its own (:class:`fluidedge.tof.pipeline.Pipeline`). Nothing here changes a frame: GTP-C is
always passed through unchanged; this module only reads it.

What each message does (the SGSN is on the eNB side, the GGSN on the SGW side, as in Gn):

- Create PDP Context Request (§7.3.1, SGSN -> GGSN): remembered by (SGSN, GGSN, sequence):
  TEID Data I (the SGSN's, = downlink TEID), TEID-C, NSAPI, SGSN user-plane address.
- Create PDP Context Response (§7.3.2), Cause accepted: the GGSN's TEID Data I (= uplink TEID),
  TEID-C, GGSN user-plane address and the End User Address (the UE's IPv4 address) complete the
  bearer: it is learned with both TEIDs at once (a tunnel key held by another UE's bearer
  retires that one, reason ``gtpc_replaced``).
- Update PDP Context Request/Response (§7.3.3, §7.3.4), SGSN-initiated: new TEIDs or addresses
  replace the old ones (new peers: the old bearer is retired, reason ``gtpc_update``).
- Delete PDP Context Request (§7.3.5), either direction: the bearers of that NSAPI (all of the
  PDP address with Teardown Ind) are retired at once (reason ``gtpc_delete``). The request
  suffices: a peer that sends it tears the context down whatever the answer.

IPv6 End User Addresses give a prefix the UE completes itself, so IPv6 bearers are learned from
the user plane only. Requests wait at most :data:`PENDING_TIMEOUT` for their response and at
most :data:`MAX_PENDING` are kept (the oldest go first).
"""

from __future__ import annotations

import weakref
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING

from fluidedge.codec import gtpc
from fluidedge.codec.errors import CodecError
from fluidedge.codec.gtpc import MessageType
from fluidedge.codec.stack import decode_frame

if TYPE_CHECKING:
    from fluidedge.codec.stack import Classified
    from fluidedge.tof.pipeline import Pipeline

PENDING_TIMEOUT = 30.0
MAX_PENDING = 4096
_ENB_PORT = 0  # fluidedge.tof.pipeline.ENB (not imported: that module imports this one)


@dataclass(slots=True)
class _Pending:
    """What a request said, until its response arrives."""

    kind: int
    at: float
    teid_data: int | None
    teid_control: int | None
    nsapi: int | None
    user_address: bytes | None  # the requester's GSN Address for user traffic
    eth: bytes  # the request frame's Ethernet header: uplink template for the same hosts
    control_address: bytes  # the requester's (outer source) address
    request_teid: int  # header TEID of the request (the responder's TEID-C, 0 on create)


@dataclass(slots=True)
class _Context:
    """One PDP context: its bearers and the (control address, TEID-C) of both GSNs."""

    nsapi: int
    keys: list[tuple[bytes, bytes, bytes]]
    sides: list[tuple[bytes, int]]


class GtpcLearner:
    """The GTP-C half of the control agent (see the module docstring)."""

    def __init__(self, pipeline: Pipeline) -> None:
        # A proxy: the pipeline holds this learner, and its state holds no reference cycle
        # (it is frozen out of the cyclic collector, fluidedge.tof.gcfreeze).
        self.pipeline: Pipeline = weakref.proxy(pipeline)
        self.pending: OrderedDict[tuple[bytes, bytes, int], _Pending] = OrderedDict()
        # (GSN control address, its TEID-C) -> {NSAPI: context}; each context under both sides.
        self.contexts: dict[tuple[bytes, int], dict[int, _Context]] = {}

    def clear(self) -> None:
        self.pending.clear()
        self.contexts.clear()

    def on_frame(self, frame: bytes, c: Classified, port: int, now: float) -> None:
        """Read one UDP 2123 frame (already passed through by the caller)."""
        p = self.pipeline
        if not p.config.gtpc:
            return
        counters = p.counters
        udp = c.udp_offset
        if udp is None or c.outer_src is None or c.outer_dst is None:
            return
        ulen = (frame[udp + 4] << 8) | frame[udp + 5] if len(frame) >= udp + 8 else 0
        try:
            msg = gtpc.decode(frame[udp + 8 : udp + max(ulen, 8)])
        except CodecError as exc:
            p.malformed[f"gtpc/{type(exc).__name__}"] += 1
            return
        counters[f"gtpc_type_{msg.message_type}"] += 1
        src, dst = c.outer_src, c.outer_dst
        if c.vlan is None and frame[12:14] in (b"\x08\x00", b"\x86\xdd"):
            eth = frame[:14]
        else:
            ip_offset = decode_frame(frame).ip_offset
            eth = frame[:ip_offset] if ip_offset is not None else b""
        mtype = msg.message_type
        if mtype in (
            MessageType.CREATE_PDP_CONTEXT_REQUEST,
            MessageType.UPDATE_PDP_CONTEXT_REQUEST,
        ):
            if port != _ENB_PORT:
                counters["gtpc_network_initiated_ignored"] += 1
                return
            self._expire(now)
            addresses = msg.gsn_addresses
            self.pending[(src, dst, msg.sequence)] = _Pending(
                mtype,
                now,
                msg.teid_data_i,
                msg.teid_control,
                msg.nsapi,
                addresses[1] if len(addresses) > 1 else (addresses[0] if addresses else None),
                eth,
                src,
                msg.teid,
            )
            while len(self.pending) > MAX_PENDING:
                self.pending.popitem(last=False)
                p.drops["gtpc_pending_overflow"] += 1
        elif mtype in (
            MessageType.CREATE_PDP_CONTEXT_RESPONSE,
            MessageType.UPDATE_PDP_CONTEXT_RESPONSE,
        ):
            request = self.pending.pop((dst, src, msg.sequence), None)
            if request is None or request.kind + 1 != mtype:
                counters["gtpc_response_unmatched"] += 1
                return
            if not gtpc.accepted(msg.cause):
                counters["gtpc_request_rejected"] += 1
                return
            self._on_accepted(request, msg, src, eth, now)
        elif mtype == MessageType.DELETE_PDP_CONTEXT_REQUEST:
            self._on_delete(src, dst, msg, now)

    def _expire(self, now: float) -> None:
        while self.pending:
            first = next(iter(self.pending.values()))
            if now - first.at <= PENDING_TIMEOUT:
                return
            self.pending.popitem(last=False)
            self.pipeline.counters["gtpc_request_unanswered"] += 1

    def _register(self, ctx: _Context) -> None:
        for side in ctx.sides:
            self.contexts.setdefault(side, {})[ctx.nsapi] = ctx

    def _unregister(self, ctx: _Context) -> None:
        for side in ctx.sides:
            table = self.contexts.get(side)
            if table is not None and table.get(ctx.nsapi) is ctx:
                del table[ctx.nsapi]
                if not table:
                    del self.contexts[side]

    def _on_accepted(
        self, request: _Pending, msg: gtpc.GtpcMessage, responder: bytes, eth: bytes, now: float
    ) -> None:
        p = self.pipeline
        addresses = msg.gsn_addresses
        ggsn_user = addresses[1] if len(addresses) > 1 else (addresses[0] if addresses else None)
        nsapi = request.nsapi
        if nsapi is None:
            p.counters["gtpc_not_learned_incomplete"] += 1
            return
        old: _Context | None = None
        if request.kind == MessageType.CREATE_PDP_CONTEXT_REQUEST:
            eua = msg.end_user_address
            if eua is None or eua.ipv4 is None:
                p.counters["gtpc_not_learned_no_ipv4_address"] += 1
                return
            if msg.teid_control is None or request.teid_control is None:
                p.counters["gtpc_not_learned_incomplete"] += 1
                return
            keys = [(request.user_address, ggsn_user, eua.ipv4)]
            olds: list[tuple[bytes, bytes, bytes] | None] = [None]
            sides = [(responder, msg.teid_control), (request.control_address, request.teid_control)]
        else:
            # Update (§7.3.3): the context is the GGSN's (its TEID-C was the request's TEID).
            old = self.contexts.get((responder, request.request_teid), {}).get(nsapi)
            if old is None:
                p.counters["gtpc_update_unknown_context"] += 1
                return
            keys = [
                (request.user_address or enb, ggsn_user or sgw, ue) for enb, sgw, ue in old.keys
            ]
            olds = list(old.keys)
            # The SGSN side is the requester now (an inter-SGSN update moves it), with its new
            # TEID-C if it gave one, else the one it had.
            ggsn_side = [side for side in old.sides if side[0] == responder]
            sgsn_teid = request.teid_control
            if sgsn_teid is None:
                sgsn_teid = next((t for a, t in old.sides if a != responder), None)
            sides = ggsn_side + (
                [(request.control_address, sgsn_teid)] if sgsn_teid is not None else []
            )
        learned: list[tuple[bytes, bytes, bytes]] = []
        for (enb, sgw, ue), previous in zip(keys, olds, strict=True):
            if enb is None or sgw is None or len(enb) != len(sgw) or len(enb) not in (4, 16):
                p.counters["gtpc_not_learned_incomplete"] += 1
                continue
            bearer = p.bearers.get(previous) if previous is not None else None
            ul_teid = msg.teid_data_i
            dl_teid = request.teid_data
            if bearer is not None and (bearer.enb, bearer.sgw) != (enb, sgw):
                ul_teid = ul_teid if ul_teid is not None else bearer.ul_teid
                dl_teid = dl_teid if dl_teid is not None else bearer.dl_teid
                p.retire_bearer(bearer, "gtpc_update", now)
            bearer = p.install_bearer(
                enb,
                sgw,
                ue,
                ul_teid,
                dl_teid,
                now=now,
                source="gtpc",
                ul_eth=request.eth if enb == request.control_address else None,
                dl_eth=eth if sgw == responder else None,
            )
            if bearer is not None:
                learned.append(bearer.key)
        if old is not None:
            self._unregister(old)
        if not learned:
            return
        self._register(_Context(nsapi, learned, sides))
        created = request.kind == MessageType.CREATE_PDP_CONTEXT_REQUEST
        p.counters["gtpc_learned" if created else "gtpc_updated"] += 1

    def _on_delete(self, sender: bytes, receiver: bytes, msg: gtpc.GtpcMessage, now: float) -> None:
        """Delete PDP Context Request (§7.3.5): its TEID is the receiver's TEID-C, and only the
        context's other GSN may send it (a third party cannot tear down others' bearers)."""
        p = self.pipeline
        table = self.contexts.get((receiver, msg.teid))
        if not table:
            p.counters["gtpc_delete_unknown_context"] += 1
            return
        if msg.teardown or msg.nsapi is None:
            doomed = list(table.values())
        else:
            doomed = [table[msg.nsapi]] if msg.nsapi in table else []
        if any(sender not in {side[0] for side in ctx.sides} for ctx in doomed):
            p.counters["gtpc_delete_wrong_sender"] += 1
            return
        for ctx in doomed:
            self._unregister(ctx)
            for key in ctx.keys:
                bearer = p.bearers.get(key)
                if bearer is not None:
                    p.retire_bearer(bearer, "gtpc_delete", now)
        p.counters["gtpc_deleted"] += 1
