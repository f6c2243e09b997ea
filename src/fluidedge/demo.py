"""``fluidedge demo``: the main job on the embedded default (README's first command)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add ``fluidedge demo`` (filled in as the parts land)."""
    del app
