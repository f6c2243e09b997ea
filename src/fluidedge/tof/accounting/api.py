"""``GET /usage``: the open usage records (counters since the last report), the totals, and
what the per-UE rate limits dropped (``rateLimited``, docs/accounting.md).

A TOF route: like ``/tunnels`` it is the admin's (a tenant token gets 403, fluidedge.core.auth),
since it names subscribers. Filters: ``ue`` (an address, compared in canonical form) and
``service`` (a name); a malformed filter is a 400 saying which.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request, Response

from fluidedge.core.paging import MAX_PAGE, link_headers
from fluidedge.tof.accounting import readout
from fluidedge.tof.models import IPV4_ANY

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")

# (UE packed address, service, after, limit; None: not given) -> ({"open": rows, "totals":
# ...} or None when accounting is off, the next page's marker or None)
# (fluidedge.tof.accounting.readout.usage_view, after the backend's fold)
UsageReader = Callable[
    [bytes | None, str | None, str | None, int | None],
    tuple[dict[str, object] | None, str | None],
]
# (UE packed address or None, service or None) -> rows, or None when nothing is limited
LimitReader = Callable[[bytes | None, str | None], list[dict[str, object]] | None]


def build_router(
    read: UsageReader,
    export_stats: Callable[[], dict[str, object]],
    read_limits: LimitReader | None = None,
) -> APIRouter:
    router = APIRouter(tags=["tof"])

    @router.get(
        "/usage",
        summary="Per-UE usage of offloaded traffic: open records (filterable, paged) and totals",
        responses={
            200: {
                "description": "The open records (with `limit`: one page of them, by marker)",
                "headers": {
                    "Link": {
                        "description": "With `limit`, while more records follow: `<...?after="
                        'MARKER&limit=N>; rel="next"` (RFC 8288), the next page',
                        "schema": {"type": "string"},
                    }
                },
            },
            400: {"description": "Bad filter, limit or marker"},
        },
    )
    def usage(
        request: Request,
        response: Response,
        *,
        ue: Annotated[
            str | None,
            Query(
                max_length=64,
                description="UE address (IPv4 as described; IPv6 accepted too)",
                # described, not enforced here: a schema-valid value is a valid IPv4 address,
                # and an IPv6 one is checked below like any other text (400 with the reason)
                json_schema_extra={"pattern": IPV4_ANY},
            ),
        ] = None,
        service: Annotated[
            str | None, Query(max_length=63, pattern=_NAME.pattern, description="service name")
        ] = None,
        limit: Annotated[
            int | None,
            Query(
                ge=1,
                le=MAX_PAGE,
                description="at most this many open records, by marker (their bearer's packed "
                "eNB, SGW and UE addresses in hex, and the service); a `Link: <...>; "
                'rel="next"` header names the next page while one follows (without it: all '
                "of them, in opening order; with `after`, all those after it)",
            ),
        ] = None,
        after: Annotated[
            str | None,
            Query(
                max_length=162,  # three IPv6 addresses, two dashes, a dash, a name
                pattern=readout.MARKER_PATTERN,
                description="only records whose marker sorts after this one (the next page's "
                "marker, as the `Link` header gives it: `ENB-SGW-UE-SERVICE`)",
            ),
        ] = None,
    ) -> dict[str, Any]:
        packed: bytes | None = None
        if ue is not None:
            try:
                address = ipaddress.ip_address(ue)
            except ValueError as exc:
                raise HTTPException(400, f"ue: {exc}") from exc
            packed = address.packed
        limited = read_limits(packed, service) if read_limits is not None else None
        result, marker = read(packed, service, after, limit)
        response.headers.update(link_headers(request.url.path, request.query_params, marker, limit))
        if result is None:
            return {
                "enabled": False,
                "open": [],
                "totals": {},
                "export": {},
                "rateLimited": limited or [],
            }
        return {"enabled": True, **result, "export": export_stats(), "rateLimited": limited or []}

    return router


def render_metrics(totals: dict[str, Any], export: dict[str, Any]) -> str:
    """Prometheus text: accounted bytes/packets per service and direction, records, spool."""
    lines = [
        "# HELP fluidedge_tof_usage_bytes_total Offloaded inner IP bytes accounted per service.",
        "# TYPE fluidedge_tof_usage_bytes_total counter",
    ]
    services: dict[str, dict[str, int]] = totals.get("services", {})
    for name, row in sorted(services.items()):
        for d in ("up", "down"):
            lines.append(
                f'fluidedge_tof_usage_bytes_total{{service="{name}",direction="{d}"}} '
                f"{row.get(f'{d}Bytes', 0)}"
            )
    lines += [
        "# HELP fluidedge_tof_usage_packets_total Offloaded packets accounted per service.",
        "# TYPE fluidedge_tof_usage_packets_total counter",
    ]
    for name, row in sorted(services.items()):
        for d in ("up", "down"):
            lines.append(
                f'fluidedge_tof_usage_packets_total{{service="{name}",direction="{d}"}} '
                f"{row.get(f'{d}Packets', 0)}"
            )
    lines += [
        "# HELP fluidedge_tof_usage_records_total Usage records closed, by trigger.",
        "# TYPE fluidedge_tof_usage_records_total counter",
    ]
    records: dict[str, int] = totals.get("records", {})
    lines += [
        f'fluidedge_tof_usage_records_total{{trigger="{t}"}} {n}'
        for t, n in sorted(records.items())
    ]
    lines += [
        "# HELP fluidedge_tof_usage_open_records Usage records open (counting).",
        "# TYPE fluidedge_tof_usage_open_records gauge",
        f"fluidedge_tof_usage_open_records {totals.get('open', 0)}",
    ]
    spool: dict[str, int] = export.get("spool", {})
    if spool:
        lines += [
            "# HELP fluidedge_tof_usage_spool_bytes Records waiting on disk for the collector.",
            "# TYPE fluidedge_tof_usage_spool_bytes gauge",
            f"fluidedge_tof_usage_spool_bytes {spool.get('bytes', 0)}",
            "# HELP fluidedge_tof_usage_spool_dropped_total Records dropped: spool full.",
            "# TYPE fluidedge_tof_usage_spool_dropped_total counter",
            f"fluidedge_tof_usage_spool_dropped_total {spool.get('dropped', 0)}",
        ]
    ipfix: dict[str, int] = export.get("ipfix", {})
    if ipfix:
        lines += [
            "# HELP fluidedge_tof_usage_ipfix_total IPFIX export: messages, records, errors.",
            "# TYPE fluidedge_tof_usage_ipfix_total counter",
        ]
        lines += [
            f'fluidedge_tof_usage_ipfix_total{{kind="{k}"}} {v}' for k, v in sorted(ipfix.items())
        ]
    return "\n".join(lines) + "\n"
