"""Template -> OCI runtime ``config.json``: the isolation defaults live here, as data.

Least privilege by default (seed §5.1's concerns about containers): every capability dropped
except the template's, ``noNewPrivileges``, a read-only root made of host directories bind-mounted
read-only, a private ``/tmp`` tmpfs, separate pid/net/ipc/uts/mount/cgroup namespaces, pids and
memory limits, and a seccomp filter that denies the syscalls an NF or edge app never needs but an
attacker loves (mounting, module loading, kexec, ptrace, bpf, namespace games, clock setting...).

The process is the shell *launcher* (fixed at ``runc create`` time), which reads its assignment
from ``/.fe`` (a per-shell directory bind-mounted read-only) when the execute phase starts it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fluidedge.instances.models import Resources, TemplateSpec

LAUNCHER_IN_ROOT = "/.fe-launcher"
ASSIGN_DIR_IN_ROOT = "/.fe"

DENIED_SYSCALLS = (
    "acct",
    "add_key",
    "adjtimex",
    "bpf",
    "clock_adjtime",
    "clock_settime",
    "create_module",
    "delete_module",
    "finit_module",
    "fsconfig",
    "fsmount",
    "fsopen",
    "fspick",
    "get_kernel_syms",
    "init_module",
    "ioperm",
    "iopl",
    "kcmp",
    "kexec_file_load",
    "kexec_load",
    "keyctl",
    "lookup_dcookie",
    "mount",
    "mount_setattr",
    "move_mount",
    "name_to_handle_at",
    "nfsservctl",
    "open_by_handle_at",
    "open_tree",
    "perf_event_open",
    "personality",
    "pivot_root",
    "process_vm_readv",
    "process_vm_writev",
    "ptrace",
    "query_module",
    "quotactl",
    "reboot",
    "request_key",
    "setns",
    "settimeofday",
    "swapoff",
    "swapon",
    "syslog",
    "umount2",
    "unshare",
    "uselib",
    "userfaultfd",
    "vhangup",
)

MASKED_PATHS = (
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
)
READONLY_PATHS = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")

CFS_PERIOD_US = 100_000


def seccomp_profile() -> dict[str, Any]:
    """Allow by default, EPERM for :data:`DENIED_SYSCALLS`."""
    return {
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [
            {"names": list(DENIED_SYSCALLS), "action": "SCMP_ACT_ERRNO", "errnoRet": 1},
        ],
    }


def linux_resources(resources: Resources) -> dict[str, Any]:
    """OCI ``linux.resources`` for a template's defaults."""
    memory = resources.memory_mb * 1024 * 1024
    cpu: dict[str, Any] = {"shares": cpu_shares(resources.cpus)}
    if resources.cpu_limit is not None:
        cpu["quota"] = cpu_quota_us(resources.cpu_limit)
        cpu["period"] = CFS_PERIOD_US
    return {
        "devices": [{"allow": False, "access": "rwm"}],
        "memory": {"limit": memory, "swap": memory},
        "pids": {"limit": resources.pids},
        "cpu": cpu,
    }


def cpu_shares(cpus: float) -> int:
    """cgroup v1 ``cpu.shares`` for a CPU request (1024 per CPU, kernel minimum 2)."""
    return max(2, round(1024 * cpus))


def cpu_quota_us(cpu_limit: float) -> int:
    """CFS quota (µs per :data:`CFS_PERIOD_US`) for a hard CPU cap; the kernel minimum is 1 ms."""
    return max(1000, round(CFS_PERIOD_US * cpu_limit))


def oci_config(
    template: TemplateSpec,
    *,
    container_id: str,
    rootfs: Path,
    assign_dir: Path,
    bind_dirs: list[str],
    cgroups_path: str,
) -> dict[str, Any]:
    """The ``config.json`` of a shell of ``template``.

    ``rootfs`` is the shared read-only root (mount points + the launcher); ``bind_dirs`` are the
    host directories bind-mounted read-only into it (``/usr``, ``/etc``...); ``assign_dir`` is
    the shell's private assignment directory, seen as ``/.fe`` inside; ``cgroups_path`` comes
    from the cgroup adapter (the same path in every v1 hierarchy, or the v2 one).
    """
    caps = list(template.capabilities)
    mounts: list[dict[str, Any]] = [
        {"destination": "/proc", "type": "proc", "source": "proc"},
        {
            "destination": "/dev",
            "type": "tmpfs",
            "source": "tmpfs",
            "options": ["nosuid", "strictatime", "mode=755", "size=64k"],
        },
        {
            "destination": "/dev/pts",
            "type": "devpts",
            "source": "devpts",
            "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"],
        },
        {
            "destination": "/dev/shm",  # noqa: S108 (the container's own)
            "type": "tmpfs",
            "source": "shm",
            "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=1m"],
        },
        {
            "destination": "/dev/mqueue",
            "type": "mqueue",
            "source": "mqueue",
            "options": ["nosuid", "noexec", "nodev"],
        },
        {
            "destination": "/sys",
            "type": "sysfs",
            "source": "sysfs",
            "options": ["nosuid", "noexec", "nodev", "ro"],
        },
        {
            "destination": "/tmp",  # noqa: S108 (private tmpfs)
            "type": "tmpfs",
            "source": "tmpfs",
            "options": ["nosuid", "nodev", "mode=1777", "size=16m"],
        },
    ]
    mounts.extend(
        {
            "destination": path,
            "type": "bind",
            "source": path,
            "options": ["rbind", "ro", "nosuid", "nodev"],
        }
        for path in bind_dirs
    )
    mounts.append(
        {
            "destination": ASSIGN_DIR_IN_ROOT,
            "type": "bind",
            "source": str(assign_dir),
            "options": ["bind", "ro", "nosuid", "nodev"],
        }
    )
    return {
        "ociVersion": "1.0.2",
        "process": {
            "terminal": False,
            "user": {"uid": 0, "gid": 0},
            "args": [LAUNCHER_IN_ROOT],
            "env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"],
            "cwd": "/",
            "capabilities": {
                "bounding": caps,
                "effective": caps,
                "permitted": caps,
                "inheritable": caps,
                "ambient": caps,
            },
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": True,
        },
        "root": {"path": str(rootfs), "readonly": True},
        "hostname": container_id,
        "mounts": mounts,
        "linux": {
            "cgroupsPath": cgroups_path,
            "resources": linux_resources(template.resources),
            "namespaces": [
                {"type": "pid"},
                {"type": "network"},
                {"type": "ipc"},
                {"type": "uts"},
                {"type": "mount"},
                {"type": "cgroup"},
            ],
            "maskedPaths": list(MASKED_PATHS),
            "readonlyPaths": list(READONLY_PATHS),
            "seccomp": seccomp_profile(),
        },
    }


def encode_assignment(argv: list[str], env: dict[str, str]) -> bytes:
    """The launcher's assignment: ``argc NUL argv... NUL KEY=VALUE NUL...``."""
    parts = [str(len(argv)), *argv, *(f"{k}={v}" for k, v in env.items())]
    return b"".join(part.encode() + b"\0" for part in parts)
