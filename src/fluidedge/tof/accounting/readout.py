"""Read-outs of the open usage records that never hold the data plane's lock across them.

The accountant lives under the data plane's lock with the pipeline. At 100,000 open records,
``GET /usage`` held that lock for 1.15 s, a ``?ue=`` one 0.28 s (every UE turned into text to
be compared), each ``/metrics`` scrape 0.26 s (the totals) and the exporter's restart marker,
rewritten every ``checkpoint_interval`` (5 s), 0.51 s: no packet moved meanwhile. Now each
read-out takes, in one short hold, lists of the open records and their bearers (references)
and what the closed ones add (:meth:`Accountant.snapshot`), filters them outside
the lock (by the UE's packed address), reads the records' counters in holds of
:data:`CHUNK` (so a row's four counters are one instant's), yielding between holds, and builds
its rows outside the lock. ``bench/tof_usage_readout.py`` measures the holds.

``hold(call)`` runs ``call(accountant)`` under the data plane's lock and returns its result,
or None when accounting is off (``DataPlaneBase.with_accounting``).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any

from fluidedge.core.paging import keyset_page
from fluidedge.tof.accounting.usage import Accountant, Snapshot, Usage, ip_text
from fluidedge.tof.tunnel_pages import MARKER_PATTERN as BEARER_MARKER
from fluidedge.tof.tunnel_pages import bearer_marker

if TYPE_CHECKING:
    from fluidedge.tof.pipeline import Bearer

__all__ = [
    "CHUNK",
    "MARKER_PATTERN",
    "Hold",
    "identities",
    "record_marker",
    "totals",
    "usage_view",
]

Hold = Callable[[Callable[[Accountant], Any]], Any]
Counters = tuple[int, int, int, int]  # uplink packets, bytes; downlink packets, bytes

CHUNK = 1024  # records whose counters are read per hold of the lock (~0.3 ms)


def _counters(hold: Hold, usages: Sequence[Usage]) -> list[Counters]:
    """The counters of ``usages``, :data:`CHUNK` per hold (a yield between two holds: a lock
    released and at once taken again is never seen free by the data plane waiting for it)."""
    out: list[Counters] = []
    for start in range(0, len(usages), CHUNK):
        if start:
            time.sleep(0)
        chunk = usages[start : start + CHUNK]
        read: list[Counters] | None = hold(partial(_read, chunk))
        out.extend(read or [(0, 0, 0, 0)] * len(chunk))  # accounting turned off meanwhile
    return out


def _read(usages: Sequence[Usage], _accountant: Accountant) -> list[Counters]:
    return [(u.ul_packets, u.ul_bytes, u.dl_packets, u.dl_bytes) for u in usages]


def _snapshot(hold: Hold) -> Snapshot | None:
    snap: Snapshot | None = hold(lambda a: a.snapshot())
    return snap


def _totals(
    snap: Snapshot, usages: Sequence[Usage], counters: Sequence[Counters]
) -> dict[str, object]:
    packets = Counter(snap.reported_packets)
    size = Counter(snap.reported_bytes)
    for usage, (up, up_bytes, down, down_bytes) in zip(usages, counters, strict=True):
        service = usage.service
        packets[(service, "up")] += up
        size[(service, "up")] += up_bytes
        packets[(service, "down")] += down
        size[(service, "down")] += down_bytes
    services: dict[str, dict[str, int]] = {}
    for (service, direction), n in packets.items():
        row = services.setdefault(service, {})
        row[f"{direction}Packets"] = n
        row[f"{direction}Bytes"] = size[(service, direction)]
    return {
        "open": len(usages),
        "pending": snap.pending,
        "records": dict(snap.records),
        "droppedPending": snap.dropped,
        "services": services,
    }


def totals(hold: Hold) -> dict[str, object] | None:
    """Per service and direction: reported + open packets/bytes; records by trigger (the
    ``/metrics`` families); None when accounting is off."""
    snap = _snapshot(hold)
    if snap is None:
        return None
    return _totals(snap, snap.usages, _counters(hold, snap.usages))


def _row(usage: Usage, bearer: Bearer, counters: Counters, offset: float) -> dict[str, object]:
    up, up_bytes, down, down_bytes = counters
    return {
        "ue": ip_text(bearer.ue),
        "enb": ip_text(bearer.enb),
        "sgw": ip_text(bearer.sgw),
        "uplinkTEID": bearer.ul_teid,
        "downlinkTEID": bearer.dl_teid,
        "service": usage.service,
        "serviceIP": ip_text(usage.service_ip),
        "uplink": {"packets": up, "bytes": up_bytes},
        "downlink": {"packets": down, "bytes": down_bytes},
        "first": round(usage.first + offset, 3),
        "last": round(usage.last + offset, 3),
    }


#: What ``GET /usage``'s ``after`` may be: a record's marker, its bearer's (``ENB-SGW-UE``,
#: :mod:`fluidedge.tof.tunnel_pages`) and its service, joined by ``-``. Marker order is the
#: bearers' order, then the services' (``-`` sorts before any hex digit or name character).
MARKER_PATTERN = f"^{BEARER_MARKER[1:-1]}-[A-Za-z0-9][A-Za-z0-9_.-]{{0,62}}$"


def record_marker(usage: Usage, bearer: Bearer) -> str:
    return f"{bearer_marker(bearer)}-{usage.service}"


def usage_view(
    hold: Hold,
    ue: bytes | None,
    service: str | None,
    after: str | None = None,
    limit: int | None = None,
) -> tuple[dict[str, object] | None, str | None]:
    """``GET /usage``: the open records (of UE ``ue``, a packed address, and ``service`` when
    given) and the totals, and the next page's marker; (None, None) when accounting is off.
    With ``limit`` or ``after``, a keyset page by :func:`record_marker` (only its rows are
    built); without, every record in opening order."""
    snap = _snapshot(hold)
    if snap is None:
        return None, None
    usages = snap.usages
    counters = _counters(hold, usages)
    chosen = [
        i
        for i, (usage, bearer) in enumerate(zip(usages, snap.bearers, strict=True))
        if (ue is None or bearer.ue == ue) and (service is None or usage.service == service)
    ]
    marker = None
    if limit is not None or after is not None:
        chosen, marker = keyset_page(
            chosen, lambda i: record_marker(usages[i], snap.bearers[i]), after, limit
        )
    rows = [_row(usages[i], snap.bearers[i], counters[i], snap.wall_offset) for i in chosen]
    return {"open": rows, "totals": _totals(snap, usages, counters)}, marker


def identities(hold: Hold) -> list[dict[str, object]]:
    """Who has an open record (the exporter's restart marker: these are lost if the daemon
    dies); nothing when accounting is off. Identities only: no counter is read."""
    snap = _snapshot(hold)
    if snap is None:
        return []
    offset = snap.wall_offset
    return [
        {
            "ue": ip_text(bearer.ue),
            "enb": ip_text(bearer.enb),
            "sgw": ip_text(bearer.sgw),
            "uplink_teid": bearer.ul_teid,
            "downlink_teid": bearer.dl_teid,
            "service": usage.service,
            "service_ip": ip_text(usage.service_ip),
            "first": round(usage.first + offset, 3),
        }
        for usage, bearer in zip(snap.usages, snap.bearers, strict=True)
    ]
