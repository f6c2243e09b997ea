"""The image config (OCI image spec, ``config.md``) and what a template takes from it. Pure.

Fields read (image-spec v1.1 ``config`` object; a docker-archive's config has the same names):
``Entrypoint``, ``Cmd``, ``Env``, ``WorkingDir``, ``User``, ``ExposedPorts``. A template that
names an image inherits them unless it sets its own (:func:`apply_image`): ``command`` =
Entrypoint + Cmd, ``env`` = the image's overlaid by the template's, ``workdir``, ``user``,
``ports``. The image's rootfs is identified by its ChainID (image-spec ``config.md``, "Layer
ChainID"): it depends only on the uncompressed layer digests, so the same layers imported from
an OCI layout, an oci-archive or a docker-archive (recompressed, re-encoded config) unpack once.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from fluidedge.core.fields import decimal

_DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
_PORT_RE = re.compile(r"^(\d{1,5})(?:/(tcp|udp|sctp))?$")


class ImageError(ValueError):
    """The image (its index, manifest or config) is not one we can run; the text says why."""


class ImageConfig(BaseModel):
    """What an image says about running it (after normalisation)."""

    model_config = ConfigDict(extra="forbid")

    entrypoint: list[str] = Field(default_factory=list)
    cmd: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)
    workdir: str | None = None
    user: str | None = None
    ports: list[int] = Field(default_factory=list, description="exposed TCP ports")


def parse_config(doc: dict[str, Any], *, arch: str = "amd64") -> tuple[ImageConfig, list[str]]:
    """The normalised config and the layers' diff_ids of an image config document."""
    if not isinstance(doc, dict):
        raise ImageError("image config: not a JSON object")
    if doc.get("os", "linux") != "linux":
        raise ImageError(f"image config: os {doc.get('os')!r}, this host runs linux")
    if doc.get("architecture", arch) != arch:
        raise ImageError(f"image config: architecture {doc.get('architecture')!r}, host is {arch}")
    rootfs = doc.get("rootfs") or {}
    diff_ids = rootfs.get("diff_ids") or []
    if rootfs.get("type", "layers") != "layers" or not isinstance(diff_ids, list):
        raise ImageError("image config: rootfs must be of type 'layers'")
    for digest in diff_ids:
        if not isinstance(digest, str) or not _DIGEST_RE.match(digest):
            raise ImageError(f"image config: bad diff_id {digest!r} (sha256 only)")
    raw = doc.get("config") or {}
    env: dict[str, str] = {}
    for item in raw.get("Env") or []:
        key, sep, value = str(item).partition("=")
        if sep and key:
            env[key] = value
    ports = []
    for spec in raw.get("ExposedPorts") or {}:
        match = _PORT_RE.match(str(spec))
        if match is None or not 0 < int(match.group(1)) < 65536:
            raise ImageError(f"image config: bad exposed port {spec!r}")
        if match.group(2) in (None, "tcp"):
            ports.append(int(match.group(1)))
    config = ImageConfig(
        entrypoint=[str(a) for a in raw.get("Entrypoint") or []],
        cmd=[str(a) for a in raw.get("Cmd") or []],
        env=env,
        workdir=raw.get("WorkingDir") or None,
        user=raw.get("User") or None,
        ports=sorted(set(ports)),
    )
    return config, list(diff_ids)


def chain_id(diff_ids: list[str]) -> str:
    """The ChainID of a layer stack (image-spec ``config.md``): ``ChainID(L0) = DiffID(L0)``,
    ``ChainID(L0|..|Ln) = sha256(ChainID(L0|..|Ln-1) + " " + DiffID(Ln))``. An image with no
    layers gets the digest of the empty string."""
    if not diff_ids:
        return "sha256:" + hashlib.sha256(b"").hexdigest()
    chain = diff_ids[0]
    for diff in diff_ids[1:]:
        chain = "sha256:" + hashlib.sha256(f"{chain} {diff}".encode()).hexdigest()
    return chain


def default_command(config: ImageConfig) -> list[str]:
    """Entrypoint + Cmd (the OCI/Docker rule), or empty when the image names neither."""
    return [*config.entrypoint, *config.cmd]


def resolve_user(user: str | None, passwd: str, group: str) -> tuple[int, int]:
    """``User`` (``uid``, ``uid:gid``, ``name`` or ``name:group``) as numeric ids, names looked
    up in the image's own ``/etc/passwd`` and ``/etc/group`` texts."""
    if not user:
        return 0, 0
    name, _, grp = user.partition(":")
    users = _table(passwd)
    ids = _ids(name, users)
    if ids is None:
        raise ImageError(f"user {name!r} is not in the image's /etc/passwd")
    uid, gid = ids
    if grp:
        found = _table(group).get(grp, ["", "", ""])
        number = decimal(grp, 10)  # a number is an id, as runc reads it
        number = decimal(found[2], 10) if number is None else number
        if number is None:
            raise ImageError(f"group {grp!r} is not in the image's /etc/group")
        gid = number
    if not (0 <= uid < 65536 and 0 <= gid < 65536):
        raise ImageError(f"user {user!r}: ids must be below 65536 (the mapped range)")
    return uid, gid


def _ids(name: str, users: dict[str, list[str]]) -> tuple[int, int] | None:
    """(uid, gid) of ``name``: a number (its group that of the passwd entry with that uid, else
    the same number) or a passwd name whose fields are numbers; None when neither."""
    uid = decimal(name, 10)
    if uid is not None:
        mates = (decimal(f[3], 10) for f in users.values() if decimal(f[2], 10) == uid)
        return uid, next((g for g in mates if g is not None), uid)
    entry = users.get(name)
    if entry is None:
        return None
    uid, gid = decimal(entry[2], 10), decimal(entry[3], 10)
    return None if uid is None or gid is None else (uid, gid)


def _table(text: str) -> dict[str, list[str]]:
    rows = {}
    for line in text.splitlines():
        fields = line.split(":")
        if len(fields) >= 4 and fields[0]:
            rows[fields[0]] = fields
    return rows
