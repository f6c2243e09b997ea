"""Run the daemon under uvicorn."""

from __future__ import annotations

from pathlib import Path

import uvicorn

from fluidedge.daemon.app import build_context, create_app
from fluidedge.daemon.config import load_config


def serve(config_path: Path | None, *, log_level: str = "info") -> None:
    """Load the config, build the parts and serve the API until interrupted."""
    config = load_config(config_path)
    context = build_context(config)
    app = create_app(context)
    uvicorn.run(
        app,
        host=config.api.listen,
        port=config.api.port,
        log_level=log_level,
        access_log=False,
    )
