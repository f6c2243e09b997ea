"""The one OCI runtime-config builder: instance shells and the ``runc run`` baseline use it.

Why shared: the instance manager's bundles (:mod:`fluidedge.instances.bundle`) and the
measurement toolkit's baseline (:mod:`fluidedge.measure.runcbase`) used to write the same
``config.json`` skeleton twice and could drift. The skeleton lives here; each caller states what
differs (mounts, namespaces, resources, capabilities, seccomp) as data. The baseline keeps its
published shape (no seccomp, memory and pids limits only, no cgroup namespace) so its ``runc
run`` figures stay comparable with earlier runs.
"""

from __future__ import annotations

from typing import Any

OCI_VERSION = "1.0.2"
DEFAULT_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"

PROC_MOUNT: dict[str, Any] = {"destination": "/proc", "type": "proc", "source": "proc"}
# A /dev tmpfs the runtime fills with device nodes: the ``runc run`` baseline's (instance
# shells bind the daemon's read-only /dev skeleton instead, see instances/images/overlay.py).
DEV_TMPFS: dict[str, Any] = {
    "destination": "/dev",
    "type": "tmpfs",
    "source": "tmpfs",
    "options": ["nosuid", "strictatime", "mode=755", "size=64k"],
}
# /proc and a small /dev: what the baseline's containers get (the published ``runc run`` shape).
BASE_MOUNTS: tuple[dict[str, Any], ...] = (PROC_MOUNT, DEV_TMPFS)
# A private /tmp tmpfs: the ``runc run`` baseline's (instance shells bind a directory of the
# daemon's scratch tmpfs instead: no filesystem per instance, see instances/images/overlay.py).
TMP_TMPFS: dict[str, Any] = {
    "destination": "/tmp",  # noqa: S108 (a private tmpfs inside the container)
    "type": "tmpfs",
    "source": "tmpfs",
    "options": ["nosuid", "nodev", "mode=1777", "size=16m"],
}


def bind_mounts(dirs: list[str], options: list[str]) -> list[dict[str, Any]]:
    """Host directories bind-mounted at the same path inside."""
    return [{"destination": d, "type": "bind", "source": d, "options": list(options)} for d in dirs]


def runtime_config(
    *,
    args: list[str],
    hostname: str,
    rootfs: str,
    mounts: list[dict[str, Any]],
    namespaces: list[str],
    cgroups_path: str,
    resources: dict[str, Any],
    capabilities: list[str] | None = None,
    env: list[str] | None = None,
    rlimits: list[dict[str, Any]] | None = None,
    seccomp: dict[str, Any] | None = None,
    masked_paths: list[str] | None = None,
    readonly_paths: list[str] | None = None,
    user: tuple[int, int] = (0, 0),
    cwd: str = "/",
) -> dict[str, Any]:
    """An OCI runtime ``config.json`` (runc and crun read the same): ``user`` (default uid 0),
    no terminal, ``cwd`` (default ``/``), ``noNewPrivileges``, a read-only root, exactly
    ``capabilities`` in every set."""
    caps = list(capabilities or [])
    process: dict[str, Any] = {
        "terminal": False,
        "user": {"uid": user[0], "gid": user[1]},
        "args": list(args),
        "env": list(env or [f"PATH={DEFAULT_PATH}"]),
        "cwd": cwd,
        "capabilities": {
            "bounding": caps,
            "effective": caps,
            "permitted": caps,
            "inheritable": caps,
            "ambient": caps,
        },
        "noNewPrivileges": True,
    }
    if rlimits:
        process["rlimits"] = rlimits
    linux: dict[str, Any] = {
        "cgroupsPath": cgroups_path,
        "resources": resources,
        "namespaces": [{"type": kind} for kind in namespaces],
    }
    if masked_paths:
        linux["maskedPaths"] = list(masked_paths)
    if readonly_paths:
        linux["readonlyPaths"] = list(readonly_paths)
    if seccomp is not None:
        linux["seccomp"] = seccomp
    return {
        "ociVersion": OCI_VERSION,
        "process": process,
        "root": {"path": rootfs, "readonly": True},
        "hostname": hostname,
        "mounts": mounts,
        "linux": linux,
    }
