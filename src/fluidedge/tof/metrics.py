"""Prometheus text exposition of the TOF's counters (served at the daemon's ``/metrics``)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any


def _escape(value: object) -> str:
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _family(
    name: str, kind: str, help_text: str, samples: Iterable[tuple[Mapping[str, object], float]]
) -> list[str]:
    lines = [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
    for labels, value in samples:
        label_text = ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items())
        lines.append(f"{name}{{{label_text}}} {value}" if label_text else f"{name} {value}")
    return lines


def render(stats: Mapping[str, Any], tunnels: list[dict[str, Any]] | None) -> str:
    """The Prometheus text for one ``stats()`` and ``tunnels()`` snapshot (None: no
    per-bearer series, ``[tof] metrics_per_bearer = false``)."""
    lines: list[str] = []
    services: Mapping[str, Mapping[str, int]] = stats.get("services", {})
    lines += _family(
        "fluidedge_tof_service_packets_total",
        "counter",
        "Packets offloaded per service and direction.",
        [
            ({"service": n, "direction": d}, c[f"{d}Packets"])
            for n, c in services.items()
            for d in ("up", "down")
        ],
    )
    lines += _family(
        "fluidedge_tof_service_bytes_total",
        "counter",
        "Inner IP bytes offloaded per service and direction.",
        [
            ({"service": n, "direction": d}, c[f"{d}Bytes"])
            for n, c in services.items()
            for d in ("up", "down")
        ],
    )
    limited: Mapping[str, Mapping[str, int]] = stats.get("rateLimited", {})
    for unit in ("packets", "bytes"):
        lines += _family(
            f"fluidedge_tof_rate_limited_{unit}_total",
            "counter",
            f"Offloaded {unit} dropped by the per-UE rate limits, per service and direction.",
            [
                ({"service": n, "direction": d}, c[f"{d}{unit.capitalize()}"])
                for n, c in limited.items()
                for d in ("up", "down")
            ],
        )
    for key, metric, text in (
        ("counters", "fluidedge_tof_events_total", "Data-plane events by kind."),
        ("drops", "fluidedge_tof_drops_total", "Packets dropped by reason."),
        ("malformed", "fluidedge_tof_malformed_total", "Unparseable frames (passed) by reason."),
        ("io", "fluidedge_tof_io_total", "Frames received/sent per port and I/O errors."),
    ):
        table: Mapping[str, int] = stats.get(key, {})
        label = "kind" if key in ("counters", "io") else "reason"
        lines += _family(metric, "counter", text, [({label: k}, v) for k, v in table.items()])
    events: Mapping[str, Mapping[str, int]] = stats.get("bearerEvents", {})
    lines += _family(
        "fluidedge_tof_bearer_events_total",
        "counter",
        "Bearer events (learned, retired, purged) by reason.",
        [
            ({"event": e, "reason": r}, n)
            for e, reasons in events.items()
            for r, n in reasons.items()
        ],
    )
    lines += _family(
        "fluidedge_tof_bearers", "gauge", "Learned bearers.", [({}, stats.get("bearers", 0))]
    )
    lines += _family(
        "fluidedge_tof_flows", "gauge", "Offloaded flows (NAT state).", [({}, stats["flows"])]
    )
    fast: Mapping[str, int] = stats.get("fastpath", {})
    lines += _family(
        "fluidedge_tof_fastpath_total",
        "counter",
        "Fast-path (kernel program) counters: forwarded, punted by reason, rate-limited.",
        [({"kind": k}, v) for k, v in fast.items()],
    )
    maps: Mapping[str, Mapping[str, Any]] = stats.get("fastpath_maps", {})
    for metric, key, kind, text in (
        ("map_capacity", "capacity", "gauge", "Entries a fast-path map can hold."),
        ("map_entries", "entries", "gauge", "Entries the agent installed in a fast-path map."),
        ("map_waiting", "waiting", "gauge", "Entries a full map refused (on the slow path)."),
        ("map_full", "full", "gauge", "1 while a fast-path map refuses entries (alarm)."),
        ("map_full_failures_total", "fullFailures", "counter", "Writes refused: map full."),
    ):
        lines += _family(
            f"fluidedge_tof_fastpath_{metric}",
            kind,
            text,
            [({"map": name}, int(m[key])) for name, m in maps.items()],
        )
    if tunnels is None:
        return "\n".join(lines) + "\n"
    tunnel_samples: list[tuple[Mapping[str, object], float]] = []
    for t in tunnels:
        base = {"enb": t["enb"], "sgw": t["sgw"], "ue": t["ue"]}
        tunnel_samples.append(({**base, "direction": "up"}, t["uplink"]["packets"]))
        tunnel_samples.append(({**base, "direction": "down"}, t["downlink"]["packets"]))
    lines += _family(
        "fluidedge_tof_tunnel_packets_total",
        "counter",
        "G-PDUs seen per bearer and direction.",
        tunnel_samples,
    )
    return "\n".join(lines) + "\n"
