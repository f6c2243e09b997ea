"""Compile the fast path's eBPF program once per source version (cached by content hash).

WHY at run time: the object must match the host's kernel headers and clang, which `scripts/setup`
installs (``clang``, ``libbpf-dev``); compiling on first start keeps the wheel architecture-free.
The cache key is the SHA-256 of the C source plus the clang version, so an edited program or a
new compiler recompiles, and concurrent starts race harmlessly (write to a temp file, rename).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from importlib import resources
from pathlib import Path

from fluidedge.linux.proc import CommandError, run
from fluidedge.tof.errors import DataPlaneError

SOURCE_NAME = "fastpath.bpf.c"
DEFAULT_CACHE = Path(os.environ.get("FLUIDEDGE_BPF_CACHE", "/var/cache/fluidedge/bpf"))


class BuildError(DataPlaneError):
    """The eBPF program could not be compiled (clang or libbpf-dev missing?)."""


HEADERS = ("budget.h",)  # included by the programs; copied next to them and hashed with them


def source(name: str = SOURCE_NAME) -> bytes:
    return resources.files(__package__).joinpath(name).read_bytes()


def header(name: str) -> bytes:
    return resources.files(__package__).joinpath(name).read_bytes()


def _arch_include() -> list[str]:
    """Debian keeps ``asm/`` headers under the multiarch triple directory."""
    return [f"-I{p.parent}" for p in sorted(Path("/usr/include").glob("*-linux-gnu/asm"))]


def _clang_version() -> str:
    try:
        return run(["clang", "--version"]).stdout.splitlines()[0]
    except CommandError as exc:
        raise BuildError(
            f"clang is needed for the eBPF fast path ({exc}); run scripts/setup"
        ) from exc


def object_path(cache: Path = DEFAULT_CACHE, name: str = SOURCE_NAME) -> Path:
    """The compiled object for the current source ``name`` (the fast path's, or the fail-open
    guard's ``guard.bpf.c``), compiling it if it is not cached yet."""
    src = source(name)
    stem = name.removesuffix(".bpf.c")
    headers = {h: header(h) for h in HEADERS}
    digest = hashlib.sha256(
        src + b"".join(headers.values()) + _clang_version().encode()
    ).hexdigest()[:16]
    target = cache / f"{stem}-{digest}.o"
    if target.exists():
        return target
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        c_file = Path(tmp) / name
        c_file.write_bytes(src)
        for hname, text in headers.items():
            (Path(tmp) / hname).write_bytes(text)
        out = Path(tmp) / f"{stem}.o"
        argv = ["clang", "-O2", "-g", "-Wall", "-target", "bpf", *_arch_include()]
        try:
            run([*argv, "-c", str(c_file), "-o", str(out)], timeout=120)
        except CommandError as exc:
            raise BuildError(f"compiling the eBPF program {name} failed: {exc}") from exc
        os.replace(out, target)
    return target
