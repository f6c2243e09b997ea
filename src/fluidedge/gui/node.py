"""What the pages read from the node: the daemon's parts, through the objects the API uses.

The GUI runs inside the daemon, so it reads the TOF's catalog and backend and the instance
manager directly (no HTTP round trip, no 100,000-row JSON for a 50-row page); every change goes
through the same methods the REST routes call, after validation with the same request models.
A part that is not enabled answers :class:`PartMissing` (the page says so). The parts' modules
are imported only for type checking, so a daemon without a part never imports it.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from fluidedge.core.part import DaemonContext
from fluidedge.errors import NotFoundError
from fluidedge.gui.query import Keep, Paging, clamp, numbered_page
from fluidedge.gui.scope import sees, visible
from fluidedge.gui.session import Principal

if TYPE_CHECKING:
    from fluidedge.instances.manager import Manager
    from fluidedge.instances.models import InstanceView
    from fluidedge.tof.part import TofPart

# Above this many bearers the overview does not sum every bearer's uplink packets for the
# offload share (it would hold the data plane's lock for milliseconds on every live tick).
SHARE_LIMIT = 5000


class PartMissing(NotFoundError):
    """The page needs a part this daemon does not run."""


def slug(text: str) -> str:
    """A DOM id fragment for any text (service names, drop reasons, bearer keys)."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", text)


@dataclass(frozen=True)
class Health:
    part: str
    ok: bool
    state: str
    detail: str


