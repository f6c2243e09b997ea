"""Rules that hold ``src/`` to one module for one kind of call: where a pattern may appear."""

from __future__ import annotations

import re
from pathlib import Path

SRC = Path(__file__).resolve().parents[3] / "src" / "fluidedge"


def offenders(pattern: re.Pattern[str], allowed: Path) -> list[str]:
    """``file:line`` of every match of ``pattern`` in ``src/`` outside ``allowed``."""
    return [
        f"{path.relative_to(SRC)}:{text.count(chr(10), 0, m.start()) + 1}"
        for path in sorted(SRC.rglob("*.py"))
        if path != allowed
        for text in [path.read_text()]
        for m in pattern.finditer(text)
    ]
