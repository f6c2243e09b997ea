"""Per-bearer, per-service usage counters and the records they become.

Hot path (the pipeline, for every offloaded packet): ``bearer.usage.get(service)`` and four
integer additions on a :class:`Usage` (slots, no allocation; a :class:`Usage` is created only
for the first packet of a record). Everything else (trigger checks, closing, exporting) runs off
the per-packet path: :meth:`Accountant.check` from the pipeline's tick, the export thread on
the records :meth:`Accountant.drain` hands over.

Times: the pipeline's clock is monotonic; ``wall_offset`` turns it into epoch seconds for the
policy (periodic reports align to the wall clock) and the records.
"""

from __future__ import annotations

import ipaddress
import socket
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

from fluidedge.tof.accounting import policy
from fluidedge.tof.accounting.config import AccountingConfig, Triggers

if TYPE_CHECKING:
    from fluidedge.tof.pipeline import Bearer


def ip_text(raw: bytes) -> str:
    """A packed address as text (canonical for IPv6); empty bytes as ''."""
    if len(raw) == 4:
        return socket.inet_ntop(socket.AF_INET, raw)
    return str(ipaddress.ip_address(raw)) if raw else ""  # canonical IPv6 text


class Usage:
    """The open record of one (bearer, service): counters since the last report.

    It does not refer to its bearer (the bearer refers to it, and :attr:`Accountant.active`
    maps it to its bearer): the data plane's per-UE state holds no reference cycle, so it is
    freed by reference counting alone and may be frozen out of the cyclic collector
    (:mod:`fluidedge.tof.gcfreeze`).
    """

    __slots__ = (
        "dl_bytes",
        "dl_packets",
        "first",
        "last",
        "service",
        "service_ip",
        "triggers",
        "ul_bytes",
        "ul_packets",
    )

    def __init__(self, service: str, service_ip: bytes, triggers: Triggers, now: float) -> None:
        self.service = service
        self.service_ip = service_ip
        self.triggers = triggers
        self.ul_packets = 0
        self.ul_bytes = 0
        self.dl_packets = 0
        self.dl_bytes = 0
        self.first = now
        self.last = now


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The open records (and their bearers) and the closed records' totals at one instant."""

    usages: list[Usage]
    bearers: list[Bearer]  # the bearer of each (same order)
    reported_packets: Counter[tuple[str, str]]
    reported_bytes: Counter[tuple[str, str]]
    records: Counter[str]
    pending: int
    dropped: int
    wall_offset: float


