"""linux.bpfbuild: a package's program compiled once per source, headers and compiler (with a
stand-in clang; tests/unit/tof_fastpath/test_layout.py compiles the real programs)."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest

from fluidedge.errors import SystemFailure
from fluidedge.linux import bpfbuild
from fluidedge.linux.proc import CommandError

PACKAGE = "fluidedge.tof.fastpath"  # any package shipping a .bpf.c and a header


class FakeClang:
    """``clang --version`` prints ``version``; a compile writes the sources it saw as the object."""

    def __init__(self, version: str = "clang version 99.0.0") -> None:
        self.version = version
        self.compiles: list[list[str]] = []

    def __call__(self, argv: Sequence[str], **_: object) -> subprocess.CompletedProcess[str]:
        argv = list(argv)
        if argv[1:] == ["--version"]:
            return subprocess.CompletedProcess(argv, 0, f"{self.version}\nTarget: x\n", "")
        self.compiles.append(argv)
        c_file = Path(argv[argv.index("-c") + 1])
        seen = sorted(p.name for p in c_file.parent.iterdir())
        Path(argv[argv.index("-o") + 1]).write_text(" ".join(seen))
        return subprocess.CompletedProcess(argv, 0, "", "")


@pytest.fixture
def clang(monkeypatch: pytest.MonkeyPatch) -> FakeClang:
    fake = FakeClang()
    monkeypatch.setattr(bpfbuild, "run", fake)
    return fake


def test_compiles_once_with_the_headers_beside_the_source(clang: FakeClang, tmp_path: Path) -> None:
    first = bpfbuild.object_path(PACKAGE, "guard.bpf.c", ("budget.h",), tmp_path)
    assert first.parent == tmp_path
    assert first.name.startswith("guard-")
    assert first.name.endswith(".o")
    assert first.read_text() == "budget.h guard.bpf.c"  # what clang found next to the source
    [argv] = clang.compiles
    assert argv[:6] == ["clang", "-O2", "-g", "-Wall", "-target", "bpf"]
    assert bpfbuild.object_path(PACKAGE, "guard.bpf.c", ("budget.h",), tmp_path) == first
    assert len(clang.compiles) == 1  # cached
    assert [p.name for p in tmp_path.iterdir()] == [first.name]  # no temp files left


def test_headers_and_compiler_are_in_the_key(clang: FakeClang, tmp_path: Path) -> None:
    with_header = bpfbuild.object_path(PACKAGE, "guard.bpf.c", ("budget.h",), tmp_path)
    without = bpfbuild.object_path(PACKAGE, "guard.bpf.c", (), tmp_path)
    clang.version = "clang version 100.0.0"
    newer = bpfbuild.object_path(PACKAGE, "guard.bpf.c", ("budget.h",), tmp_path)
    assert len({with_header, without, newer}) == 3
    assert len(clang.compiles) == 3


def test_no_clang_is_a_system_failure(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def missing(argv: Sequence[str], **_: object) -> None:
        raise CommandError(argv, 127, "not installed: clang")

    monkeypatch.setattr(bpfbuild, "run", missing)
    with pytest.raises(bpfbuild.BpfBuildError, match="clang is needed") as info:
        bpfbuild.object_path(PACKAGE, "guard.bpf.c", cache=tmp_path)
    assert isinstance(info.value, SystemFailure)
    assert list(tmp_path.iterdir()) == []


def test_a_failed_compile_names_the_program(
    clang: FakeClang, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def broken(argv: Sequence[str], **kw: object) -> subprocess.CompletedProcess[str]:
        if "-c" in argv:
            raise CommandError(argv, 1, "error: expected ';'")
        return clang(argv, **kw)

    monkeypatch.setattr(bpfbuild, "run", broken)
    with pytest.raises(bpfbuild.BpfBuildError, match=r"guard\.bpf\.c failed.*expected"):
        bpfbuild.object_path(PACKAGE, "guard.bpf.c", cache=tmp_path)
    assert list(tmp_path.iterdir()) == []  # no object, no temp directory
