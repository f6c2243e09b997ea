"""Where a benchmark's outputs go: one directory per run, ``runs/<timestamp>-<kind>/``.

Every command writes the same files so that ``bench report`` can find and render them:
``config.json`` (what was asked), ``machine.json`` (where it ran), ``results.json`` (summaries),
one or more raw CSVs and PNG figures. Files are written whole and atomically (temp + rename) after
every sample, so an interrupted or killed run still leaves consistent outputs behind.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fluidedge.measure.errors import MeasureInputError, NoRunsError

DEFAULT_ROOT = Path("runs")
KINDS = ("instantiate", "density", "dataplane", "analyze", "noisy")
_NAME = re.compile(r"^(?P<stamp>\d{8}-\d{6}(?:-\d+)?)-(?P<kind>[a-z]+)$")


def new_run_dir(kind: str, root: Path | None = None, now: datetime | None = None) -> Path:
    """Create and return a fresh ``<root>/<YYYYmmdd-HHMMSS>-<kind>`` directory."""
    if kind not in KINDS:
        raise MeasureInputError(f"unknown run kind {kind!r} (known: {', '.join(KINDS)})")
    root = root if root is not None else DEFAULT_ROOT
    root.mkdir(parents=True, exist_ok=True)
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%d-%H%M%S")
    for attempt in range(1000):
        suffix = f"-{attempt}" if attempt else ""
        path = root / f"{stamp}{suffix}-{kind}"
        try:
            path.mkdir()
        except FileExistsError:
            continue
        return path
    raise MeasureInputError(f"cannot create a run directory under {root}")


def _atomic_write(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", newline="") as handle:
            handle.write(text)
        os.chmod(tmp, 0o644)  # results are for reading and sharing (mkstemp makes 0600)
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: Path, data: Any) -> None:
    _atomic_write(path, json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")


def read_json(path: Path) -> Any:
    return json.loads(path.read_text())


def write_csv(path: Path, columns: Sequence[str], rows: Iterable[Mapping[str, Any]]) -> None:
    """Write ``rows`` (dicts) under ``columns``; missing cells are empty."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _cell(v) for k, v in row.items()})
    _atomic_write(path, buffer.getvalue())


def _cell(value: Any) -> Any:
    if isinstance(value, float):
        return f"{value:.6f}"
    return value


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def run_dirs(root: Path | None = None) -> list[tuple[str, Path]]:
    """All run directories under ``root`` as (kind, path), oldest first."""
    root = root if root is not None else DEFAULT_ROOT
    if not root.is_dir():
        return []
    found = []
    for path in sorted(root.iterdir()):
        match = _NAME.match(path.name)
        if match and path.is_dir() and (path / "results.json").exists():
            found.append((match["stamp"], match["kind"], path))
    found.sort()
    return [(kind, path) for _, kind, path in found]


def latest_runs(root: Path | None = None) -> dict[str, Path]:
    """The most recent complete run directory of each kind."""
    latest: dict[str, Path] = {}
    for kind, path in run_dirs(root):
        latest[kind] = path
    if not latest:
        raise NoRunsError(f"no run directories with results.json under {root or DEFAULT_ROOT}")
    return latest
