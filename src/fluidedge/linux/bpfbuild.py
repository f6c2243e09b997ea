"""Compile a package's eBPF program once per source version (cached by content hash).

WHY at run time: the object must match the host's kernel headers and clang, which `scripts/setup`
installs (``clang``, ``libbpf-dev``); compiling on first start keeps the wheel architecture-free.
The cache key is the SHA-256 of the C source and the headers it includes plus the clang version,
so an edited program or a new compiler recompiles, and concurrent starts race harmlessly (write
to a temp file, rename).

WHY the sources are named by package: each part ships its programs as package data next to its
own code (``importlib.resources``); this module compiles them without knowing the parts.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

from fluidedge.errors import SystemFailure
from fluidedge.linux.proc import CommandError, run

DEFAULT_CACHE = Path(os.environ.get("FLUIDEDGE_BPF_CACHE", "/var/cache/fluidedge/bpf"))


class BpfBuildError(SystemFailure):
    """An eBPF program could not be compiled (clang or libbpf-dev missing?)."""


def _arch_include() -> list[str]:
    """Debian keeps ``asm/`` headers under the multiarch triple directory."""
    return [f"-I{p.parent}" for p in sorted(Path("/usr/include").glob("*-linux-gnu/asm"))]


def _clang_version() -> str:
    try:
        return run(["clang", "--version"]).stdout.splitlines()[0]
    except CommandError as exc:
        raise BpfBuildError(
            f"clang is needed to compile eBPF programs ({exc}); run scripts/setup"
        ) from exc


def object_path(
    package: str, name: str, headers: Sequence[str] = (), cache: Path = DEFAULT_CACHE
) -> Path:
    """The compiled object of the C source ``name`` in ``package``'s resources (``x.bpf.c``
    gives ``cache/x-<hash>.o``), compiling it if it is not cached yet. ``headers`` are the
    package's headers the source includes: copied next to it and hashed with it, in order."""
    files = resources.files(package)
    src = files.joinpath(name).read_bytes()
    stem = name.removesuffix(".bpf.c")
    texts = {h: files.joinpath(h).read_bytes() for h in headers}
    digest = hashlib.sha256(src + b"".join(texts.values()) + _clang_version().encode()).hexdigest()[
        :16
    ]
    target = cache / f"{stem}-{digest}.o"
    if target.exists():
        return target
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        c_file = Path(tmp) / name
        c_file.write_bytes(src)
        for hname, text in texts.items():
            (Path(tmp) / hname).write_bytes(text)
        out = Path(tmp) / f"{stem}.o"
        argv = ["clang", "-O2", "-g", "-Wall", "-target", "bpf", *_arch_include()]
        try:
            run([*argv, "-c", str(c_file), "-o", str(out)], timeout=120)
        except CommandError as exc:
            raise BpfBuildError(f"compiling the eBPF program {name} failed: {exc}") from exc
        os.replace(out, target)
    return target