class Node:
    """The daemon's parts as the GUI sees them."""

    def __init__(self, context: DaemonContext) -> None:
        self.context = context

    # ------------------------------------------------------------------ parts

    def has(self, name: str) -> bool:
        return name in self.context.parts

    def tof(self) -> TofPart:
        part = self.context.parts.get("tof")
        if part is None:
            raise PartMissing("this daemon does not run the TOF (no [tof] table in its config)")
        return cast("TofPart", part)

    def manager(self) -> Manager:
        part = self.context.parts.get("instances")
        if part is None:
            raise PartMissing(
                "this daemon does not run the instance manager (no [instances] table)"
            )
        return cast("Manager", part.manager)  # type: ignore[attr-defined]

    def health(self) -> list[Health]:
        out = [Health("daemon", True, "up", f"{len(self.context.parts)} part(s)")]
        if self.has("tof"):
            backend = self.tof().backend
            stats = backend.stats()
            state = str(stats.get("dataplane", "running"))
            out.append(
                Health(
                    "tof",
                    state == "running",
                    state,
                    f"backend {backend.name}, {stats.get('bearers', 0)} bearer(s)",
                )
            )
        if self.has("instances"):
            pools = self.manager().pool_status()
            failing = [p for p in pools if p.last_error]
            detail = "; ".join(f"{p.template}: {p.last_error}" for p in failing[:3])
            out.append(
                Health(
                    "instances",
                    not failing,
                    "pool errors" if failing else "up",
                    detail or f"{len(pools)} pool(s), {len(self.manager().instances)} instance(s)",
                )
            )
        return out

    # ------------------------------------------------------------------ TOF

    def tof_stats(self) -> dict[str, Any]:
        backend = self.tof().backend
        return {"backend": backend.name, **backend.stats()}

    def offload_share(self, stats: dict[str, Any]) -> str:
        """Offloaded uplink packets / all uplink G-PDUs of the learned bearers."""
        if int(stats.get("bearers", 0)) > SHARE_LIMIT:
            return f"n/a above {SHARE_LIMIT:,} bearers"
        rows = self.tof().backend.tunnels()
        total = sum(_num(r, "uplink", "packets") for r in rows)
        offloaded = sum(_num(r, "offloaded", "up") for r in rows)
        return f"{100.0 * offloaded / total:.1f} %" if total else "-"

    def tunnel_page(
        self, keep: Keep | None, page: int, size: int
    ) -> tuple[Paging, list[dict[str, Any]]]:
        backend = self.tof().backend
        paged = getattr(backend, "tunnel_page", None)
        if paged is None:  # a backend without paging: slice the whole snapshot
            rows = backend.tunnels()
            paging = clamp(page, size, len(rows))
            return paging, rows[paging.offset : paging.offset + size]
        return numbered_page(lambda offset, count: paged(keep, offset, count), page, size)

    # ------------------------------------------------------------------ live values

    def live_overview(self, principal: Principal) -> dict[str, str]:
        """{DOM id: text} of every live value of the overview (and the instances page)."""
        out: dict[str, str] = {}
        if self.has("tof"):
            stats = self.tof_stats()
            out["tof-bearers"] = f"{stats.get('bearers', 0):,}"
            out["tof-flows"] = f"{stats.get('flows', 0):,}"
            out["tof-share"] = self.offload_share(stats)
            for name, c in sorted(stats.get("services", {}).items()):
                for key in ("upPackets", "upBytes", "downPackets", "downBytes"):
                    out[f"svc-{slug(name)}-{key}"] = f"{c.get(key, 0):,}"
            for table in ("drops", "malformed"):
                for reason, n in sorted(stats.get(table, {}).items()):
                    out[f"{table}-{slug(reason)}"] = f"{n:,}"
            out["_shape_tof"] = ",".join(
                sorted(stats.get("services", {}))
                + sorted(stats.get("drops", {}))
                + sorted(stats.get("malformed", {}))
            )
        if self.has("instances"):
            manager = self.manager()
            counts = manager.state_counts(sees(principal))
            out["inst-running"] = str(counts.get("running", 0))
            out["inst-paused"] = str(counts.get("paused", 0))
            for p in manager.pool_status():
                for key in ("ready", "preparing", "consumed"):
                    out[f"pool-{slug(p.template)}-{key}"] = str(getattr(p, key))
        return out

    def instance_page(
        self, principal: Principal, page: int, size: int
    ) -> tuple[Paging, list[InstanceView]]:
        """A numbered page of the instances ``principal`` sees, by name (the last page when
        ``page`` is past the end); only that page's instances are viewed."""
        manager, keep = self.manager(), sees(principal)
        return numbered_page(
            lambda offset, count: manager.instance_slice(offset, count, keep), page, size
        )

    def live_instances(self, principal: Principal, page: int, size: int) -> dict[str, str]:
        """The overview's live values and the state of each instance on ``page``."""
        out = self.live_overview(principal)
        paging, views = self.instance_page(principal, page, size)
        out["inst-total"] = f"{paging.total:,}"
        for view in views:
            out[f"inst-{slug(view.name)}-state"] = view.state
        return out

    def live_instance(self, principal: Principal, name: str) -> dict[str, str]:
        """The overview's live values and the state of instance ``name`` (when seen)."""
        out = self.live_overview(principal)
        inst = self.manager().instances.get(name)
        if inst is not None and visible(principal, inst.labels):
            out[f"inst-{slug(name)}-state"] = inst.current_state()
        return out

    def live_tunnels(self, keep: Keep | None, page: int, size: int) -> dict[str, str]:
        paging, rows = self.tunnel_page(keep, page, size)
        out = {"tun-total": f"{paging.total:,}"}
        now = time.time()
        for row in rows:
            key = tunnel_id(row)
            out[f"{key}-ul"] = _traffic(row.get("uplink"))
            out[f"{key}-dl"] = _traffic(row.get("downlink"))
            off = row.get("offloaded") or {}
            out[f"{key}-off"] = f"{off.get('up', 0):,} / {off.get('down', 0):,}"
            out[f"{key}-pinger"] = pinger_text(row)
            out[f"{key}-idle"] = idle_text(row, now)
        return out


def tunnel_id(row: dict[str, Any]) -> str:
    return "tun-" + slug(f"{row.get('enb')}-{row.get('sgw')}-{row.get('ue')}")


def _num(row: dict[str, Any], table: str, key: str) -> int:
    sub = row.get(table)
    return int(sub.get(key, 0)) if isinstance(sub, dict) else 0


def _traffic(counters: Any) -> str:
    if not isinstance(counters, dict):
        return "-"
    return f"{counters.get('packets', 0):,} pkt / {counters.get('bytes', 0):,} B"


def pinger_text(row: dict[str, Any]) -> str:
    pinger = row.get("pinger") or {}
    state = "active" if pinger.get("active") else "idle"
    return f"{state} ({pinger.get('sent', 0)} sent)"


def idle_text(row: dict[str, Any], now: float) -> str:
    last = row.get("lastSeen")
    if not isinstance(last, int | float) or last > now + 1 or last < 1e9:
        return "-"  # a monotonic stamp (a backend without wall-clock conversion)
    return f"{max(0.0, now - last):.0f} s"
