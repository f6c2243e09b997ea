"""The ``busybox`` image the built-in templates run, built from Debian's busybox-static.

Built once per host into an OCI layout under :data:`CACHE` (by ``scripts/setup``, or by the
first daemon start that finds it missing; keyed by the busybox binary's digest, so a package
upgrade builds a new one), and imported into each state directory's store through the same
path as any user image: ``/bin/busybox`` (static, so no host library comes
along), a symlink per applet in ``/bin`` (so ``PATH`` lookups work), and an ``/etc/passwd`` and
``/etc/group`` naming root and nobody. Nothing else of the host is in it.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
import sys
from pathlib import Path

from fluidedge.instances.images import tools
from fluidedge.instances.images.store import ImageImport, ImageStore
from fluidedge.linux.proc import CommandError, run

NAME = "busybox"
BUSYBOX = Path("/bin/busybox")
CACHE = Path("/var/cache/fluidedge/images")
PASSWD = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n"  # noqa: S105 (no password: x)
GROUP = "root:x:0:\nnogroup:x:65534:\n"


# Every mode in the image is set, never left to the builder's umask: the layer records what
# the tree holds, and a daemon under its unit (UMask=0077) or a hardened root shell would
# otherwise ship directories no workload but root may enter (execve: Permission denied).
DIR_MODES = {
    "": 0o755,
    "bin": 0o755,
    "etc": 0o755,
    "tmp": 0o1777,
    "root": 0o700,
    "var": 0o755,
    "var/www": 0o755,
}


def busybox_tree(tree: Path, busybox: Path = BUSYBOX) -> None:
    """The image's files in directory ``tree`` (modes as listed, whatever the umask)."""
    for sub, mode in DIR_MODES.items():
        (tree / sub).mkdir(parents=True, exist_ok=True)
        os.chmod(tree / sub, mode)
    shutil.copyfile(busybox, tree / "bin" / "busybox")
    os.chmod(tree / "bin" / "busybox", 0o755)  # noqa: S103 (a program)
    try:
        applets = run([str(busybox), "--list"]).stdout.split()
    except CommandError as exc:
        raise tools.ToolError(f"{busybox} --list: {exc}") from exc
    for applet in applets:
        if applet != "busybox" and applet.replace("-", "").replace("_", "").isalnum():
            (tree / "bin" / applet).symlink_to("busybox")
    for name, text in (("passwd", PASSWD), ("group", GROUP)):
        (tree / "etc" / name).write_text(text)
        os.chmod(tree / "etc" / name, 0o644)  # world-readable, as on any system


def cached_layout(cache: Path = CACHE, busybox: Path = BUSYBOX) -> Path:
    """The host's busybox image layout (tag ``latest``), built if missing."""
    if not busybox.is_file():
        raise tools.ToolError(f"{busybox} is missing: install busybox-static")
    digest = hashlib.sha256(busybox.read_bytes()).hexdigest()[:16]
    layout = cache / f"busybox-{digest}"
    if (layout / "index.json").is_file():
        return layout
    cache.mkdir(mode=0o700, parents=True, exist_ok=True)
    scratch = cache / f".build-{secrets.token_hex(6)}"
    try:
        scratch.mkdir(mode=0o700)
        busybox_tree(scratch / "tree", busybox)
        tools.build_layout(scratch / "layout", scratch / "tree", "latest", ["--config.cmd=/bin/sh"])
        try:
            os.rename(scratch / "layout", layout)
        except OSError:
            if not (layout / "index.json").is_file():  # not a concurrent build's: a failure
                raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return layout


def ensure_busybox(images: ImageStore, cache: Path = CACHE) -> None:
    """Import the ``busybox`` image unless the store already has it."""
    if NAME in images.images:
        return
    layout = cached_layout(cache)
    images.import_image(
        ImageImport(name=NAME, source=str(layout), format="oci", ref="latest"), builtin=True
    )


if __name__ == "__main__":  # scripts/setup: build the host's layout ahead of the first start
    sys.stdout.write(f"{cached_layout()}\n")
