"""The ``busybox`` image the built-in templates run, built from Debian's busybox-static.

Built at first start (setup installs busybox-static and umoci) into an OCI layout and imported
through the same path as any user image: ``/bin/busybox`` (static, so no host library comes
along), a symlink per applet in ``/bin`` (so ``PATH`` lookups work), and an ``/etc/passwd`` and
``/etc/group`` naming root and nobody. Nothing else of the host is in it.
"""

from __future__ import annotations

import os
import secrets
import shutil
from pathlib import Path

from fluidedge.instances.images import tools
from fluidedge.instances.images.store import ImageImport, ImageStore
from fluidedge.linux.proc import CommandError, run

NAME = "busybox"
BUSYBOX = Path("/bin/busybox")
PASSWD = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n"  # noqa: S105 (no password: x)
GROUP = "root:x:0:\nnogroup:x:65534:\n"


def busybox_tree(tree: Path, busybox: Path = BUSYBOX) -> None:
    """The image's files in directory ``tree``."""
    for sub in ("bin", "etc", "tmp", "root", "var/www"):
        (tree / sub).mkdir(parents=True, exist_ok=True)
    os.chmod(tree / "tmp", 0o1777)  # noqa: S103 (the image's /tmp)
    shutil.copyfile(busybox, tree / "bin" / "busybox")
    os.chmod(tree / "bin" / "busybox", 0o755)  # noqa: S103 (a program)
    try:
        applets = run([str(busybox), "--list"]).stdout.split()
    except CommandError as exc:
        raise tools.ToolError(f"{busybox} --list: {exc}") from exc
    for applet in applets:
        if applet != "busybox" and applet.replace("-", "").replace("_", "").isalnum():
            (tree / "bin" / applet).symlink_to("busybox")
    (tree / "etc" / "passwd").write_text(PASSWD)
    (tree / "etc" / "group").write_text(GROUP)


def ensure_busybox(images: ImageStore) -> None:
    """Import the ``busybox`` image unless the store already has it."""
    if NAME in images.images:
        return
    if not BUSYBOX.is_file():
        raise tools.ToolError(f"{BUSYBOX} is missing: install busybox-static")
    scratch = images.root / "tmp" / ("build-" + secrets.token_hex(6))
    try:
        scratch.mkdir(mode=0o700, parents=True)
        tree, layout = scratch / "tree", scratch / "layout"
        busybox_tree(tree)
        tools.build_layout(layout, tree, "latest", ["--config.cmd=/bin/sh"])
        images.import_image(
            ImageImport(name=NAME, source=str(layout), format="oci", ref="latest"), builtin=True
        )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
