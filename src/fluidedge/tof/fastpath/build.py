"""The fast path's and the fail-open guard's eBPF programs, compiled once per source version.

The compiling and caching (by content hash, in ``FLUIDEDGE_BPF_CACHE``) is
:mod:`fluidedge.linux.bpfbuild`'s, shared with the other parts that load programs; this module
names the TOF's sources and headers and keeps its errors a :class:`DataPlaneError`.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from fluidedge.linux import bpfbuild
from fluidedge.tof.errors import DataPlaneError

SOURCE_NAME = "fastpath.bpf.c"
DEFAULT_CACHE = bpfbuild.DEFAULT_CACHE


class BuildError(DataPlaneError):
    """The eBPF program could not be compiled (clang or libbpf-dev missing?)."""


HEADERS = ("budget.h",)  # included by the programs; copied next to them and hashed with them


def source(name: str = SOURCE_NAME) -> bytes:
    return resources.files(__package__).joinpath(name).read_bytes()


def header(name: str) -> bytes:
    return resources.files(__package__).joinpath(name).read_bytes()


def object_path(cache: Path = DEFAULT_CACHE, name: str = SOURCE_NAME) -> Path:
    """The compiled object for the current source ``name`` (the fast path's, or the fail-open
    guard's ``guard.bpf.c``), compiling it if it is not cached yet."""
    try:
        return bpfbuild.object_path(__package__, name, HEADERS, cache)
    except bpfbuild.BpfBuildError as exc:
        raise BuildError(str(exc)) from exc
