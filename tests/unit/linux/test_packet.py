"""Every packet socket in ``src/`` is made by ``fluidedge.linux.packet``: a socket created
with a protocol hears every interface of its namespace until it is bound (the module's
docstring), and the rule is easiest kept where a new socket would be written."""

from __future__ import annotations

import re

from tests.unit.linux.source_rules import SRC, offenders

MAKER = SRC / "linux" / "packet.py"
CREATION = re.compile(r"socket\.socket\(\s*(?:socket\.)?AF_PACKET")


def test_no_module_but_linux_packet_creates_packet_sockets() -> None:
    assert offenders(CREATION, MAKER) == []


def test_the_rule_sees_a_creation() -> None:
    assert CREATION.search(MAKER.read_text())
    assert CREATION.search("s = socket.socket(\n    socket.AF_PACKET, socket.SOCK_RAW, 0)")
