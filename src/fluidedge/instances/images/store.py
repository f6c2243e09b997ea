"""The image store: imported images by name, their rootfs unpacked once, content-addressed.

Layout under the part's state directory (0700, root only; never mounted into an instance
except as an overlay's read-only lower layer)::

    images/rootfs/<chainid-hex>/   the unpacked root of a layer stack (ids in the image range)
    images/tmp/<random>/           an import in progress (skopeo's layout, umoci's unpack)

An import converts any accepted format to an OCI layout (skopeo), reads its config, and
unpacks (umoci) only if no image with the same ChainID was unpacked before; the rootfs is moved
into place with one ``rename`` so a crash never leaves a half-unpacked root under its final
name. Rows (name -> record) live in the SQLite table ``inst_images``; the store is restored from
it at start. Removing an image the caller reports as used is refused (:class:`InUse`, 409).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import secrets
import shutil
import sqlite3
import stat
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from fluidedge.core import rows
from fluidedge.core.store import Store
from fluidedge.instances.errors import (
    ImageNotFound,
    ImageSourceNotFound,
    ImageUnusable,
    InUse,
    NameInUse,
    RuntimeFailure,
)
from fluidedge.instances.images import tools
from fluidedge.instances.images.config import (
    ImageConfig,
    ImageError,
    chain_id,
    parse_config,
    resolve_user,
)
from fluidedge.instances.models import NAME_PATTERN
from fluidedge.instances.private import private_dir

log = logging.getLogger("fluidedge.instances")

MIGRATIONS = [
    "CREATE TABLE inst_images (name TEXT PRIMARY KEY, record TEXT NOT NULL)",
]
MAX_PATH = 4096
# A tag (``v1``), a docker reference (``registry.example/app:1.2``) or an index (``@1``): the
# characters skopeo's local transports take after the path, never a leading '-'.
REF_PATTERN = r"^(@[0-9]{1,4}|[A-Za-z0-9_][A-Za-z0-9_.:/@-]{0,254})$"
# skopeo's words for an archive of several images read without a ref
_SEVERAL = "expected 1 item, got "


class ImageImport(BaseModel):
    """``POST /v1/images``: import a local image (a path on the daemon's host) under ``name``."""

    model_config = ConfigDict(extra="forbid", strict=True)

    name: str = Field(pattern=NAME_PATTERN, description="lower-case name, <= 32 chars")
    source: str = Field(
        max_length=MAX_PATH,
        description="absolute path on the daemon's host: an OCI image layout directory, or an "
        "oci-archive / docker-archive tar file",
        json_schema_extra={"pattern": r"^/[^:\x00]*$"},
    )
    format: Literal["oci", "oci-archive", "docker-archive"] = "oci"
    ref: str | None = Field(
        default=None,
        pattern=REF_PATTERN,
        description="which image of the layout or archive, when it holds several: a tag of an "
        "OCI layout or oci-archive; NAME:TAG or @INDEX (from 0) of a docker-archive, as "
        "`docker save` of several images writes one",
    )

    @field_validator("source")
    @classmethod
    def _source(cls, value: str) -> str:
        if not value.startswith("/") or "\0" in value or ":" in value:
            raise ValueError("source must be an absolute path without ':'")
        return value


class ImageView(BaseModel):
    """An image in the store."""

    model_config = ConfigDict(extra="forbid")

    name: str
    digest: str = Field(description="digest of the image config as stored")
    rootfs: str = Field(description="ChainID of the layers: the unpacked root it shares")
    config: ImageConfig
    uid: int = Field(description="numeric uid of config.user (0 if none)")
    gid: int
    size_bytes: int
    format: str
    builtin: bool = False
    imported_at: float


_NAME = re.compile(NAME_PATTERN)
_CHAIN_ID = re.compile(r"^sha256:[0-9a-f]{64}$")


def _stored_image(row: sqlite3.Row) -> ImageView:
    """A stored image, its name and rootfs checked before the rootfs becomes a path (a row
    that fails is set aside: :mod:`fluidedge.core.rows`)."""
    view = ImageView.model_validate(rows.json_object(row, "record", "name"))
    if not _NAME.match(view.name):
        raise ValueError(f"name {view.name!r} is not an image name of its row")
    if not _CHAIN_ID.match(view.rootfs):
        raise ValueError(f"rootfs {view.rootfs!r} is not a sha256 ChainID")
    return view


def _regular_text(root: Path, rel: str) -> str:
    """A small regular file of the image (no symlink followed: it could point at the host)."""
    path = root
    for part in rel.split("/"):
        path = path / part
        try:
            info = path.lstat()
        except OSError:
            return ""
        if stat.S_ISLNK(info.st_mode):
            return ""
    if not stat.S_ISREG(info.st_mode) or info.st_size > 1 << 20:
        return ""
    return path.read_text(errors="replace")


def _tree_size(root: Path) -> int:
    total = 0
    for dirpath, _, files in os.walk(root):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(dirpath, name)).st_size
    return total


