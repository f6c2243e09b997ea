"""A started shell's memory limit is lowered to its template's only once its usage fits (pure:
a recording stand-in for the cgroup adapter; the functional and VM tiers lower it for real)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import pytest

from fluidedge.instances import shell as shell_module
from fluidedge.instances.errors import RuntimeFailure
from fluidedge.instances.shell import RuncShellIO

MIB = 1024 * 1024


class _Cgroups:
    """Usage readings in turn (the last one repeats), and the limits written."""

    def __init__(self, usages: list[int]) -> None:
        self.usages = usages
        self.reads = 0
        self.written: list[tuple[str, int, bool, int]] = []

    def memory_usage(self, container_id: str) -> int:
        value = self.usages[min(self.reads, len(self.usages) - 1)]
        self.reads += 1
        return value

    def set_memory(self, container_id: str, memory_mb: int, *, lowering: bool) -> None:
        self.written.append((container_id, memory_mb, lowering, self.reads))


def _io(cgroups: _Cgroups) -> RuncShellIO:
    nothing = cast(Any, None)
    return RuncShellIO(Path("/nonexistent"), nothing, cast(Any, cgroups), "auto", nothing)


def test_the_limit_is_written_once_what_runc_init_left_is_freed() -> None:
    # 17 MiB right after the exec (runc init's heap and binary copy not freed yet), then 0.4.
    cgroups = _Cgroups([17 * MIB, 12 * MIB, MIB * 2 // 5])
    _io(cgroups)._lower_memory("fe1", 8)
    assert cgroups.written == [("fe1", 8, True, 3)]  # after the third reading, not before


def test_a_shell_that_stays_above_its_limit_fails_its_build_instead_of_being_killed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(shell_module, "LOWER_MEMORY_TIMEOUT_S", 0.02)
    cgroups = _Cgroups([9 * MIB])
    with pytest.raises(RuntimeFailure, match=r"9\.0 MiB in use .* \(8 MiB\)"):
        _io(cgroups)._lower_memory("fe1", 8)
    assert cgroups.written == []
