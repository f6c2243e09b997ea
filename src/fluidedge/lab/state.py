"""The on-disk record of a lab: what was (or is about to be) created, so ``down`` can undo it.

``up`` writes the full list of namespaces *before* creating the first one and records each
process right after spawning it; ``down`` trusts only this file (plus the processes it finds
inside the recorded namespaces), so it cleans up after a crash or a half-finished ``up``
without touching anything another lab or user owns.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from fluidedge.lab.errors import LabSystemError

DEFAULT_ROOT = Path("/run/fluidedge/lab")


def root() -> Path:
    """Directory holding one sub-directory per lab (``FLUIDEDGE_LAB_DIR`` overrides)."""
    return Path(os.environ.get("FLUIDEDGE_LAB_DIR", str(DEFAULT_ROOT)))


def run_dir(prefix: str) -> Path:
    return root() / prefix


def state_path(prefix: str) -> Path:
    return run_dir(prefix) / "state.json"


def process_start_time(pid: int) -> int | None:
    """Start time of ``pid`` in clock ticks since boot (None if gone), to detect pid reuse."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may contain spaces; fields after the last ')' are fixed.
    rest = stat.rsplit(")", 1)[1].split()
    return int(rest[19])


def process_alive(pid: int, start_time: int | None) -> bool:
    """True if ``pid`` runs, is not a zombie, and is the process we started."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    rest = stat.rsplit(")", 1)[1].split()
    if rest[0] in ("Z", "X"):
        return False
    return start_time is None or int(rest[19]) == start_time


@dataclass
class ProcessRecord:
    name: str
    netns: str
    pid: int
    start_time: int | None
    argv: list[str]


@dataclass
class LabState:
    prefix: str
    mode: str
    config: dict[str, Any]
    namespaces: list[str]
    phase: str = "creating"  # creating -> up
    created: float = field(default_factory=time.time)
    processes: list[ProcessRecord] = field(default_factory=list)
    attaches: dict[str, int] = field(default_factory=dict)  # osmo flavour: re-attaches per UE

    def save(self) -> None:
        """Atomically write the record (the directory is created if needed)."""
        path = state_path(self.prefix)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(asdict(self), indent=1))
            tmp.replace(path)
        except OSError as exc:
            raise LabSystemError(f"cannot write lab state {path}: {exc.strerror}") from exc

    @classmethod
    def load(cls, prefix: str) -> LabState | None:
        path = state_path(prefix)
        try:
            raw = json.loads(path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise LabSystemError(f"cannot read lab state {path}: {exc}") from exc
        procs = [ProcessRecord(**p) for p in raw.pop("processes", [])]
        return cls(**raw, processes=procs)


def list_prefixes() -> list[str]:
    """Prefixes of every lab with a state record on this machine."""
    base = root()
    if not base.is_dir():
        return []
    return sorted(p.name for p in base.iterdir() if (p / "state.json").exists())
