"""The ``[gui]`` table of the daemon config (the GUI is on unless ``enabled = false``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field


class GuiConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    runs_dir: Path = Field(
        default=Path("runs"), description="where `fluidedge bench` wrote its runs (Measurements)"
    )
    session_idle_s: float = Field(default=8 * 3600, gt=0, le=7 * 86400)
    page_size: int = Field(default=50, ge=10, le=500)
    live_interval_s: float = Field(
        default=0.25, gt=0.01, le=10, description="how often live values are checked and pushed"
    )
