"""Charts as geometry for inline SVG (drawn by the templates; no charting script needed).

:func:`breakdown` lays out an instance's instantiation phases (the VIM phases of the API's
``timing``) the way the seed's breakdown figures do: one stacked bar of the whole request, then
one bar per phase on a common millisecond scale, each labelled with its value. Colours are the
Okabe-Ito palette (distinguishable with colour-vision deficiencies); every value is also
written as text, so the chart does not rely on colour.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

PHASES = ("accept", "placement", "shell", "config", "network", "start", "durable", "ready")
COLOURS = (
    "#0072B2",
    "#E69F00",
    "#009E73",
    "#CC79A7",
    "#56B4E9",
    "#D55E00",
    "#F0E442",
    "#999999",
)

WIDTH = 640
LABEL_W = 90
VALUE_W = 80
ROW_H = 22
BAR_H = 16


@dataclass(frozen=True)
class Bar:
    label: str
    value_ms: float
    x: float
    y: float
    width: float
    colour: str


@dataclass(frozen=True)
class Breakdown:
    width: int
    height: int
    stacked: list[Bar]  # the whole request, phase after phase, on one row
    bars: list[Bar]  # one row per phase
    total_ms: float
    scale_w: float
    label_w: int


def breakdown(timing: Mapping[str, float]) -> Breakdown:
    values = [max(0.0, float(timing.get(p, 0.0))) for p in PHASES]
    total = float(timing.get("total", 0.0)) or sum(values)
    span = max(total, sum(values), 1e-9)
    scale_w = WIDTH - LABEL_W - VALUE_W
    stacked: list[Bar] = []
    x = float(LABEL_W)
    for phase, value, colour in zip(PHASES, values, COLOURS, strict=True):
        width = scale_w * value / span
        stacked.append(Bar(phase, value, x, 4, width, colour))
        x += width
    bars = [
        Bar(phase, value, LABEL_W, 4 + ROW_H * (i + 1.5), scale_w * value / span, colour)
        for i, (phase, value, colour) in enumerate(zip(PHASES, values, COLOURS, strict=True))
    ]
    height = int(4 + ROW_H * (len(PHASES) + 1.5) + 8)
    return Breakdown(WIDTH, height, stacked, bars, total, scale_w, LABEL_W)
