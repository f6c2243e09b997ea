"""Every socket buffer size set in ``src/`` goes through ``fluidedge.linux.sockbuf``: a plain
``SO_RCVBUF``/``SO_SNDBUF`` is silently capped by the host's ``net.core.rmem_max``/``wmem_max``
(212,992 bytes on a stock Debian host, 4 MiB on these development machines), so a socket sized
that way holds less on an operator's host than in our lab (the module's docstring)."""

from __future__ import annotations

import re
import socket
from pathlib import Path

import pytest
from tests.unit.linux.source_rules import SRC, offenders

from fluidedge.linux import sockbuf

SIZER = SRC / "linux" / "sockbuf.py"
SETTING = re.compile(
    r"setsockopt\(\s*(?:socket\.)?SOL_SOCKET\s*,\s*(?:socket\.)?SO_(?:RCV|SND)BUF\b"
)


def test_no_module_but_linux_sockbuf_sets_buffer_sizes() -> None:
    assert offenders(SETTING, SIZER) == []


def test_the_rule_sees_a_setting() -> None:
    assert SETTING.search("s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)")
    assert SETTING.search("s.setsockopt(\n    SOL_SOCKET, SO_SNDBUF, 4096)")
    assert not SETTING.search("s.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 4096)")


class _Unprivileged:
    """A socket whose forced sizes are refused, as without CAP_NET_ADMIN (EPERM)."""

    def __init__(self) -> None:
        self.set: list[tuple[int, int, int]] = []

    def setsockopt(self, level: int, option: int, value: int) -> None:
        if option in (sockbuf.SO_RCVBUFFORCE, sockbuf.SO_SNDBUFFORCE):
            raise PermissionError(1, "Operation not permitted")
        self.set.append((level, option, value))


def test_without_the_capability_the_plain_options_are_set() -> None:
    fake = _Unprivileged()
    sockbuf.size_buffers(fake, receive=1 << 20, send=1 << 19)  # type: ignore[arg-type]
    assert fake.set == [
        (socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20),
        (socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 19),
    ]


def test_only_the_buffers_asked_for_are_set() -> None:
    fake = _Unprivileged()
    sockbuf.size_buffers(fake, send=4096)  # type: ignore[arg-type]
    assert fake.set == [(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)]


def test_stock_caps_sets_then_puts_back_what_it_found(tmp_path: Path) -> None:
    """The caps are host-wide: put back as found, even when the block fails."""
    caps = (tmp_path / "rmem_max", tmp_path / "wmem_max")
    caps[0].write_text("4194304\n")
    caps[1].write_text("1048576\n")
    seen: list[str] = []

    def measure() -> None:
        with sockbuf.stock_caps(caps=caps):
            seen.extend(p.read_text() for p in caps)
            raise RuntimeError("the measurement failed")

    with pytest.raises(RuntimeError, match="measurement failed"):
        measure()
    assert seen == [f"{sockbuf.STOCK_CAP}\n"] * 2
    assert [p.read_text() for p in caps] == ["4194304\n", "1048576\n"]
