"""Where a run happened: CPU, cores, kernel, memory, load and tool versions.

A figure without its machine cannot be compared or reproduced (the seed's §3.4 and §7 open their
results with the testbed); every run directory gets a ``machine.json`` from :func:`describe`.
Every probe is best effort: a missing tool is recorded as ``None``, never an error.
"""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path
from typing import Any

import fluidedge
from fluidedge.linux.proc import CommandError, run

_TOOLS = {
    "runc": ["runc", "--version"],
    "ovs": ["ovs-vswitchd", "--version"],
    "trafgen": ["trafgen", "--version"],
    "tcpreplay": ["tcpreplay", "--version"],
    "tcpdump": ["tcpdump", "--version"],
}


def _first_line(argv: list[str]) -> str | None:
    try:
        result = run(argv, check=False, timeout=5.0)
    except CommandError:
        return None
    text = (result.stdout or result.stderr).strip()
    return text.splitlines()[0].strip() if text else None


def cpu_model(cpuinfo: str) -> str | None:
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("model name", "Model", "cpu model"):
            return value.strip()
    return None


def meminfo_kib(meminfo: str, key: str) -> int | None:
    for line in meminfo.splitlines():
        name, _, value = line.partition(":")
        if name.strip() == key:
            return int(value.split()[0])
    return None


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def memory_used_mib() -> float:
    """MemTotal - MemAvailable, in MiB (what the density benchmark tracks)."""
    text = _read("/proc/meminfo")
    total = meminfo_kib(text, "MemTotal") or 0
    available = meminfo_kib(text, "MemAvailable") or 0
    return (total - available) / 1024.0


def memory_cgroup_bytes(
    pid: int, proc_root: str = "/proc", cgroup_root: str = "/sys/fs/cgroup"
) -> int | None:
    """Memory charged to the cgroup of process ``pid`` (v1 ``memory`` or v2), None if unknown."""
    text = _read(f"{proc_root}/{pid}/cgroup")
    v2_path = None
    for line in text.splitlines():
        _, controllers, path = line.split(":", 2)
        if "memory" in controllers.split(","):
            value = _read(f"{cgroup_root}/memory{path}/memory.usage_in_bytes").strip()
            return int(value) if value.isdigit() else None
        if controllers == "":
            v2_path = path
    if v2_path is not None:
        value = _read(f"{cgroup_root}{v2_path}/memory.current").strip()
        return int(value) if value.isdigit() else None
    return None


def git_commit() -> str | None:
    root = Path(fluidedge.__file__).resolve().parents[2]
    if not (root / ".git").exists():
        return None
    line = _first_line(["git", "-C", str(root), "rev-parse", "--short", "HEAD"])
    return line if line and " " not in line else None


def describe(include_tools: bool = True) -> dict[str, Any]:
    """The machine description stored with every run."""
    meminfo = _read("/proc/meminfo")
    total_kib = meminfo_kib(meminfo, "MemTotal")
    try:
        load = list(os.getloadavg())
    except OSError:
        load = []
    description: dict[str, Any] = {
        "hostname": platform.node(),
        "cpu_model": cpu_model(_read("/proc/cpuinfo")) or platform.processor() or None,
        "cpus": os.cpu_count(),
        "kernel": platform.release(),
        "os": platform.platform(),
        "memory_mib": round(total_kib / 1024) if total_kib else None,
        "load_average": load,
        "python": sys.version.split()[0],
        "fluidedge": fluidedge.__version__,
        "git_commit": git_commit(),
    }
    if include_tools:
        description["tools"] = {name: _first_line(argv) for name, argv in _TOOLS.items()}
    return description
