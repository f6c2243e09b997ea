"""The C program's protocol numbers are the codec's and the pipeline's (one source per fact).

The eBPF program cannot import Python, so its ``#define``s are read from the source and compared
with the constants they mirror.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import fluidedge.tof.fastpath
from fluidedge.codec.gtpc import GTPC_PORT
from fluidedge.codec.gtpu import GTPU_PORT, ExtensionType, MessageType
from fluidedge.tof.pipeline import PINGER_ID

SOURCE = Path(fluidedge.tof.fastpath.__file__).parent / "fastpath.bpf.c"


def defines(text: str) -> dict[str, int]:
    """``#define NAME <integer literal>`` lines, by name."""
    found = re.findall(r"^#define\s+(\w+)\s+(0[xX][0-9a-fA-F]+|\d+)\s*$", text, re.MULTILINE)
    return {name: int(value, 0) for name, value in found}


def test_defines_are_read() -> None:
    assert defines("#define A 2152\n#define B 0x85\n#define C (1 + 2)\n") == {"A": 2152, "B": 133}


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("GTPU_PORT", GTPU_PORT),
        ("GTPC_PORT", GTPC_PORT),
        ("GTP_GPDU", int(MessageType.G_PDU)),
        ("EXT_PSC", int(ExtensionType.PDU_SESSION_CONTAINER)),
        ("PINGER_ID", PINGER_ID),
    ],
)
def test_c_define_matches_python(name: str, value: int) -> None:
    assert defines(SOURCE.read_text())[name] == value
