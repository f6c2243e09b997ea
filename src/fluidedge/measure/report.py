"""``bench report``: one self-contained HTML page of the latest runs.

The page embeds every figure (base64 PNG, so the HTML alone is enough to read) and links a copy
of each run's raw files placed next to it under ``data/<run>/`` (CSV, JSON, PNG), so that a run
can be re-analysed, reproduced (``config.json``) and compared (``machine.json``: CPU, kernel,
memory, versions of Python, runc and OVS). Rendering is plain string building with every value
escaped: no template engine, no JavaScript.
"""

from __future__ import annotations

import base64
import html
import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fluidedge.measure import rundir
from fluidedge.measure.errors import NoRunsError

REPORT_HTML = "report.html"
_CSS = """
body { font-family: system-ui, -apple-system, 'Segoe UI', sans-serif; margin: 2rem auto;
       max-width: 1100px; color: #222; line-height: 1.45; padding: 0 1rem; }
h1 { border-bottom: 3px solid #4C72B0; padding-bottom: .3rem; }
h2 { margin-top: 2.5rem; color: #2F4B7C; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: .8rem 0; font-size: .9rem; }
th, td { border: 1px solid #ddd; padding: .25rem .6rem; text-align: right; }
th { background: #f3f5f9; } td.l, th.l { text-align: left; }
img { max-width: 100%; border: 1px solid #eee; margin: .5rem 0; }
.meta { color: #666; font-size: .85rem; } .warn { color: #b35900; font-weight: bold; }
pre { background: #f7f7f7; padding: .6rem; overflow-x: auto; font-size: .8rem; }
"""


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _num(value: Any, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return _e(value)


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]], left: int = 1) -> str:
    head = "".join(
        f'<th class="l">{_e(h)}</th>' if i < left else f"<th>{_e(h)}</th>"
        for i, h in enumerate(headers)
    )
    body = []
    for row in rows:
        cells = "".join(
            f'<td class="l">{cell}</td>' if i < left else f"<td>{cell}</td>"
            for i, cell in enumerate(row)
        )
        body.append(f"<tr>{cells}</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def _machine(description: dict[str, Any]) -> str:
    tools = description.get("tools") or {}
    rows = [
        ("CPU", description.get("cpu_model")),
        ("cores", description.get("cpus")),
        ("memory", f"{description.get('memory_mib')} MiB"),
        ("kernel", description.get("kernel")),
        ("OS", description.get("os")),
        ("load average", ", ".join(f"{x:.2f}" for x in description.get("load_average") or [])),
        ("Python", description.get("python")),
        ("fluidedge", f"{description.get('fluidedge')} ({description.get('git_commit') or '?'})"),
        *((name, version or "not installed") for name, version in tools.items()),
    ]
    return _table(["", ""], [(_e(k), _e(v)) for k, v in rows], left=2)


def _instantiate(results: dict[str, Any]) -> str:
    rows = []
    for variant in results.get("variants", []):
        phases = [*variant["phases"].items(), ("TOTAL", variant["total"])]
        for index, (name, s) in enumerate(phases):
            ci = "-" if s.get("ci_low") is None else _num((s["ci_high"] - s["ci_low"]) / 2)
            rows.append(
                (
                    _e(variant["variant"]) if index == 0 else "",
                    f"<b>{_e(name)}</b>" if name == "TOTAL" else _e(name),
                    _num(s["mean"]),
                    ci,
                    _num(s["median"]),
                    _num(s["p99"]),
                    _num(s["n"]),
                )
            )
    table = _table(["variant", "phase", "mean ms", "±95% CI", "median", "p99", "n"], rows, 2)
    paths = results.get("paths_taken") or {}
    extra = f'<p class="meta">paths taken per variant: {_e(json.dumps(paths))}</p>'
    failures = results.get("failures") or []
    if failures:
        extra += f'<p class="warn">{len(failures)} failed runs (see results.json)</p>'
    return table + extra


def _density(results: dict[str, Any]) -> str:
    rows = [
        (
            _num(p["running"]),
            _num(p["latency_ms_median"], 2),
            _num(p["latency_ms_p99"], 2),
            _num(p.get("instances_memory_mib"), 1),
            _num(p["memory_mib"], 1),
        )
        for p in results.get("points", [])
    ]
    table = _table(
        ["running", "median ms", "p99 ms", "instances' cgroups MiB", "host MiB above start"],
        rows,
        left=0,
    )
    flat = results.get("flatness_last_over_first")
    per = results.get("memory_per_instance_kib")
    return table + (
        f"<p>{_num(results.get('instances_created'))} instances; last/first step median "
        f"latency {_num(flat, 2)}x; ≈ {_num(per, 0)} KiB charged per instance.</p>"
    )


def _dataplane(results: dict[str, Any]) -> str:
    rows = []
    for row in results.get("table", []):
        rows.append(
            (
                _e(row["size"]),
                _e(row["scenario"]),
                _num(row.get("throughput_pps"), 0),
                _num(row.get("throughput_mbps"), 1),
                _num(row.get("ratio_to_baseline"), 2),
                _num(row.get("latency_avg_us"), 1),
                _num(row.get("latency_max_us"), 1),
                "yes" if row.get("generator_limited") else "",
            )
        )
    return _table(
        [
            "frame",
            "scenario",
            "zero-loss pps",
            "Mbit/s (L1)",
            "vs kernel",
            "avg latency µs",
            "max latency µs",
            "generator-limited",
        ],
        rows,
        left=2,
    )


def _analyze(results: dict[str, Any]) -> str:
    check = results.get("cross_check") or {}
    rows = [
        (
            _e(r.get("name")),
            _num(r.get("status")),
            _e(r.get("path") or "-"),
            _num(r.get("wire_ms")),
            _num(r.get("server_ms")),
            _num(r.get("daemon_total_ms")),
            _num(r.get("difference_ms")),
            _num(r.get("first_packet_ms")),
        )
        for r in results.get("requests", [])
    ]
    verdict = "agree" if check.get("agrees") else "disagree"
    summary = (
        f"<p>wire vs daemon: <b>{verdict}</b> on {_num(check.get('within'))}/"
        f"{_num(check.get('compared'))} requests; server time - daemon total: mean "
        f"{_num(check.get('mean_difference_ms'))} ms, max {_num(check.get('max_difference_ms'))}"
        f" ms (tolerance {_num(check.get('tolerance_ms'))} ms).</p>"
    )
    return summary + _table(
        ["name", "status", "path", "wire ms", "server ms", "daemon ms", "diff ms", "1st pkt ms"],
        rows,
    )


def _noisy(results: dict[str, Any]) -> str:
    rows = [
        (
            _e(c.get("target")),
            _e(c.get("scenario")),
            _e(c.get("metric")),
            _num(c.get("n")),
            _num(c.get("mean")),
            f"{_num(c.get('ci_low'))} to {_num(c.get('ci_high'))}",
            "-" if c.get("change_pct") is None else f"{_num(c.get('change_pct'))} %",
            "-" if c.get("change_ci_pct") is None else f"± {_num(c.get('change_ci_pct'))}",
        )
        for c in results.get("cells", [])
    ]
    note = f"<p>CAT: {_e(results.get('cat'))}. {_e(results.get('ci_note'))}.</p>"
    return note + _table(
        ["target", "scenario", "metric", "n", "mean", "95% CI", "vs baseline", "CI of change"],
        rows,
        left=3,
    )


_KIND_RENDER = {
    "instantiate": ("Instantiation time breakdown (seed §3.4)", _instantiate),
    "density": ("Density (LightVM-style curves)", _density),
    "dataplane": ("Data plane: RFC 2544 zero-loss throughput and latency (§7, §8)", _dataplane),
    "analyze": ("Message analyzer: wire vs daemon", _analyze),
    "noisy": ("Noisy neighbour: target throughput and latency (§7.6-7.8)", _noisy),
}


def _section(kind: str, run: Path, out: Path) -> tuple[str, dict[str, Any] | None]:
    results = rundir.read_json(run / "results.json")
    machine_path = run / "machine.json"
    machine = rundir.read_json(machine_path) if machine_path.exists() else None
    data_dir = out / "data" / run.name
    data_dir.mkdir(parents=True, exist_ok=True)
    for item in sorted(run.iterdir()):
        if item.is_file() and item.suffix in (".csv", ".json", ".png"):
            shutil.copy2(item, data_dir / item.name)
    title, render = _KIND_RENDER.get(kind, (kind, lambda r: ""))
    parts = [f'<h2 id="{_e(kind)}">{_e(title)}</h2>']
    parts.append(
        f'<p class="meta">run <code>{_e(run.name)}</code>, created {_e(results.get("created"))}'
        f", took {_num(results.get('elapsed_s'), 1)} s</p>"
    )
    if results.get("interrupted"):
        parts.append('<p class="warn">interrupted: partial results</p>')
    for figure in results.get("figures", []):
        png = run / figure
        if png.exists():
            encoded = base64.b64encode(png.read_bytes()).decode("ascii")
            href = f"data/{run.name}/{figure}"
            parts.append(
                f'<a href="{_e(href)}"><img alt="{_e(figure)}" '
                f'src="data:image/png;base64,{encoded}"></a>'
            )
    parts.append(render(results))
    links = [
        f'<a href="data/{_e(run.name)}/{_e(item.name)}">{_e(item.name)}</a>'
        for item in sorted(data_dir.iterdir())
        if item.suffix in (".csv", ".json")
    ]
    parts.append(f"<p>raw data: {' · '.join(links)}</p>")
    config = results.get("config")
    if config is not None:
        parts.append(
            "<details><summary>configuration</summary><pre>"
            f"{_e(json.dumps(config, indent=2, default=str))}</pre></details>"
        )
    return "\n".join(parts), machine


def build_report(out: Path, runs: dict[str, Path]) -> Path:
    """Write ``out/report.html`` (+ ``out/data/``) for the given {kind: run dir}."""
    if not runs:
        raise NoRunsError("no runs to report on")
    out.mkdir(parents=True, exist_ok=True)
    sections = []
    machines: list[dict[str, Any]] = []
    order = [k for k in _KIND_RENDER if k in runs] + [k for k in runs if k not in _KIND_RENDER]
    for kind in order:
        text, machine = _section(kind, runs[kind], out)
        sections.append(text)
        if machine is not None:
            machines.append(machine)
    machine_html = _machine(machines[-1]) if machines else "<p>unknown</p>"
    if len({json.dumps({k: m.get(k) for k in ("cpu_model", "kernel")}) for m in machines}) > 1:
        machine_html += '<p class="warn">the runs were made on different machines</p>'
    toc = " · ".join(f'<a href="#{_e(k)}">{_e(k)}</a>' for k in order)
    page = (
        "<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8>"
        "<title>fluidedge measurement report</title>"
        f"<style>{_CSS}</style></head><body>"
        "<h1>fluidedge measurement report</h1>"
        f"<p class=meta>{toc}</p>"
        "<h2>Machine</h2>"
        f"{machine_html}"
        f"{''.join(sections)}"
        "<p class=meta>Generated by <code>fluidedge bench report</code>. Error bars and ± are "
        "95% confidence intervals of the mean (Student t); p99 by linear interpolation.</p>"
        "</body></html>\n"
    )
    path = out / REPORT_HTML
    path.write_text(page)
    return path
