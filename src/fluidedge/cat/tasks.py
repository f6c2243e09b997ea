"""An instance's tasks, read from its cgroup (v1 or v2) through ``/proc/<pid>/cgroup``.

Why tasks and not only the main pid: a process forked inside the instance inherits its
parent's resctrl group (the kernel copies ``closid``/``rmid`` at fork), but a process that
*joins* the container from outside (``runc exec``, ``nsenter``) keeps the group of whoever
started it. The container's cgroup is the authority on which tasks belong to the instance, so
the CAT manager writes every thread of that cgroup into the class and keeps re-checking.
"""

from __future__ import annotations

from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
# v1 controllers to look in, in order (runc puts a container in all of them).
_V1_PREFERRED = ("cpuset", "pids", "memory", "freezer", "cpu,cpuacct", "cpu")


def cgroup_tasks_file(
    pid: int, proc: Path = Path("/proc"), root: Path = CGROUP_ROOT
) -> Path | None:
    """The file listing every thread of ``pid``'s cgroup (v1 ``tasks``, v2 ``cgroup.threads``)."""
    try:
        lines = (proc / str(pid) / "cgroup").read_text().splitlines()
    except OSError:
        return None
    v1: dict[str, str] = {}
    unified: str | None = None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controllers == "":
            unified = path
        for controller in controllers.split(","):
            v1[controller] = path
        v1[controllers] = path
    for controller in _V1_PREFERRED:
        where = v1.get(controller)
        if where is not None:
            candidate = root / controller / where.lstrip("/") / "tasks"
            if candidate.exists():
                return candidate
    if unified is not None:
        for base in (root, root / "unified"):
            candidate = base / unified.lstrip("/") / "cgroup.threads"
            if candidate.exists():
                return candidate
    return None


def instance_tasks(pid: int) -> list[int]:
    """Every thread id in ``pid``'s cgroup, or just ``pid``'s own threads if none is found."""
    path = cgroup_tasks_file(pid)
    try:
        if path is not None:
            return [int(t) for t in path.read_text().split()]
        threads = (Path("/proc") / str(pid) / "task").iterdir()
        return sorted(int(t.name) for t in threads if t.name.isdigit())
    except (OSError, ValueError):
        return []
