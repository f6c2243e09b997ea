"""Images for real: built locally with umoci, imported with skopeo + umoci in all three formats,
stored once per layer stack, run as instances (overlay roots, user namespaces), protected while
in use, restored after a restart. No registry is contacted (there is none to reach)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from fluidedge.core.store import Store
from fluidedge.instances.errors import (
    ImageNotFound,
    ImageSourceNotFound,
    ImageUnusable,
    InUse,
    NameInUse,
)
from fluidedge.instances.images import tools
from fluidedge.instances.images.builtin import busybox_tree
from fluidedge.instances.images.store import ImageImport
from fluidedge.instances.manager import InstancesConfig, Manager
from fluidedge.instances.models import InstanceRequest, Readiness, TemplateSpec
from tests.fixtures.images import APP_PAGE, APP_PORT, AppImage, several_images_archive
from tests.fixtures.wait import wait_for

from .conftest import ManagerFactory, in_netns

pytestmark = pytest.mark.root


def _import_all(manager: Manager, app: AppImage) -> None:
    manager.images.import_image(ImageImport(name="app", source=str(app.layout), ref="app"))
    manager.images.import_image(
        ImageImport(name="app-oci", source=str(app.oci_archive), format="oci-archive")
    )
    manager.images.import_image(
        ImageImport(name="app-docker", source=str(app.docker_archive), format="docker-archive")
    )


def test_three_formats_one_rootfs_and_the_config_mapped(
    manager_factory: ManagerFactory, app_image: AppImage
) -> None:
    manager = manager_factory(pool_scale=0, builtin_templates=False)
    _import_all(manager, app_image)
    views = {v.name: v for v in manager.images.all()}
    assert set(views) == {"busybox", "app", "app-oci", "app-docker"}
    # Same layers whatever the format (the docker-archive re-encodes the config): one root.
    assert len({views[n].rootfs for n in ("app", "app-oci", "app-docker")}) == 1
    assert views["app"].rootfs != views["busybox"].rootfs
    roots = list((manager.state_dir / "images" / "rootfs").iterdir())
    assert len(roots) == 2  # busybox and app
    for view in views.values():
        if view.name == "busybox":
            continue
        config = view.config
        assert config.entrypoint == ["/bin/busybox"]
        assert config.cmd == ["httpd", "-f", f"-p{APP_PORT}", "-h/srv/www"]
        assert config.env["GREETING"] == "hello from the image"
        assert (config.workdir, config.user, config.ports) == ("/srv", "app", [APP_PORT])
        assert (view.uid, view.gid) == (1000, 1000)  # "app" looked up in the image's passwd
    # The store is root's alone, and the image's files are in the image range, not host ids.
    store = manager.state_dir / "images"
    assert stat.S_IMODE(store.stat().st_mode) == 0o700
    busybox = manager.images.rootfs_of("app") / "bin" / "busybox"
    assert busybox.stat().st_uid == manager.config.userns_base
    page = manager.images.rootfs_of("app") / "srv" / "www" / "index.html"
    assert page.stat().st_uid == manager.config.userns_base + 1000


def test_instance_runs_the_image_as_its_user(
    manager_factory: ManagerFactory, app_image: AppImage
) -> None:
    manager = manager_factory(pool_scale=1, builtin_templates=False)
    manager.images.import_image(
        ImageImport(name="app", source=str(app_image.docker_archive), format="docker-archive")
    )
    template = manager.create_template(
        TemplateSpec(
            name="web",
            image="app",
            readiness=Readiness(kind="tcp", port=APP_PORT),
            env={"EXTRA": "1"},
        )
    )
    # The template took what it did not say from the image.
    assert template.command[0] == "/bin/busybox"
    assert (template.user, template.workdir, template.ports) == ("1000:1000", "/srv", [APP_PORT])
    assert template.env == {"GREETING": "hello from the image", "EXTRA": "1"}
    assert manager.wait_pools(60), manager.pool_status()
    inst = manager.create_instance(InstanceRequest(name="web1", template="web"))
    assert inst.path == "warm"
    got = in_netns(
        inst.pid or 0, "busybox", "wget", "-q", "-O", "-", f"http://127.0.0.1:{APP_PORT}/index.html"
    )
    assert got.stdout == APP_PAGE, got
    environ = Path(f"/proc/{inst.pid}/environ").read_bytes().split(b"\0")
    assert b"GREETING=hello from the image" in environ
    status = Path(f"/proc/{inst.pid}/status").read_text()
    uid = int(next(ln for ln in status.splitlines() if ln.startswith("Uid:")).split()[1])
    assert uid >= manager.config.userns_base + 65536 + 1000  # app (1000) in its own range
    assert (uid - manager.config.userns_base) % 65536 == 1000
    # A request's own command runs the same way: in WorkingDir, as User.
    probe = manager.create_instance(
        InstanceRequest(
            name="probe",
            template="web",
            command=["/bin/sh", "-c", "echo cwd=$(pwd) uid=$(id -u); sleep 1000"],
            wait_ready=False,
        )
    )
    wait_for(lambda: "cwd=" in manager.logs("probe"), 30, "the probe's output")
    assert "cwd=/srv uid=1000" in manager.logs("probe"), manager.logs("probe")
    assert probe.pid != inst.pid


def test_image_in_use_is_kept_and_errors_are_clear(
    manager_factory: ManagerFactory, app_image: AppImage, tmp_path: Path
) -> None:
    manager = manager_factory(pool_scale=0, builtin_templates=False)
    manager.images.import_image(ImageImport(name="app", source=str(app_image.layout), ref="app"))
    with pytest.raises(NameInUse):
        manager.images.import_image(
            ImageImport(name="app", source=str(app_image.layout), ref="app")
        )
    with pytest.raises(ImageSourceNotFound):
        manager.images.import_image(ImageImport(name="nope", source=str(tmp_path / "missing")))
    junk = tmp_path / "junk.tar"
    junk.write_bytes(b"not a tar at all")
    with pytest.raises(ImageUnusable, match="cannot read"):
        manager.images.import_image(
            ImageImport(name="junk", source=str(junk), format="docker-archive")
        )
    assert {v.name for v in manager.images.all()} == {"busybox", "app"}
    with pytest.raises(ImageNotFound):
        manager.create_template(TemplateSpec(name="t", image="absent", command=["/bin/true"]))
    manager.create_template(TemplateSpec(name="web", image="app"))
    manager.create_instance(InstanceRequest(name="w", template="web", wait_ready=False))
    with pytest.raises(InUse, match=r"template web.*instance w"):
        manager.remove_image("app")
    manager.delete_instance("w")
    with pytest.raises(InUse, match="template web"):
        manager.remove_image("app")
    rootfs = manager.images.rootfs_of("app")
    manager.delete_template("web")
    manager.remove_image("app")
    assert not rootfs.exists()
    assert {v.name for v in manager.images.all()} == {"busybox"}


def test_images_survive_a_restart(
    manager_factory: ManagerFactory, app_image: AppImage, tmp_path: Path
) -> None:
    manager = manager_factory(pool_scale=0, builtin_templates=False)
    manager.images.import_image(ImageImport(name="app", source=str(app_image.layout), ref="app"))
    manager.stop()
    again = Manager(
        InstancesConfig(pool_scale=0, builtin_templates=False),
        Store(tmp_path / "db0.sqlite"),
        manager.state_dir,
    )
    again.start()
    try:
        assert {v.name for v in again.images.all()} == {"busybox", "app"}
        assert again.images.get("app").rootfs == manager.images.get("app").rootfs
        again.create_template(TemplateSpec(name="web", image="app"))
        inst = again.create_instance(InstanceRequest(name="w", template="web", wait_ready=False))
        assert Path(f"/proc/{inst.pid}/root/srv/www/index.html").read_text() == APP_PAGE
    finally:
        again.purge()


def test_the_builtin_image_has_its_modes_whatever_the_builders_umask(tmp_path: Path) -> None:
    """The layer records the modes the tree holds: under the unit's UMask=0077 the tree's
    directories were 0700 and no workload could run (execve: Permission denied)."""
    tree = tmp_path / "tree"
    previous = os.umask(0o077)
    try:
        busybox_tree(tree)
    finally:
        os.umask(previous)
    modes = {
        rel: stat.S_IMODE((tree / rel).stat().st_mode)
        for rel in ("", "bin", "bin/busybox", "etc", "etc/passwd", "etc/group", "tmp", "var/www")
    }
    assert modes == {
        "": 0o755,
        "bin": 0o755,
        "bin/busybox": 0o755,
        "etc": 0o755,
        "etc/passwd": 0o644,
        "etc/group": 0o644,
        "tmp": 0o1777,
        "var/www": 0o755,
    }


def test_an_archive_of_several_images_imports_the_one_named(
    manager_factory: ManagerFactory, app_image: AppImage, tmp_path: Path
) -> None:
    """``docker save app:latest tool:2 -o all.tar``: without ``ref`` the import is refused with
    the hint; ``NAME:TAG`` and ``@INDEX`` pick one."""
    tree = tmp_path / "tree"
    busybox_tree(tree)
    tools.build_layout(tmp_path / "tool", tree, "tool", ["--config.cmd=/bin/true"])
    tool_archive = tmp_path / "tool.tar"
    tools.copy_image(
        "oci", tmp_path / "tool", "tool", f"docker-archive:{tool_archive}:tool:2", tmp_path
    )
    both = tmp_path / "all.tar"
    several_images_archive([app_image.docker_archive, tool_archive], both)
    manager = manager_factory(pool_scale=0, builtin_templates=False)
    with pytest.raises(ImageUnusable, match="holds several images: name one with ref"):
        manager.images.import_image(
            ImageImport(name="x", source=str(both), format="docker-archive")
        )
    tool = manager.images.import_image(
        ImageImport(name="tool", source=str(both), format="docker-archive", ref="tool:2")
    )
    assert tool.config.cmd == ["/bin/true"]
    first = manager.images.import_image(
        ImageImport(name="first", source=str(both), format="docker-archive", ref="@0")
    )
    assert first.config.entrypoint == ["/bin/busybox"]
    assert first.config.user == "app"
    with pytest.raises(ImageUnusable, match="cannot read"):
        manager.images.import_image(
            ImageImport(name="y", source=str(both), format="docker-archive", ref="absent:1")
        )
