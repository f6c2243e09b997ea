"""An image of the host's own ``nft`` (the program and the shared libraries it loads) plus
busybox: the root of the vFirewall chain function (:func:`fluidedge.chains.functions.firewall`).

Why: busybox has no nftables front end, and instances no longer see the host's ``/usr``.
Copying exactly ``nft`` and what ``ldd`` says it loads, as the ``python`` image does
(:mod:`.hostpython`), gives a firewall instance its tool and nothing else of the host: no
``/etc`` beyond busybox's passwd/group, no other program. The rules it loads are the
instance's own (``nft -f`` from its ``/.fe`` files), in its own network namespace.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from fluidedge.instances.images import tools
from fluidedge.instances.images.builtin import busybox_tree
from fluidedge.instances.images.hostpython import copy_into, ensure_host_image, libraries
from fluidedge.instances.images.store import ImageStore

NAME = "nft"
NFT = Path("/usr/sbin/nft")


def nft_tree(tree: Path, nft: Path = NFT) -> None:
    """The image's files in directory ``tree``."""
    if not nft.is_file():
        raise tools.ToolError(f"{nft} is missing: install nftables")
    busybox_tree(tree)
    binary = Path(os.path.realpath(nft))
    (tree / "usr" / "sbin").mkdir(parents=True)
    shutil.copy2(binary, tree / "usr" / "sbin" / "nft")
    for lib in libraries([binary]):
        copy_into(tree, lib)
    (tree / "lib").symlink_to("usr/lib")
    (tree / "lib64").symlink_to("usr/lib64")


def build_nft_layout(layout: Path, scratch: Path) -> None:
    """An OCI layout (tag ``nft``) of :func:`nft_tree`."""
    tree = scratch / "nft-tree"
    nft_tree(tree)
    tools.build_layout(layout, tree, NAME, ["--config.env=PATH=/usr/sbin:/bin"])


def ensure_nft(images: ImageStore) -> str:
    """Import the ``nft`` image unless the store has it; its name."""
    return ensure_host_image(images, NAME, build_nft_layout)
