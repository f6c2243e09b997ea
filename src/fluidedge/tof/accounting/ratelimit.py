"""Per-UE rate limits on offloaded traffic: the ``[tof.ratelimit]`` table and its token buckets.

The core's gateway enforces each subscriber's AMBR on what crosses it; what the TOF offloads
never does. A service's limit here applies to **each UE's** offloaded traffic to that service,
uplink and downlink separately (one token bucket per UE, service and direction, in bytes of
inner IP packets: what the accounting counts). Over its rate a packet is dropped, and counted
per UE (``GET /usage`` → ``rateLimited``) and per service (``/metrics``).

Example::

    [tof.ratelimit.services.video]
    uplink = 2_000_000      # bit/s per UE (omitted: no uplink limit)
    downlink = 20_000_000   # bit/s per UE
    burst = 0.1             # s of the rate the bucket holds (at least burst_min bytes)

    [tof.ratelimit.services.video.ues."198.18.100.7"]   # one UE's own limits for the service
    downlink = 50_000_000   # keys left out are the service's; 0: not limited for this UE

Both backends enforce the same limits: the userspace pipeline with :class:`RateLimiter`, the
eBPF fast path with a per-UE bucket map in the kernel program (``budget.h``'s arithmetic, in
bytes). The bucket is pure arithmetic on a caller's clock (sans-I/O), so its properties are
unit-tested without packets.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field, field_validator

_SERVICE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
# The kernel program holds rates in u32 bytes/s and bursts in u32 bytes (fastpath.bpf.c).
MAX_RATE_BPS = 8 * 0xFFFFFFFF
MIN_RATE_BPS = 8_000
BURST_MIN = 3_000  # bytes: two full-size packets always fit a bucket (a smaller one drops them)

UP = "uplink"
DOWN = "downlink"


def _rate(value: int | None) -> int | None:
    if value is not None and value != 0 and not MIN_RATE_BPS <= value <= MAX_RATE_BPS:
        raise ValueError(f"a rate is 0 (not limited) or {MIN_RATE_BPS} to {MAX_RATE_BPS} bit/s")
    return value


class UeLimit(BaseModel):
    """One UE's override of a service's limits (None: the service's; 0: not limited)."""

    model_config = ConfigDict(extra="forbid")

    uplink: int | None = None
    downlink: int | None = None
    burst: float | None = Field(default=None, gt=0, le=10)

    @field_validator("uplink", "downlink")
    @classmethod
    def _check_rate(cls, value: int | None) -> int | None:
        return _rate(value)


class ServiceLimit(BaseModel):
    """One service's per-UE limits (bit/s; None: that direction is not limited), and UEs'
    own limits (``ues``: keyed by UE address)."""

    model_config = ConfigDict(extra="forbid")

    uplink: int | None = Field(default=None, ge=MIN_RATE_BPS, le=MAX_RATE_BPS)
    downlink: int | None = Field(default=None, ge=MIN_RATE_BPS, le=MAX_RATE_BPS)
    burst: float = Field(default=0.1, gt=0, le=10)  # s of the rate
    ues: dict[str, UeLimit] = Field(default_factory=dict)

    @field_validator("ues")
    @classmethod
    def _check_ues(cls, value: dict[str, UeLimit]) -> dict[str, UeLimit]:
        out: dict[str, UeLimit] = {}
        for text, limit in value.items():
            try:
                canonical = str(ipaddress.ip_address(text))
            except ValueError as exc:
                raise ValueError(f"ues: {text!r} is not a UE address") from exc
            if canonical in out:
                raise ValueError(f"ues: {text!r} given twice")
            out[canonical] = limit
        return out

    def for_ue(self, ue: str) -> ServiceLimit:
        """This service's limits as they apply to UE ``ue`` (its override merged in)."""
        o = self.ues.get(ue)
        if o is None:
            return self
        up = self.uplink if o.uplink is None else (o.uplink or None)
        down = self.downlink if o.downlink is None else (o.downlink or None)
        burst = self.burst if o.burst is None else o.burst
        return ServiceLimit(uplink=up, downlink=down, burst=burst)

    def pairs(self) -> tuple[tuple[int, int], tuple[int, int]]:
        """((uplink rate, burst), (downlink rate, burst)) in bytes/s and bytes (0: none)."""
        return (
            (self.rate_bytes(UP), self.burst_bytes(UP)),
            (self.rate_bytes(DOWN), self.burst_bytes(DOWN)),
        )

    def rate_bytes(self, direction: str) -> int:
        """The rate in bytes/s (0: unlimited)."""
        bps = self.uplink if direction == UP else self.downlink
        return 0 if bps is None else bps // 8

    def burst_bytes(self, direction: str) -> int:
        """The bucket's depth in bytes (0 when the direction is unlimited)."""
        rate = self.rate_bytes(direction)
        return 0 if rate == 0 else min(0xFFFFFFFF, max(BURST_MIN, int(rate * self.burst)))


class RateLimitConfig(BaseModel):
    """Validated ``[tof.ratelimit]`` table (see the module docstring)."""

    model_config = ConfigDict(extra="forbid")

    services: dict[str, ServiceLimit] = Field(default_factory=dict)

    @field_validator("services")
    @classmethod
    def _check_services(cls, value: dict[str, ServiceLimit]) -> dict[str, ServiceLimit]:
        for name in value:
            if not _SERVICE_NAME.match(name):
                raise ValueError(f"services: invalid service name {name!r}")
        return value


class Bucket:
    """A token bucket in bytes: starts full, refills at ``rate`` bytes/s up to ``burst``.

    The same rule as the kernel's ``bucket_take`` (budget.h): a packet passes when the bucket
    holds at least its size, and takes it; a refused packet takes nothing. Elapsed time is
    clamped (a clock going back refills nothing; a long idle just fills the bucket).
    """

    __slots__ = ("last", "tokens")

    def __init__(self, burst: int, now: float) -> None:
        self.tokens = float(burst)
        self.last = now

    def take(self, size: int, now: float, rate: int, burst: int) -> bool:
        elapsed = now - self.last
        if elapsed > 0:
            self.tokens = min(float(burst), self.tokens + elapsed * rate)
            self.last = now
        elif self.tokens > burst:
            self.tokens = float(burst)  # the limit was lowered
        if self.tokens >= size:
            self.tokens -= size
            return True
        return False


@dataclass(slots=True)
class Dropped:
    """What one UE lost to one service's limits."""

    up_packets: int = 0
    up_bytes: int = 0
    down_packets: int = 0
    down_bytes: int = 0


def _ip(raw: bytes) -> str:
    family = socket.AF_INET if len(raw) == 4 else socket.AF_INET6
    return socket.inet_ntop(family, raw)


class RateLimiter:
    """The buckets of the limited (UE, service, direction) triples and the drops per UE.

    Lives under the data plane's lock with the pipeline. Buckets are created on a UE's first
    limited packet (full) and kept per UE address (bounded by the UE pools times the limited
    services); a purge of every bearer empties them. Drop counts are the per-UE report: they
    stay for the daemon's life.
    """

    def __init__(self, config: RateLimitConfig) -> None:
        self.config = config
        # service -> ((up rate, up burst), (down rate, down burst)) in bytes, limited ones only
        self.limits: dict[str, tuple[tuple[int, int], tuple[int, int]]] = {
            name: lim.pairs()
            for name, lim in config.services.items()
            if lim.uplink is not None or lim.downlink is not None or lim.ues
        }
        # (UE packed, service) -> its own limits (``ues`` overrides), the same shape
        self.overrides: dict[tuple[bytes, str], tuple[tuple[int, int], tuple[int, int]]] = {
            (ipaddress.ip_address(ue).packed, name): lim.for_ue(ue).pairs()
            for name, lim in config.services.items()
            for ue in lim.ues
        }
        self.buckets: dict[tuple[bytes, str, bool], Bucket] = {}
        self.dropped: dict[tuple[bytes, str], Dropped] = {}

    def allow(self, ue: bytes, service: str, uplink: bool, size: int, now: float) -> bool:
        """Whether a packet of ``size`` bytes may go (counted as dropped when not).

        :meth:`Bucket.take`, inlined: this runs for every offloaded packet of a limited service.
        """
        limits = self.limits.get(service)
        if limits is None:
            return True
        if self.overrides:
            limits = self.overrides.get((ue, service), limits)
        rate, burst = limits[0] if uplink else limits[1]
        if not rate:
            return True
        key = (ue, service, uplink)
        bucket = self.buckets.get(key)
        if bucket is None:
            bucket = self.buckets[key] = Bucket(burst, now)
        tokens = bucket.tokens
        elapsed = now - bucket.last
        if elapsed > 0:
            tokens += elapsed * rate
            bucket.last = now
        if tokens > burst:  # noqa: PLR1730 (cheaper than min() per packet)
            tokens = burst
        if tokens >= size:
            bucket.tokens = tokens - size
            return True
        bucket.tokens = tokens
        self.count(ue, service, uplink, 1, size)
        return False

    def count(self, ue: bytes, service: str, uplink: bool, packets: int, size: int) -> None:
        """Add drops (the pipeline's own, or the kernel's folded in by the fast path)."""
        row = self.dropped.get((ue, service))
        if row is None:
            row = self.dropped[(ue, service)] = Dropped()
        if uplink:
            row.up_packets += packets
            row.up_bytes += size
        else:
            row.down_packets += packets
            row.down_bytes += size

    def reset(self) -> None:
        """Every bearer was purged: buckets start full again (drop counts stay)."""
        self.buckets.clear()

    def rows(self, ue: bytes | None = None, service: str | None = None) -> list[dict[str, object]]:
        """Per UE and service: the drops (``GET /usage`` → ``rateLimited``), filtered."""
        out: list[dict[str, object]] = []
        for (who, name), d in self.dropped.items():
            if (ue is not None and who != ue) or (service is not None and name != service):
                continue
            out.append(
                {
                    "ue": _ip(who),
                    "service": name,
                    "uplink": {"droppedPackets": d.up_packets, "droppedBytes": d.up_bytes},
                    "downlink": {"droppedPackets": d.down_packets, "droppedBytes": d.down_bytes},
                }
            )
        return out

    def totals(self) -> dict[str, dict[str, int]]:
        """Per service: packets and bytes dropped per direction (``/metrics``, ``/stats``)."""
        out: dict[str, dict[str, int]] = {}
        for (_ue, name), d in self.dropped.items():
            row = out.setdefault(
                name, {"upPackets": 0, "upBytes": 0, "downPackets": 0, "downBytes": 0}
            )
            row["upPackets"] += d.up_packets
            row["upBytes"] += d.up_bytes
            row["downPackets"] += d.down_packets
            row["downBytes"] += d.down_bytes
        return out