class ImageStore:
    """Images by name; ``rootfs_of`` is what a shell's overlay mounts as its lower layer."""

    def __init__(self, store: Store, root: Path, image_base: int, range_size: int) -> None:
        self.store = store
        self.root = root
        self.image_base = image_base
        self.range_size = range_size
        store.migrate("images", MIGRATIONS)
        self.images: dict[str, ImageView] = {}
        self._lock = threading.Lock()
        self._importing: set[str] = set()

    # ------------------------------------------------------------------ lifecycle
    def load(self) -> None:
        private_dir(self.root, parents=True)
        private_dir(self.root / "rootfs")
        shutil.rmtree(self.root / "tmp", ignore_errors=True)  # imports cut short by a crash
        private_dir(self.root / "tmp")
        for view in rows.load(
            self.store,
            "inst_images",
            ("record",),
            _stored_image,
            order=("name",),
        ):
            if not self.rootfs_of_view(view).is_dir():
                log.warning(
                    "image %s: its rootfs %s is missing; re-import it",
                    view.name,
                    view.rootfs,
                    extra={"part": "instances", "event": "image_missing", "ids": view.name},
                )
            self.images[view.name] = view

    def rootfs_of_view(self, view: ImageView) -> Path:
        return self.root / "rootfs" / view.rootfs.removeprefix("sha256:")

    def rootfs_of(self, name: str) -> Path:
        return self.rootfs_of_view(self.get(name))

    # ------------------------------------------------------------------ queries
    def get(self, name: str) -> ImageView:
        view = self.images.get(name)
        if view is None:
            raise ImageNotFound(f"image {name!r} does not exist")
        return view

    def all(self) -> list[ImageView]:
        return [self.images[name] for name in sorted(self.images)]

    # ------------------------------------------------------------------ import / remove
    def import_image(self, request: ImageImport, *, builtin: bool = False) -> ImageView:
        """Import ``request.source``; 400 if it is not a runnable image, 409 if the name is
        taken. Blocks for as long as skopeo and umoci take (seconds): call it off the loop."""
        source = Path(request.source)
        try:
            source.stat()
        except OSError as exc:  # ENOENT, ENOTDIR, ENAMETOOLONG, ELOOP, EACCES...
            raise ImageSourceNotFound(f"source: {source} does not exist ({exc.strerror})") from exc
        if source.parts[1:2] in (("proc",), ("sys",), ("dev",)):
            raise ImageUnusable(f"source: {source} is not an image (a kernel file)")
        if request.format == "oci" and not (source / "index.json").is_file():
            raise ImageUnusable(f"source: {source} is not an OCI image layout (no index.json)")
        if request.format != "oci" and not source.is_file():
            raise ImageUnusable(f"source: {source} is not a file")
        with self._lock:
            if request.name in self.images or request.name in self._importing:
                raise NameInUse(f"image {request.name!r} already exists")
            self._importing.add(request.name)
        scratch = self.root / "tmp" / secrets.token_hex(6)
        try:
            private_dir(scratch, parents=True)
            layout = scratch / "layout"
            try:
                tools.to_layout(request.format, source, request.ref, layout, scratch)
            except tools.ToolError as exc:
                hint = ""
                if _SEVERAL in str(exc) and request.ref is None:
                    hint = " (it holds several images: name one with ref, NAME:TAG or @INDEX)"
                raise ImageUnusable(
                    f"source: cannot read {request.format} {source}{hint}: {exc}"
                ) from exc
            try:
                config, diff_ids, digest = self._read_layout(layout)
            except ImageError as exc:
                raise ImageUnusable(str(exc)) from exc
            chain = chain_id(diff_ids)
            final = self.root / "rootfs" / chain.removeprefix("sha256:")
            if not final.is_dir():
                unpacked = scratch / "rootfs"
                try:
                    tools.unpack(layout, unpacked, self.image_base, self.range_size)
                except tools.ToolError as exc:
                    raise ImageUnusable(f"source: cannot unpack {source}: {exc}") from exc
                os.chmod(unpacked, 0o755)  # noqa: S103 (inside the 0700 store: the image's /)
                with contextlib.suppress(FileExistsError, OSError):
                    os.rename(unpacked, final)  # a concurrent import of the same layers won
                if not final.is_dir():
                    raise RuntimeFailure(f"image store: cannot place {final}")
            try:
                uid, gid = resolve_user(
                    config.user,
                    _regular_text(final, "etc/passwd"),
                    _regular_text(final, "etc/group"),
                )
            except ImageError as exc:
                raise ImageUnusable(f"image config: {exc}") from exc
            view = ImageView(
                name=request.name,
                digest=digest,
                rootfs=chain,
                config=config,
                uid=uid,
                gid=gid,
                size_bytes=_tree_size(final),
                format=request.format,
                builtin=builtin,
                imported_at=time.time(),
            )
            with self.store.transaction() as conn:
                conn.execute(
                    "INSERT OR REPLACE INTO inst_images (name, record) VALUES (?, ?)",
                    (view.name, view.model_dump_json()),
                )
            with self._lock:
                self.images[view.name] = view
            log.info(
                "image %s imported (%s, rootfs %s)",
                view.name,
                request.format,
                chain[:19],
                extra={"part": "instances", "event": "image_imported", "ids": view.name},
            )
            return view
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
            with self._lock:
                self._importing.discard(request.name)

    def _read_layout(self, layout: Path) -> tuple[ImageConfig, list[str], str]:
        def blob(digest: str) -> dict[str, Any]:
            algo, _, hexa = digest.partition(":")
            if algo != "sha256" or len(hexa) != 64 or not hexa.isalnum():
                raise ImageError(f"unsupported digest {digest!r}")
            data: dict[str, Any] = json.loads((layout / "blobs" / algo / hexa).read_bytes())
            return data

        try:
            index = json.loads((layout / "index.json").read_bytes())
            manifests = index.get("manifests") or []
            if len(manifests) != 1:
                raise ImageError(f"expected one image, the layout holds {len(manifests)}")
            manifest = blob(manifests[0]["digest"])
            digest = manifest["config"]["digest"]
            config, diff_ids = parse_config(blob(digest))
        except (OSError, KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, ImageError):
                raise
            raise ImageError(f"malformed image: {exc}") from exc
        return config, diff_ids, str(digest)

    def remove(self, name: str, users: Callable[[str], list[str]]) -> None:
        """Remove image ``name`` unless ``users(name)`` names templates/instances using it."""
        with self._lock:
            view = self.get(name)
            using = users(name)
            if using:
                raise InUse(f"image {name} is used by {', '.join(using[:10])}")
            del self.images[name]
            shared = any(v.rootfs == view.rootfs for v in self.images.values())
        with self.store.transaction() as conn:
            conn.execute("DELETE FROM inst_images WHERE name = ?", (name,))
        if not shared:
            # Moved aside first: a removal cut short never leaves a partial root in place.
            doomed = self.root / "tmp" / ("rm-" + secrets.token_hex(6))
            with contextlib.suppress(OSError):
                os.rename(self.rootfs_of_view(view), doomed)
            shutil.rmtree(doomed, ignore_errors=True)
        log.info(
            "image %s removed",
            name,
            extra={"part": "instances", "event": "image_removed", "ids": name},
        )
