"""``fluidedge serve``: run the daemon."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    @app.command("serve")
    def serve_command(
        config: Annotated[
            Path | None, typer.Option("--config", "-c", help="Daemon TOML config.")
        ] = None,
        log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
    ) -> None:
        """Run the fluidedge daemon (REST API, Swagger UI at /docs)."""
        from fluidedge.daemon.serve import serve

        serve(config, log_level=log_level)
