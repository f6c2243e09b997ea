"""Command-line interface of the instances part."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add this part's commands to the root fluidedge app (none yet)."""
    del app
