"""The baseline every instantiation figure is compared with: ``runc run -d`` of the workload.

A minimal OCI bundle for the template's command (host ``/usr``, ``/etc``... bind-mounted
read-only, private ``/proc``, ``/dev`` and ``/tmp``, its own pid/net/ipc/uts/mount namespaces,
the template's memory and pids limits), started with ``runc run -d`` under a private runc root and
deleted with ``runc delete -f`` after each run. This is what a container manager without a
prepare phase pays per request, and it is favourable to runc: no network plumbing and no
readiness check beyond "the process was started".
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

from fluidedge.instances.oci import BASE_MOUNTS, TMP_TMPFS, bind_mounts, runtime_config
from fluidedge.linux.proc import CommandError, run
from fluidedge.measure.errors import BenchmarkFailure, MeasureInputError
from fluidedge.measure.replicate import Sample

HOST_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib64", "/lib32", "/etc")
CGROUP_PARENT = "/fluidedge-bench"
CGROUP_ROOT = "/sys/fs/cgroup"
PHASE_BUNDLE = "bundle"
PHASE_RUN = "runc run"


def bundle_config(
    command: list[str],
    *,
    container_id: str,
    memory_mb: int,
    pids: int,
    binds: list[str],
    rootfs: str,
) -> dict[str, Any]:
    """The ``config.json`` of the baseline bundle (pure; tested without runc).

    Built by the shared :func:`fluidedge.instances.oci.runtime_config`, in the shape the
    published figures were measured with: no seccomp, no capabilities, memory and pids limits
    only, no cgroup namespace.
    """
    if not command or not command[0].startswith("/"):
        raise MeasureInputError("the baseline needs an absolute command path")
    return runtime_config(
        args=list(command),
        hostname=container_id,
        rootfs=rootfs,
        mounts=[*BASE_MOUNTS, TMP_TMPFS, *bind_mounts(binds, ["rbind", "ro", "nosuid"])],
        namespaces=["pid", "network", "ipc", "uts", "mount"],
        cgroups_path=f"{CGROUP_PARENT}/{container_id}",
        resources={"memory": {"limit": memory_mb * 1024 * 1024}, "pids": {"limit": pids}},
    )


class RuncBaseline:
    """Owns a work directory (rootfs, bundles, runc root); :meth:`close` removes everything."""

    def __init__(
        self,
        workdir: Path,
        command: list[str],
        *,
        memory_mb: int = 32,
        pids: int = 64,
        prefix: str = "febase",
        runc: str = "runc",
    ) -> None:
        self.workdir = workdir
        self.command = command
        self.memory_mb = memory_mb
        self.pids = pids
        self.prefix = prefix
        self.runc = runc
        self.root = workdir / "runc-root"
        self.rootfs = workdir / "rootfs"
        self._binds: list[str] = []
        self._live: set[str] = set()

    def setup(self) -> None:
        if shutil.which(self.runc) is None:
            raise BenchmarkFailure(f"{self.runc} is not installed: cannot run the baseline")
        self.root.mkdir(parents=True, exist_ok=True)
        self.rootfs.mkdir(parents=True, exist_ok=True)
        for name in ("proc", "dev", "tmp"):
            (self.rootfs / name).mkdir(exist_ok=True)
        for host in HOST_DIRS:
            path = Path(host)
            target = self.rootfs / host.lstrip("/")
            if path.is_symlink():
                if not target.is_symlink():
                    target.symlink_to(os.readlink(path))
            elif path.is_dir():
                target.mkdir(exist_ok=True)
                self._binds.append(host)

    def _run_detached(self, bundle: Path, container_id: str) -> None:
        """``runc run -d``; the container inherits runc's stdio, so give it a file, not pipes."""
        log_path = bundle / "log"
        argv = [self.runc, "--root", str(self.root), "run", "-d", "--bundle", str(bundle)]
        with log_path.open("wb") as log:
            try:
                result = subprocess.run(
                    [*argv, container_id],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=log,
                    timeout=60.0,
                    check=False,
                )
            except (OSError, subprocess.TimeoutExpired) as exc:
                raise BenchmarkFailure(f"runc run {container_id}: {exc}") from exc
        if result.returncode != 0:
            detail = log_path.read_text(errors="replace").strip()[-500:]
            raise BenchmarkFailure(f"runc run {container_id} failed: {detail}")

    def trial(self, variant: str, index: int) -> Sample:
        container_id = f"{self.prefix}-{index}"
        bundle = self.workdir / container_id
        started = time.perf_counter()
        bundle.mkdir(exist_ok=True)
        config = bundle_config(
            self.command,
            container_id=container_id,
            memory_mb=self.memory_mb,
            pids=self.pids,
            binds=self._binds,
            rootfs=str(self.rootfs),
        )
        (bundle / "config.json").write_text(json.dumps(config))
        prepared = time.perf_counter()
        self._live.add(container_id)
        try:
            self._run_detached(bundle, container_id)
            ran = time.perf_counter()
        finally:
            delete_started = time.perf_counter()
            self._delete(container_id)
            delete_ms = (time.perf_counter() - delete_started) * 1000.0
            shutil.rmtree(bundle, ignore_errors=True)
        phases = {PHASE_BUNDLE: (prepared - started) * 1000.0, PHASE_RUN: (ran - prepared) * 1000.0}
        return Sample(
            variant,
            index,
            phases,
            (ran - started) * 1000.0,
            {"name": container_id, "path": "runc", "delete_ms": delete_ms},
        )

    def _delete(self, container_id: str) -> None:
        with contextlib.suppress(CommandError):  # never created, or already gone
            run([self.runc, "--root", str(self.root), "delete", "-f", container_id], timeout=60.0)
        self._live.discard(container_id)

    def close(self) -> None:
        for container_id in list(self._live):
            self._delete(container_id)
        shutil.rmtree(self.workdir, ignore_errors=True)
        # runc removes each container's cgroup, not the (now empty) parent it created.
        name = CGROUP_PARENT.strip("/")
        root = Path(CGROUP_ROOT)
        for parent in [*root.glob(f"*/{name}"), *root.glob(name)]:  # v1 hierarchies, or v2
            with contextlib.suppress(OSError):
                parent.rmdir()
