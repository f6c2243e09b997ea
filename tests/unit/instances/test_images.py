"""Images, pure parts: the image config's mapping to a template, ChainIDs, users, id ranges."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from fluidedge.instances.errors import InvalidRequest
from fluidedge.instances.images import userns
from fluidedge.instances.images.config import (
    ImageConfig,
    ImageError,
    chain_id,
    parse_config,
    resolve_user,
)
from fluidedge.instances.images.store import ImageImport, ImageView
from fluidedge.instances.images.templates import apply_image, user_ids
from fluidedge.instances.models import TemplateSpec

L1 = "sha256:" + "a" * 64
L2 = "sha256:" + "b" * 64
DOC = {
    "architecture": "amd64",
    "os": "linux",
    "config": {
        "User": "1000:1000",
        "ExposedPorts": {"8080/tcp": {}, "53/udp": {}, "9000": {}},
        "Env": ["FOO=bar", "PATH=/bin", "EMPTY="],
        "Entrypoint": ["/bin/busybox"],
        "Cmd": ["httpd", "-f"],
        "WorkingDir": "/srv",
    },
    "rootfs": {"type": "layers", "diff_ids": [L1, L2]},
}


def _view(config: ImageConfig, uid: int = 0, gid: int = 0) -> ImageView:
    return ImageView(
        name="web",
        digest="sha256:" + "0" * 64,
        rootfs=chain_id([L1]),
        config=config,
        uid=uid,
        gid=gid,
        size_bytes=1,
        format="oci",
        imported_at=0.0,
    )


def test_parse_config_maps_every_field() -> None:
    config, diff_ids = parse_config(DOC)
    assert config.entrypoint == ["/bin/busybox"]
    assert config.cmd == ["httpd", "-f"]
    assert config.env == {"FOO": "bar", "PATH": "/bin", "EMPTY": ""}
    assert config.workdir == "/srv"
    assert config.user == "1000:1000"
    assert config.ports == [8080, 9000]  # TCP only (no protocol means tcp)
    assert diff_ids == [L1, L2]


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"os": "windows"}, "os"),
        ({"architecture": "arm64"}, "architecture"),
        ({"rootfs": {"type": "layers", "diff_ids": ["md5:x"]}}, "diff_id"),
        ({"config": {"ExposedPorts": {"99999/tcp": {}}}}, "exposed port"),
    ],
)
def test_parse_config_refuses_what_cannot_run(change: dict[str, object], reason: str) -> None:
    with pytest.raises(ImageError, match=reason):
        parse_config({**DOC, **change})


def test_chain_id_follows_the_image_spec() -> None:
    assert chain_id([L1]) == L1
    two = "sha256:" + hashlib.sha256(f"{L1} {L2}".encode()).hexdigest()
    assert chain_id([L1, L2]) == two
    assert chain_id([L2, L1]) != two  # order matters: a stack, not a set


def test_resolve_user_by_number_and_by_name() -> None:
    passwd = "root:x:0:0::/:/bin/sh\nweb:x:1000:1001::/srv:/bin/false\n"  # noqa: S105 (an /etc/passwd text)
    group = "root:x:0:\nwww:x:33:\n"
    assert resolve_user(None, passwd, group) == (0, 0)
    assert resolve_user("web", passwd, group) == (1000, 1001)
    assert resolve_user("1000", passwd, group) == (1000, 1001)
    assert resolve_user("2000", passwd, group) == (2000, 2000)
    assert resolve_user("web:www", passwd, group) == (1000, 33)
    assert resolve_user("5:7", passwd, group) == (5, 7)
    with pytest.raises(ImageError, match="not in the image's /etc/passwd"):
        resolve_user("nobody", passwd, group)
    with pytest.raises(ImageError, match="below 65536"):
        resolve_user("70000", passwd, group)


def test_resolve_user_refuses_digits_that_are_not_ascii() -> None:
    """A hostile image's ``User`` or ``/etc/passwd`` with ``²`` (``isdigit`` but not ``int``)
    or ``١٢`` (``int`` reads 12) is an ImageError naming it, never a crash or a guessed id."""
    passwd = "root:x:0:0::/:/bin/sh\nodd:x:\u00b2:0::/:/bin/sh\nweb:x:1000:\u0661::/:/x\n"  # noqa: S105
    group = "root:x:0:\nsup:x:\u00b3:\n"
    for user in ("\u00b2", "\u0661\u0662", "odd", "web", "root:\u00b2", "root:sup"):
        with pytest.raises(ImageError, match="is not in the image's"):
            resolve_user(user, passwd, group)
    assert resolve_user("0:0", passwd, group) == (0, 0)


def test_template_takes_what_it_omits_from_the_image() -> None:
    config, _ = parse_config(DOC)
    spec = TemplateSpec.model_validate({"name": "web", "image": "web", "env": {"FOO": "mine"}})
    done = apply_image(spec, _view(config, 1000, 1000))
    assert done.command == ["/bin/busybox", "httpd", "-f"]
    assert done.env == {"FOO": "mine", "PATH": "/bin", "EMPTY": ""}
    assert (done.workdir, done.user, done.ports) == ("/srv", "1000:1000", [8080, 9000])
    assert user_ids(done) == (1000, 1000)
    own = TemplateSpec.model_validate(
        {"name": "web", "image": "web", "command": ["/bin/x"], "user": "0", "workdir": "/"}
    )
    kept = apply_image(own, _view(config, 1000, 1000))
    assert (kept.command, kept.user, kept.workdir) == (["/bin/x"], "0", "/")


def test_template_without_command_on_an_image_without_one_is_refused() -> None:
    spec = TemplateSpec.model_validate({"name": "web", "image": "web"})
    with pytest.raises(InvalidRequest, match="Entrypoint or Cmd"):
        apply_image(spec, _view(ImageConfig()))
    relative = ImageConfig(cmd=["httpd"])
    with pytest.raises(InvalidRequest, match="absolute"):
        apply_image(spec, _view(relative))


@pytest.mark.parametrize(
    "source", ["relative/path", "/with:colon", "/nul\0byte", "docker://busybox"]
)
def test_import_source_must_be_a_plain_absolute_path(source: str) -> None:
    with pytest.raises(ValueError, match="absolute path"):
        ImageImport(name="x", source=source)


def test_import_format_is_one_of_three() -> None:
    with pytest.raises(ValueError, match="format"):
        ImageImport.model_validate({"name": "x", "source": "/x", "format": "docker"})


def test_userns_slots_are_disjoint_and_skip_the_image_range() -> None:
    base = userns.DEFAULT_BASE
    assert userns.allocate([]) == 1
    assert userns.allocate([1, 2, 4]) == 3
    first, second = userns.slot_base(base, 1), userns.slot_base(base, 2)
    assert second - first == userns.RANGE
    assert first >= userns.image_base(base) + userns.RANGE  # never the images' range
    assert userns.slot_of(base, first + 1000) == 1
    with pytest.raises(ValueError, match="image range"):
        userns.slot_base(base, 0)
    with pytest.raises(ValueError, match="in use"):
        userns.allocate([1, 2], limit=2)
    assert userns.slot_base(base, userns.MAX_SLOTS) + userns.RANGE <= 1 << 31


def test_import_of_an_unreachable_path_is_not_found(tmp_path: Path) -> None:
    from fluidedge.core.store import Store
    from fluidedge.instances.errors import ImageSourceNotFound
    from fluidedge.instances.images.store import ImageStore

    store = ImageStore(Store(tmp_path / "db.sqlite"), tmp_path / "images", 1 << 30, 65536)
    store.load()
    for source in ("/" + "0" * 4000, str(tmp_path / "missing"), "/etc/passwd/x"):
        with pytest.raises(ImageSourceNotFound, match="does not exist"):
            store.import_image(ImageImport(name="x", source=source))


@pytest.mark.parametrize(
    "ref", ["v1", "app:2", "registry.example:5000/team/app:1.2", "@0", "@12", "app@x"]
)
def test_ref_takes_tags_docker_references_and_indexes(ref: str) -> None:
    assert ImageImport(name="x", source="/tmp/a.tar", ref=ref).ref == ref


@pytest.mark.parametrize(
    "ref", ["", "-x", "--all", "a b", "a;b", "@", "@-1", "@x", "a\nb", "ab\n", "x" * 256]
)
def test_ref_refuses_what_skopeo_could_take_as_something_else(ref: str) -> None:
    with pytest.raises(ValueError, match="ref"):
        ImageImport(name="x", source="/tmp/a.tar", ref=ref)