@dataclass(frozen=True, slots=True)
class UsageRecord:
    """One reported record (what IPFIX and the JSON Lines files carry; docs/accounting.md).

    ``trigger`` is one of :data:`fluidedge.tof.accounting.policy.TRIGGERS`; ``reason`` details
    a bearer end (the bearer event's reason: ``idle``, ``gtpc_delete``, ``purged``...).
    ``lost``: the counters of this record were lost (daemon killed): zeros, not usage.
    Times are epoch seconds.
    """

    ue: str
    enb: str
    sgw: str
    uplink_teid: int | None
    downlink_teid: int | None
    service: str
    service_ip: str
    uplink_packets: int
    uplink_bytes: int
    downlink_packets: int
    downlink_bytes: int
    first: float
    last: float
    closed: float
    trigger: str
    reason: str = ""
    lost: bool = False

    def to_json(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_json(cls, row: dict[str, object]) -> UsageRecord:
        return cls(**row)  # type: ignore[arg-type]


class Accountant:
    """Open records, the trigger checks, and the closed records waiting for the exporter.

    Not thread-safe by itself: it lives under the data plane's lock with the pipeline;
    :meth:`drain` is what the export thread calls (under the same lock, briefly).
    """

    def __init__(self, config: AccountingConfig, wall_offset: float = 0.0) -> None:
        self.config = config
        self.wall_offset = wall_offset
        self.active: dict[Usage, Bearer] = {}  # open records (insertion-ordered), their bearer
        self.opened = 0  # records opened since start (what the data plane allocates)
        self.closed: deque[UsageRecord] = deque()
        self.max_pending = 1_000_000  # closed records the exporter has not taken yet
        self.close_budget = 500  # records closed per check (one data-plane tick)
        self.scan_budget = 5000  # open records looked at per check
        self._round: list[Usage] = []  # the current scan round's snapshot, and where it is
        self._round_pos = 0
        self.next_check = 0.0
        self._triggers: dict[str, Triggers] = {}
        self.records: Counter[str] = Counter()  # closed, by trigger
        self.dropped = 0  # closed while max_pending were waiting (exporter stuck)
        # Reported totals (closed records) per (service, direction): packets, bytes.
        self.reported_packets: Counter[tuple[str, str]] = Counter()
        self.reported_bytes: Counter[tuple[str, str]] = Counter()
        # A backend that counts elsewhere too (the fast path's kernel map) brings a bearer's
        # counters up to date with this before its records close on a bearer event.
        self.pre_close: Callable[[Bearer], None] | None = None

    def triggers(self, service: str) -> Triggers:
        triggers = self._triggers.get(service)
        if triggers is None:
            triggers = self._triggers[service] = self.config.triggers_for(service)
        return triggers

    # ------------------------------------------------------------------ pipeline side

    def open(self, bearer: Bearer, service: str, service_ip: bytes, now: float) -> Usage:
        """A new record for the first packet of (``bearer``, ``service``) since a report."""
        usage = Usage(service, service_ip, self.triggers(service), now)
        bearer.usage[service] = usage
        self.active[usage] = bearer
        self.opened += 1
        return usage

    def close(self, usage: Usage, trigger: str, now: float, reason: str = "") -> None:
        bearer = self.active.pop(usage, None)
        if bearer is None:
            return  # closed already
        if bearer.usage.get(usage.service) is usage:
            del bearer.usage[usage.service]
        now = max(now, usage.last)  # events without a packet carry the latest tick's time
        offset = self.wall_offset
        record = UsageRecord(
            ue=ip_text(bearer.ue),
            enb=ip_text(bearer.enb),
            sgw=ip_text(bearer.sgw),
            uplink_teid=bearer.ul_teid,
            downlink_teid=bearer.dl_teid,
            service=usage.service,
            service_ip=ip_text(usage.service_ip),
            uplink_packets=usage.ul_packets,
            uplink_bytes=usage.ul_bytes,
            downlink_packets=usage.dl_packets,
            downlink_bytes=usage.dl_bytes,
            first=round(usage.first + offset, 3),
            last=round(usage.last + offset, 3),
            closed=round(now + offset, 3),
            trigger=trigger,
            reason=reason,
        )
        self.records[trigger] += 1
        for direction, packets, size in (
            ("up", usage.ul_packets, usage.ul_bytes),
            ("down", usage.dl_packets, usage.dl_bytes),
        ):
            self.reported_packets[(usage.service, direction)] += packets
            self.reported_bytes[(usage.service, direction)] += size
        self.push(record)

    def push(self, record: UsageRecord) -> None:
        """Queue a record for the exporter (bounded: beyond it, counted and dropped)."""
        if len(self.closed) >= self.max_pending:
            self.dropped += 1
            return
        self.closed.append(record)

    def close_bearer(self, bearer: Bearer, trigger: str, now: float, reason: str = "") -> None:
        """Close every open record of ``bearer`` (it ends, or its identity changes)."""
        if self.pre_close is not None:
            self.pre_close(bearer)
        for usage in list(bearer.usage.values()):
            self.close(usage, trigger, now, reason)

    def check(self, now: float) -> int:
        """Close the records whose triggers are due (:func:`policy.due`); how many.

        The check runs in the data plane's tick, under its lock, so one call does a bounded
        share: it scans at most :attr:`scan_budget` open records (a round over all of them
        continues on the next ticks, from a snapshot) and closes at most :attr:`close_budget`.
        With 100,000 open records a round takes 20 ticks (1 s) and a period boundary's closes
        are spread over the following ticks instead of stalling packets for seconds.
        """
        if self._round_pos >= len(self._round):
            self._round = list(self.active)
            self._round_pos = 0
        wall = now + self.wall_offset
        offset = self.wall_offset
        due = policy.due
        active = self.active
        closing: list[tuple[Usage, str]] = []
        pos, end = self._round_pos, min(self._round_pos + self.scan_budget, len(self._round))
        round_ = self._round
        while pos < end and len(closing) < self.close_budget:
            usage = round_[pos]
            pos += 1
            if usage not in active:
                continue  # closed since the snapshot
            trigger = due(
                usage.triggers, usage.first + offset, usage.ul_bytes + usage.dl_bytes, wall
            )
            if trigger is not None:
                closing.append((usage, trigger))
        self._round_pos = pos
        for usage, trigger in closing:
            self.close(usage, trigger, now)
        if pos >= len(round_):
            self._round = []
            self._round_pos = 0
            self.next_check = now + self.config.check_interval
        else:
            self.next_check = now  # the round continues on the next tick
        return len(closing)

    def shutdown(self, now: float) -> None:
        """Close every open record (graceful stop: nothing is left uncounted)."""
        for usage in list(self.active):
            self.close(usage, policy.SHUTDOWN, now)

    def drain(self, limit: int = 10_000) -> list[UsageRecord]:
        out: list[UsageRecord] = []
        closed = self.closed
        while closed and len(out) < limit:
            out.append(closed.popleft())
        return out

    # ------------------------------------------------------------------ read-outs

    def snapshot(self) -> Snapshot:
        """What the read-outs (:mod:`.readout`) are built from, outside the lock: the open
        records as a list (references, one copy) and what the closed ones add (lock held)."""
        return Snapshot(  # two lists, not items(): 100,000 tuples cost milliseconds
            usages=list(self.active),
            bearers=list(self.active.values()),
            reported_packets=Counter(self.reported_packets),
            reported_bytes=Counter(self.reported_bytes),
            records=Counter(self.records),
            pending=len(self.closed),
            dropped=self.dropped,
            wall_offset=self.wall_offset,
        )
