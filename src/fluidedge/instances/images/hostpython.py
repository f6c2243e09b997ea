"""An image of the host's own ``python3`` (interpreter, standard library, the shared libraries
they load) plus busybox, for the product's measurement rigs and the tests' probes.

Why: instances no longer see the host's ``/usr``, and a few workloads of ours are Python
scripts (the noisy-neighbour walker, the attack probe). Copying exactly the interpreter's files
(found with ``ldd``) keeps them running without giving instances anything else of the host:
no ``/etc``, no site-packages, no other program.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
from collections.abc import Callable
from pathlib import Path

from fluidedge.instances.images import tools
from fluidedge.instances.images.builtin import busybox_tree
from fluidedge.instances.images.store import ImageImport, ImageStore
from fluidedge.linux.proc import CommandError, run

NAME = "python"
SKIP = frozenset(
    {"test", "site-packages", "dist-packages", "idlelib", "tkinter", "turtledemo",
     "lib2to3", "ensurepip", "pydoc_data", "__pycache__"}
)  # fmt: skip


def libraries(binaries: list[Path]) -> set[str]:
    libs: set[str] = set()
    for binary in binaries:
        try:
            out = run(["ldd", str(binary)], check=False).stdout
        except CommandError as exc:
            raise tools.ToolError(f"ldd {binary}: {exc}") from exc
        libs.update(re.findall(r"(/\S+\.so[.\d]*)", out))
    return libs


def _directories(tree: Path, rel: Path) -> None:
    """``tree/rel`` and its missing parents, each 0755 whatever the umask (the layer records
    the modes the tree holds; see :mod:`fluidedge.instances.images.builtin`)."""
    current = tree
    for part in rel.parts:
        current = current / part
        if not current.is_dir():
            current.mkdir()
            os.chmod(current, 0o755)  # noqa: S103 (a system directory of the image)


def copy_into(tree: Path, path: str) -> None:
    # Debian 12 has merged /usr: /lib and /lib64 are symlinks into /usr, in the image too.
    rel = path.lstrip("/")
    if rel.startswith(("lib/", "lib64/")):
        rel = "usr/" + rel
    target = tree / rel
    _directories(tree, Path(rel).parent)
    shutil.copy2(os.path.realpath(path), target)


def python_tree(tree: Path) -> None:
    """The image's files in directory ``tree``."""
    busybox_tree(tree)
    python = Path(os.path.realpath("/usr/bin/python3"))
    stdlib = Path(f"/usr/lib/{python.name}")
    dynload = sorted((stdlib / "lib-dynload").glob("*.so"))
    _directories(tree, Path("usr/bin"))
    shutil.copy2(python, tree / "usr" / "bin" / python.name)
    (tree / "usr" / "bin" / "python3").symlink_to(python.name)
    for lib in libraries([python, *dynload]):
        copy_into(tree, lib)
    (tree / "lib").symlink_to("usr/lib")
    (tree / "lib64").symlink_to("usr/lib64")
    shutil.copytree(
        stdlib,
        tree / "usr" / "lib" / python.name,
        symlinks=True,
        ignore=lambda _d, names: [n for n in names if n in SKIP],
    )


def build_python_layout(layout: Path, scratch: Path) -> None:
    """An OCI layout (tag ``python``) of :func:`python_tree`."""
    tree = scratch / "python-tree"
    python_tree(tree)
    tools.build_layout(layout, tree, NAME, ["--config.env=PATH=/usr/bin:/bin"])


def ensure_python(images: ImageStore) -> str:
    """Import the ``python`` image unless the store has it; its name."""
    return ensure_host_image(images, NAME, build_python_layout)


def ensure_host_image(images: ImageStore, name: str, build: Callable[[Path, Path], None]) -> str:
    """Import image ``name`` unless the store has it: ``build(layout, scratch)`` writes its OCI
    layout in a private scratch directory of the store, removed afterwards. Its name."""
    if name in images.images:
        return name
    scratch = images.root / "tmp" / ("build-" + secrets.token_hex(6))
    try:
        scratch.mkdir(mode=0o700, parents=True)
        build(scratch / "layout", scratch)
        images.import_image(
            ImageImport(name=name, source=str(scratch / "layout"), ref=name), builtin=True
        )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return name
