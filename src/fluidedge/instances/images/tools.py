"""Thin adapters over Debian's ``skopeo`` (format conversion) and ``umoci`` (unpack, build).

Why these tools: both are well kept (containers/skopeo, opencontainers/umoci), packaged in
Debian 12, and handle the parts that are easy to get wrong by hand (layer media types and
compression, whiteouts, hard links, device nodes, path escapes in tar members). Only local
transports are ever built here (``oci:``, ``oci-archive:``, ``docker-archive:``), from a format
chosen in a closed set: no registry is contacted, and no argument comes from user data except
a validated absolute path. skopeo gets an explicit accept-anything signature policy (signatures
only matter for registries) so it does not depend on the host's ``/etc/containers``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from fluidedge.linux.proc import CommandError, run

Format = Literal["oci", "oci-archive", "docker-archive"]
FORMATS: tuple[str, ...] = ("oci", "oci-archive", "docker-archive")
REF = "img"  # the one tag in the store's scratch layouts
IMPORT_TIMEOUT = 600.0
POLICY = {"default": [{"type": "insecureAcceptAnything"}]}


class ToolError(RuntimeError):
    """skopeo or umoci failed (their stderr in the text) or is not installed."""


def _run(argv: list[str], timeout: float = IMPORT_TIMEOUT) -> str:
    try:
        return run(argv, timeout=timeout).stdout
    except CommandError as exc:
        raise ToolError(str(exc)) from exc


def source_ref(fmt: Format, path: Path, ref: str | None) -> str:
    """The skopeo source reference of a local image (``ref``: a tag inside it, if several)."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}")
    return f"{fmt}:{path}" + (f":{ref}" if ref else "")


def to_layout(fmt: Format, path: Path, ref: str | None, layout: Path, scratch: Path) -> None:
    """Copy the image into a fresh OCI layout ``layout`` tagged :data:`REF`."""
    copy_image(fmt, path, ref, f"oci:{layout}:{REF}", scratch)


def unpack(layout: Path, rootfs: Path, host_base: int, size: int) -> None:
    """Unpack the layout's :data:`REF` image into ``rootfs``, image ids shifted by
    ``host_base`` (ids 0..size-1 of the image become host ids host_base..)."""
    mapping = f"0:{host_base}:{size}"
    _run(
        [
            "umoci",
            "raw",
            "unpack",
            "--uid-map",
            mapping,
            "--gid-map",
            mapping,
            "--image",
            f"{layout}:{REF}",
            str(rootfs),
        ]
    )


def build_layout(layout: Path, tree: Path, ref: str, config: list[str]) -> None:
    """A one-layer OCI layout from directory ``tree`` (its contents at ``/``); ``config`` are
    ``umoci config`` options (``--config.cmd=...``)."""
    image = f"{layout}:{ref}"
    _run(["umoci", "init", "--layout", str(layout)])
    _run(["umoci", "new", "--image", image])
    _run(["umoci", "insert", "--image", image, str(tree), "/"])
    if config:
        _run(["umoci", "config", "--image", image, *config])


def copy_image(src_fmt: Format, src: Path, src_ref: str | None, dst: str, scratch: Path) -> None:
    """Copy a local image to ``dst`` (a skopeo destination such as ``oci-archive:/x.tar``)."""
    policy = scratch / "policy.json"
    policy.write_text(json.dumps(POLICY))
    _run(
        [
            "skopeo",
            "--policy",
            str(policy),
            "copy",
            "--quiet",
            source_ref(src_fmt, src, src_ref),
            dst,
        ]
    )
