"""The OCI runtime adapter (runc, or crun): everything the part does to containers goes here.

runc and crun take the same command line for what we use (``--root``, ``create --bundle
--pid-file``, ``state``, ``list --format json``, ``delete -f``) and both start a created
container through ``<root>/<id>/exec.fifo``; they differ in the words of "no such container",
which :func:`_missing` knows. crun is faster (C, no Go runtime start) but refuses hybrid cgroup
hosts: :func:`check_runtime` says so at start.

A private runtime root (``<state_dir>/runc`` or ``<state_dir>/crun``) keeps our containers apart
from anybody else's.
Fast paths bypass the runc binary where its work is a file operation:

- *start*: a container in the ``created`` state is blocked in ``runc init`` opening
  ``<root>/<id>/exec.fifo`` for writing; ``runc start`` only opens the fifo, reads it, waits for
  the exec and removes it. :meth:`Runc.start_fast` does the same from Python (no ~9 ms Go binary).
- *pause/resume* and *per-request limits*: cgroup file writes, through the cgroup adapter
  (:mod:`fluidedge.instances.cgroups`, v1 or v2), which also cleans up after a failed delete.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import select
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

from fluidedge.instances import cgroups
from fluidedge.instances.errors import RuntimeFailure
from fluidedge.linux import procfs

# How long a freeze or thaw waits for the kernel to settle (re-exported for the manager's API).
FREEZER_TIMEOUT = cgroups.FREEZER_TIMEOUT


def leftover_cgroups(container_id: str) -> list[Path]:
    """The cgroup directories of ``container_id`` that still exist, under this host's default
    parent (cleanup checks of tests, the demo and benchmarks that did not make the manager)."""
    return cgroups.detect().leftover(container_id)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


RUNTIMES = ("runc", "crun")


def check_runtime(kind: str, binary: str, cgroup_kind: str) -> None:
    """Refuse a runtime that cannot work here, with the reason (a start-up error)."""
    if kind not in RUNTIMES:
        raise RuntimeFailure(f"unknown OCI runtime {kind!r} (have: {', '.join(RUNTIMES)})")
    if kind == "crun" and cgroup_kind == "hybrid":
        raise RuntimeFailure(
            "crun refuses hybrid cgroup hosts (v1 controllers beside a cgroup2 mount); "
            'use runtime = "runc" here'
        )
    if shutil.which(binary) is None:
        raise RuntimeFailure(f"OCI runtime {binary!r} is not installed")


LIST_ATTEMPTS = 5  # runc list raced by concurrent deletes (see Runc.list)


def _missing(message: str) -> bool:
    """Whether a runtime's error says the container does not exist (runc: "does not exist",
    crun: "error opening file `<root>/<id>/status`: No such file or directory")."""
    return "not exist" in message or "No such file or directory" in message


class Runc:
    """An OCI runtime (runc or crun: same command line) with a private state root."""

    def __init__(
        self,
        root: Path,
        binary: str = "runc",
        cgroup: cgroups.Cgroups | None = None,
        kind: str = "runc",
    ) -> None:
        self.root = root
        self.binary = binary
        self.kind = kind
        self.cgroups = cgroup if cgroup is not None else cgroups.detect()
        root.mkdir(parents=True, exist_ok=True)

    def _argv(self, *args: str) -> list[str]:
        return [self.binary, "--root", str(self.root), *args]

    def _run(self, *args: str, timeout: float = 30.0) -> str:
        try:
            result = subprocess.run(
                self._argv(*args),
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
                stdin=subprocess.DEVNULL,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise RuntimeFailure(f"runc {' '.join(args)}: {exc}") from exc
        if result.returncode != 0:
            raise RuntimeFailure(
                f"runc {' '.join(args)} failed: {(result.stderr or result.stdout).strip()}"
            )
        return result.stdout

    def create(self, container_id: str, bundle: Path, log_path: Path) -> int:
        """``runc create``; the container's stdout/stderr go to ``log_path``. Returns its pid.

        The container inherits runc's stdio, so runc must not get pipes (we would wait for
        their EOF forever): it writes into the log file, and its own errors land there too.
        """
        pid_file = bundle / "pid"
        # the workload's output may hold what its environment holds: root-only, like the rest
        with open(os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600), "ab") as log:
            try:
                result = subprocess.run(
                    self._argv(
                        "create", "--bundle", str(bundle), "--pid-file", str(pid_file), container_id
                    ),
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=log,
                    timeout=60,
                    check=False,
                )
            except (OSError, subprocess.TimeoutExpired) as exc:
                raise RuntimeFailure(f"runc create {container_id}: {exc}") from exc
        if result.returncode != 0:
            tail = log_tail(log_path, 600)
            raise RuntimeFailure(f"runc create {container_id} failed: {tail}")
        try:
            return int(pid_file.read_text().strip())
        except (OSError, ValueError) as exc:
            raise RuntimeFailure(f"runc create {container_id}: no pid file") from exc

    def run_detached(self, container_id: str, bundle: Path, log_path: Path) -> int:
        """``runc run -d`` (the baseline the benchmarks compare against)."""
        pid_file = bundle / "pid"
        with open(log_path, "ab") as log:
            result = subprocess.run(
                self._argv(
                    "run", "-d", "--bundle", str(bundle), "--pid-file", str(pid_file), container_id
                ),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                timeout=60,
                check=False,
            )
        if result.returncode != 0:
            raise RuntimeFailure(f"runc run {container_id} failed: {log_tail(log_path, 600)}")
        return int(pid_file.read_text().strip())

    def start_fast(self, container_id: str, pid: int, *, timeout: float = 5.0) -> None:
        """What ``runc start`` / ``crun start`` do, without the binary, through exec.fifo.

        Returns once the runtime's init has exec'd the shell's process.
        """
        if self.kind == "crun":
            self._start_fast_crun(container_id, pid, timeout)
        else:
            self._start_fast_runc(container_id, pid, timeout)

    def _start_fast_crun(self, container_id: str, pid: int, timeout: float) -> None:
        """crun's direction is the reverse of runc's: its init *reads* exec.fifo and execs
        after one byte, so we write the byte (retrying while the init is not reading yet),
        remove the fifo, and wait until the process is no longer crun."""
        fifo = self.root / container_id / "exec.fifo"
        deadline = time.monotonic() + timeout
        while True:
            try:
                fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
                break
            except OSError as exc:
                if exc.errno != errno.ENXIO:
                    raise RuntimeFailure(f"start {container_id}: {fifo}: {exc.strerror}") from exc
            if time.monotonic() > deadline or not pid_alive(pid):
                raise RuntimeFailure(f"start {container_id}: crun init is not waiting")
            time.sleep(0.0002)
        try:
            os.write(fd, b"0")
        except OSError as exc:
            raise RuntimeFailure(f"start {container_id}: {fifo}: {exc.strerror}") from exc
        finally:
            os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            fifo.unlink()
        _wait_exec(container_id, pid, "crun", deadline)

    def _start_fast_runc(self, container_id: str, pid: int, timeout: float) -> None:
        """runc's init writes exec.fifo and execs: open + read it until EOF, remove it, then
        wait until the process is no longer runc.

        EOF alone does not mean the exec happened: since the fix for CVE-2024-21626 (runc
        1.1.12, backported to Debian 12's 1.1.5+ds1-1+deb12u1), runc init closes every
        descriptor above stdio, the FIFO's write end included, *before* its ``execve``. In
        between it is still runc init, several MiB of Go heap in the shell's memory cgroup:
        a memory limit lowered then (the shell's template limit, set once the launcher runs)
        had cgroup v2's ``memory.max`` OOM-kill it, about one shell in a few hundred in the
        VM tier's emulated, loaded CPUs. :func:`runtime_init` says when it has exec'd."""
        fifo = self.root / container_id / "exec.fifo"
        try:
            fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as exc:
            raise RuntimeFailure(f"start {container_id}: {fifo}: {exc.strerror}") from exc
        deadline = time.monotonic() + timeout
        got = b""
        try:
            poller = select.poll()
            poller.register(fd, select.POLLIN | select.POLLHUP)
            while True:
                events = poller.poll(50)
                if events:
                    try:
                        chunk = os.read(fd, 16)
                    except BlockingIOError:
                        chunk = None
                    if chunk:
                        got += chunk
                    elif chunk == b"" and got:
                        break  # writer closed on exec
                if time.monotonic() > deadline:
                    raise RuntimeFailure(f"start {container_id}: runc init did not exec in time")
                if not events and not pid_alive(pid):
                    raise RuntimeFailure(f"start {container_id}: shell process {pid} is gone")
        finally:
            os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            fifo.unlink()
        _wait_exec(container_id, pid, "runc", deadline)

    def start(self, container_id: str) -> None:
        """``runc start`` through the binary (used for comparison only)."""
        self._run("start", container_id)

    def state(self, container_id: str) -> dict[str, Any] | None:
        """``runc state`` or ``None`` when the container does not exist."""
        try:
            out = self._run("state", container_id)
        except RuntimeFailure as exc:
            if _missing(str(exc)):
                return None
            raise
        return dict(json.loads(out))

    def list(self) -> list[dict[str, Any]]:
        """Every container of this root. ``runc list`` reads the root's entries, then each
        one's state: a container deleted in between (a destroy on another thread) makes it
        fail with "no such file or directory", so it is asked again (a few times)."""
        attempt = 0
        while True:
            attempt += 1
            try:
                out = self._run("list", "--format", "json")
            except RuntimeFailure as exc:
                if attempt < LIST_ATTEMPTS and "no such file or directory" in str(exc).lower():
                    continue
                raise
            data = json.loads(out or "null")
            return list(data or [])

    def delete(self, container_id: str) -> None:
        """``runc delete -f`` (kills, removes cgroups and state); absent is fine."""
        try:
            self._run("delete", "-f", container_id, timeout=30)
        except RuntimeFailure as exc:
            if not _missing(str(exc)):
                # Last resort: kill the cgroup's tasks, remove cgroups and state ourselves.
                self._force_cleanup(container_id)
                if (self.root / container_id).exists():
                    raise
        self.cgroups.remove(container_id)

    def _force_cleanup(self, container_id: str) -> None:
        self.cgroups.kill(container_id)
        self.cgroups.remove(container_id)
        state_dir = self.root / container_id
        if state_dir.exists():
            for child in state_dir.iterdir():
                with contextlib.suppress(OSError):
                    child.unlink()
            with contextlib.suppress(OSError):
                state_dir.rmdir()


def log_tail(path: Path, limit: int) -> str:
    """The last ``limit`` bytes of a container's log, as text (what it said before it went)."""
    try:
        data = path.read_bytes()[-limit:]
    except OSError:
        return "(no log)"
    return data.decode(errors="replace").strip() or "(empty log)"


def runtime_init(pid: int, runtime: str) -> bool:
    """True while ``pid`` is still the runtime's init (or is gone): runc's names itself
    ``runc:[2:INIT]`` (its ``/proc/<pid>/exe`` reads ``/`` on Debian 12's runc, so only the
    name tells), crun's runs the crun binary. Both change at the exec."""
    comm = procfs.proc_bytes(pid, "comm", 64)
    if comm is None:
        return True
    return comm.startswith(b"runc:[") or runtime in (exe_of(pid) or runtime)


def _wait_exec(container_id: str, pid: int, runtime: str, deadline: float) -> None:
    """Wait until ``pid`` is no longer the runtime's init (it exec'd the shell's process);
    one read of its name (and its ``exe``) when it already has."""
    while runtime_init(pid, runtime):
        if not procfs.process_running(pid):  # a zombie has neither
            raise RuntimeFailure(f"start {container_id}: shell process {pid} is gone")
        if time.monotonic() > deadline:
            raise RuntimeFailure(f"start {container_id}: {runtime} init did not exec in time")
        time.sleep(0.0002)


def exe_of(pid: int) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/exe")
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ESRCH):
            return None
        return ""
