"""When a usage record is reported: a pure function of its counters, times and triggers.

In the spirit of PFCP usage reporting (TS 29.244 §5.2.2.2, the UPF's Usage Reporting Rules):

- ``volume``: uplink + downlink bytes since the record opened reach ``volume_threshold``;
- ``time``: ``time_threshold`` seconds have passed since the record's first packet;
- ``periodic``: the clock crossed a multiple of ``period`` since the first packet (every
  record closes at the same instants, like PFCP's measurement period);
- bearer end and TEID replacement are events, not checks (the pipeline closes the records).

The check runs every ``check_interval`` seconds (not per packet: the hot path only adds), so a
record may overshoot ``volume_threshold`` by one interval's traffic; it reports what it
counted, nothing is lost.
"""

from __future__ import annotations

import math

from fluidedge.tof.accounting.config import Triggers

VOLUME = "volume"
TIME = "time"
PERIODIC = "periodic"
BEARER_END = "bearer_end"
TEID_REPLACED = "teid_replaced"
SHUTDOWN = "shutdown"
LOST = "lost"
TRIGGERS = (VOLUME, TIME, PERIODIC, BEARER_END, TEID_REPLACED, SHUTDOWN, LOST)


def due(triggers: Triggers, first: float, volume: int, now: float) -> str | None:
    """The trigger that closes a record opened at ``first`` with ``volume`` bytes, or None."""
    if triggers.volume_threshold is not None and volume >= triggers.volume_threshold:
        return VOLUME
    if triggers.time_threshold is not None and now - first >= triggers.time_threshold:
        return TIME
    period = triggers.period
    if period is not None and math.floor(now / period) > math.floor(first / period):
        return PERIODIC
    return None
