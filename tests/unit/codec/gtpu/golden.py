"""Loader of the golden GTP-U fixtures: ``tests/fixtures/gtpu/*.hex`` (``#`` lines are comments)."""

from __future__ import annotations

from pathlib import Path

FIXTURES = Path(__file__).resolve().parents[3] / "fixtures" / "gtpu"


def load(name: str) -> bytes:
    """Octets of fixture ``name`` (without ``.hex``); whitespace in the hex is ignored."""
    text = (FIXTURES / f"{name}.hex").read_text()
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    return bytes.fromhex("".join("".join(lines).split()))


def names() -> list[str]:
    return sorted(p.stem for p in FIXTURES.glob("*.hex"))
