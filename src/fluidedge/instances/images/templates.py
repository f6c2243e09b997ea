"""A template that names an image, completed from the image's config. Pure.

What the template states wins; what it omits comes from the image (the Docker/OCI rules):
``command`` = Entrypoint + Cmd, ``env`` = the image's Env overlaid by the template's,
``workdir`` = WorkingDir, ``user`` = User (resolved to numeric ids at import, against the
image's own ``/etc/passwd``), ``ports`` = ExposedPorts (TCP). The result is validated again as
a whole (the launcher's limits, an absolute ``command[0]``), so an image cannot smuggle in what
a request could not.
"""

from __future__ import annotations

from pydantic import ValidationError

from fluidedge.instances.errors import InvalidRequest
from fluidedge.instances.images.config import default_command
from fluidedge.instances.images.store import ImageView
from fluidedge.instances.models import TemplateSpec


def apply_image(spec: TemplateSpec, image: ImageView) -> TemplateSpec:
    """``spec`` with what it omits taken from ``image`` (400 if it still has no command)."""
    config = image.config
    command = spec.command or default_command(config)
    if not command:
        raise InvalidRequest(
            f"command: template {spec.name} names none and image {image.name} has no "
            "Entrypoint or Cmd"
        )
    user = spec.user
    if user is None and (image.uid, image.gid) != (0, 0):
        user = f"{image.uid}:{image.gid}"
    data = spec.model_dump()
    data.update(
        command=command,
        env={**config.env, **spec.env},
        workdir=spec.workdir or config.workdir,
        user=user,
        ports=spec.ports or config.ports,
    )
    try:
        return TemplateSpec.model_validate(data)
    except ValidationError as exc:
        raise InvalidRequest(f"template {spec.name} with image {image.name}: {exc}") from exc


def user_ids(spec: TemplateSpec) -> tuple[int, int]:
    """The numeric uid/gid the template's process runs as inside (``uid[:gid]``, gid = uid)."""
    if not spec.user:
        return 0, 0
    uid, _, gid = spec.user.partition(":")
    return int(uid), int(gid or uid)
