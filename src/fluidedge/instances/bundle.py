"""Template -> OCI runtime ``config.json``: the isolation defaults live here, as data.

Least privilege by default (seed §5.1's concerns about containers): every capability dropped
except the template's, ``noNewPrivileges``, a read-only root that is the template's image (an
overlay, see :mod:`fluidedge.instances.images.overlay`; nothing of the host's filesystem), a
private writable ``/tmp`` and ``/dev/shm`` (directories of the daemon's one scratch tmpfs: no
filesystem per instance), ``/sys`` and ``/dev/pts`` unless the template turns them off
(:class:`~fluidedge.instances.models.Mounts`), separate user (container root is an
unprivileged host uid, see :mod:`fluidedge.instances.images.userns`),
pid/net/ipc/uts/mount/cgroup namespaces, pids and memory limits, and an allow-list seccomp
filter (after Docker's default profile: what ordinary
workloads call is allowed, the rest answers EPERM; no namespaces, mounts, io_uring, ptrace, bpf,
keyring, module loading, kexec, clock setting...).

The process is the shell *launcher* (fixed at ``runc create`` time, bind-mounted read-only at
``/.fe-launcher`` from the state directory), which reads its assignment from ``/.fe`` (a
per-shell directory bind-mounted read-only) when the execute phase starts it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fluidedge.instances.images.overlay import Scratch
from fluidedge.instances.images.userns import mappings
from fluidedge.instances.models import Resources, TemplateSpec
from fluidedge.instances.oci import DEFAULT_PATH, PROC_MOUNT, runtime_config

LAUNCHER_IN_ROOT = "/.fe-launcher"


def launcher_argv(token: str | None) -> list[str]:
    """A shell's process argv: the launcher and its per-shell token (its identity at
    re-adoption, see :mod:`fluidedge.instances.launcher`)."""
    return [LAUNCHER_IN_ROOT, *([token] if token else [])]


ASSIGN_DIR_IN_ROOT = "/.fe"

# The allow-list (after Docker/Moby's default profile, ``profiles/seccomp/default.json``): what
# ordinary workloads (shells, servers, language runtimes, NFs on sockets) call. Everything else
# answers EPERM. Left out on purpose, though Docker allows some of them: namespaces and mounts
# (unshare, setns, mount, umount2, pivot_root, the fs*-mount API, and clone with a CLONE_NEW*
# flag, see CLONE_NS_FLAGS), io_uring_* (a large kernel surface with a history of escapes;
# Docker dropped it too), ptrace, process_vm_*, kcmp and pidfd_getfd (reaching into another
# process), bpf, perf_event_open, userfaultfd, keyctl/add_key/request_key, module loading,
# kexec, reboot, swapon/off, clock/time setting, syslog, acct, quotactl, iopl/ioperm,
# open_by_handle_at/name_to_handle_at, chroot, sethostname/setdomainname, vhangup, uselib,
# personality other than the harmless values below, mbind/set_mempolicy/move_pages.
ALLOWED_SYSCALLS = (
    "accept", "accept4", "access", "alarm", "arch_prctl", "bind", "brk", "cachestat", "capget",
    "capset", "chdir", "chmod", "chown", "clock_getres", "clock_gettime", "clock_nanosleep",
    "close", "close_range", "connect", "copy_file_range", "creat", "dup", "dup2", "dup3",
    "epoll_create", "epoll_create1", "epoll_ctl", "epoll_pwait", "epoll_pwait2", "epoll_wait",
    "eventfd", "eventfd2", "execve", "execveat", "exit", "exit_group", "faccessat", "faccessat2",
    "fadvise64", "fallocate", "fchdir", "fchmod", "fchmodat", "fchmodat2", "fchown",
    "fchownat", "fcntl", "fdatasync", "fgetxattr", "flistxattr", "flock", "fork",
    "fremovexattr", "fsetxattr", "fstat", "fstatfs", "fsync", "ftruncate", "futex",
    "futex_requeue", "futex_wait", "futex_waitv", "futex_wake", "futimesat", "get_robust_list",
    "getcpu", "getcwd", "getdents", "getdents64", "getegid", "geteuid", "getgid", "getgroups",
    "getitimer", "getpeername", "getpgid", "getpgrp", "getpid", "getppid", "getpriority",
    "getrandom", "getresgid", "getresuid", "getrlimit", "getrusage", "getsid", "getsockname",
    "getsockopt", "gettid", "gettimeofday", "getuid", "getxattr", "inotify_add_watch",
    "inotify_init", "inotify_init1", "inotify_rm_watch", "io_cancel", "io_destroy",
    "io_getevents", "io_pgetevents", "io_setup", "io_submit", "ioctl", "ioprio_get",
    "ioprio_set", "kill", "landlock_add_rule", "landlock_create_ruleset",
    "landlock_restrict_self", "lchown", "lgetxattr", "link", "linkat", "listen", "listxattr",
    "llistxattr", "lremovexattr", "lseek", "lsetxattr", "lstat", "madvise", "membarrier",
    "memfd_create", "mincore", "mkdir", "mkdirat", "mknod", "mknodat", "mlock", "mlock2",
    "mlockall", "mmap", "modify_ldt", "mprotect", "mq_getsetattr", "mq_notify", "mq_open",
    "mq_timedreceive", "mq_timedsend", "mq_unlink", "mremap", "msgctl", "msgget", "msgrcv",
    "msgsnd", "msync", "munlock", "munlockall", "munmap", "nanosleep", "newfstatat", "open",
    "openat", "openat2", "pause", "pidfd_open", "pidfd_send_signal", "pipe", "pipe2",
    "pkey_alloc", "pkey_free", "pkey_mprotect", "poll", "ppoll", "prctl", "pread64", "preadv",
    "preadv2", "prlimit64", "process_mrelease", "pselect6", "pwrite64", "pwritev", "pwritev2",
    "read", "readahead", "readlink", "readlinkat", "readv", "recvfrom", "recvmmsg", "recvmsg",
    "remap_file_pages", "removexattr", "rename", "renameat", "renameat2", "restart_syscall",
    "rmdir", "rseq", "rt_sigaction", "rt_sigpending", "rt_sigprocmask", "rt_sigqueueinfo",
    "rt_sigreturn", "rt_sigsuspend", "rt_sigtimedwait", "rt_tgsigqueueinfo",
    "sched_get_priority_max", "sched_get_priority_min", "sched_getaffinity", "sched_getattr",
    "sched_getparam", "sched_getscheduler", "sched_rr_get_interval", "sched_setaffinity",
    "sched_setattr", "sched_setparam", "sched_setscheduler", "sched_yield", "seccomp", "select",
    "semctl", "semget", "semop", "semtimedop", "sendfile", "sendmmsg", "sendmsg", "sendto",
    "set_robust_list", "set_tid_address", "setfsgid", "setfsuid", "setgid", "setgroups",
    "setitimer", "setpgid", "setpriority", "setregid", "setresgid", "setresuid", "setreuid",
    "setrlimit", "setsid", "setsockopt", "setuid", "setxattr", "shmat", "shmctl", "shmdt",
    "shmget", "shutdown", "sigaltstack", "signalfd", "signalfd4", "socket", "socketpair",
    "splice", "stat", "statfs", "statx", "symlink", "symlinkat", "sync", "sync_file_range",
    "syncfs", "sysinfo", "tee", "tgkill", "time", "timer_create", "timer_delete",
    "timer_getoverrun", "timer_gettime", "timer_settime", "timerfd_create", "timerfd_gettime",
    "timerfd_settime", "times", "tkill", "truncate", "umask", "uname", "unlink", "unlinkat",
    "utime", "utimensat", "utimes", "vfork", "vmsplice", "wait4", "waitid", "write", "writev",
)  # fmt: skip

# The same calls' 32-bit (x86, x32) names, so a 32-bit binary runs like a 64-bit one.
ALLOWED_SYSCALLS_32 = (
    "_llseek", "_newselect", "chown32", "clock_getres_time64", "clock_gettime64",
    "clock_nanosleep_time64", "fadvise64_64", "fchown32", "fcntl64", "fstat64", "fstatat64",
    "fstatfs64", "ftruncate64", "futex_time64", "get_thread_area", "getegid32", "geteuid32",
    "getgid32", "getgroups32", "getresgid32", "getresuid32", "getuid32", "io_pgetevents_time64",
    "ipc", "lchown32", "lstat64", "mmap2", "mq_timedreceive_time64", "mq_timedsend_time64",
    "ppoll_time64", "pselect6_time64", "recv", "recvmmsg_time64", "rt_sigtimedwait_time64",
    "sched_rr_get_interval_time64", "semtimedop_time64", "send", "sendfile64",
    "set_thread_area", "setfsgid32", "setfsuid32", "setgid32", "setgroups32", "setregid32",
    "setresgid32", "setresuid32", "setreuid32", "setuid32", "sigprocmask", "sigreturn",
    "socketcall", "stat64", "statfs64", "timer_gettime64", "timer_settime64",
    "timerfd_gettime64", "timerfd_settime64", "truncate64", "ugetrlimit", "utimensat_time64",
    "waitpid",
)  # fmt: skip

# clone(2) flags that make a new namespace: clone is allowed only with none of them (x86-64
# passes the flags in the first argument). Same rule as Docker's profile without CAP_SYS_ADMIN.
CLONE_NS_FLAGS = (
    0x00020000  # CLONE_NEWNS
    | 0x02000000  # CLONE_NEWCGROUP
    | 0x04000000  # CLONE_NEWUTS
    | 0x08000000  # CLONE_NEWIPC
    | 0x10000000  # CLONE_NEWUSER
    | 0x20000000  # CLONE_NEWPID
    | 0x40000000  # CLONE_NEWNET
)
# personality(2) values a workload may set (Linux default, UNAME26, ADDR_NO_RANDOMIZE and the
# query): the rest (READ_IMPLIES_EXEC...) weakens the process's own protections.
PERSONALITY_ALLOWED = (0x0, 0x8, 0x20000, 0x20008, 0xFFFFFFFF)
EPERM = 1
ENOSYS = 38

# Docker's masked paths, without a filesystem per directory. The runtimes mask a file with a
# bind of /dev/null (no new superblock) but a directory with a tmpfs of its own, and every
# superblock costs every memory cgroup on the host a slot in its shrinker map: with a memory
# cgroup and ~10 superblocks per instance, that kernel memory grows with the square of the
# count (docs/instances.md, "Density: what 10,000 costs the kernel"). So: the files are masked
# by the runtime; /sys/firmware (0400 firmware tables) is covered by a read-only bind of one
# empty directory (:data:`MASKED_DIRS`); the /proc directories, where the runtimes refuse
# binds, are made read-only instead (their files belong to host root, which an instance's
# root never is, and a read-only bind keeps the userns opt-out from writing them too).
MASKED_PATHS = (
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
)
MASKED_DIRS = ("/sys/firmware",)
READONLY_PATHS = (
    "/proc/acpi",
    "/proc/asound",
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/scsi",
    "/proc/sys",
    "/proc/sysrq-trigger",
)

CFS_PERIOD_US = 100_000


def seccomp_profile() -> dict[str, Any]:
    """Deny by default (EPERM), allow :data:`ALLOWED_SYSCALLS`, clone without namespace flags,
    harmless personalities; clone3 answers ENOSYS (its flags sit in a struct seccomp cannot
    read, so libc falls back to clone, which the rule above checks)."""
    return {
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": EPERM,
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [
            {
                "names": [*ALLOWED_SYSCALLS, *ALLOWED_SYSCALLS_32],
                "action": "SCMP_ACT_ALLOW",
            },
            {
                "names": ["clone"],
                "action": "SCMP_ACT_ALLOW",
                "args": [
                    {"index": 0, "value": CLONE_NS_FLAGS, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}
                ],
            },
            {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": ENOSYS},
            *(
                {
                    "names": ["personality"],
                    "action": "SCMP_ACT_ALLOW",
                    "args": [{"index": 0, "value": value, "op": "SCMP_CMP_EQ"}],
                }
                for value in PERSONALITY_ALLOWED
            ),
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
    launcher: Path,
    empty_dir: Path,
    scratch: Scratch,
    cgroups_path: str,
    userns_base: int | None,
    user: tuple[int, int] = (0, 0),
    token: str | None = None,
) -> dict[str, Any]:
    """The ``config.json`` of a shell of ``template``.

    ``rootfs`` is the shell's overlay root (its image, read-only); ``launcher`` the launcher
    binary on the host, bind-mounted read-only; ``empty_dir`` an empty host directory, bound
    read-only over the masked directories; ``scratch`` the shell's ``/tmp`` and ``/dev/shm``
    (directories in the daemon's scratch tmpfs) and the daemon's ``/dev`` skeleton, bound
    read-only (see :func:`fluidedge.instances.images.overlay.scratch`: no filesystem per
    instance);
    ``assign_dir`` the shell's private assignment directory, seen
    as ``/.fe`` inside; ``cgroups_path`` comes from the cgroup adapter (the same path in every
    v1 hierarchy, or the v2 one). ``userns_base``: the host uid/gid of container root (a new
    user namespace maps its 65536 ids from there), or None for no user namespace (the admin's
    per-template opt-out). ``user``: uid/gid of the process inside. ``token``: the launcher's
    per-shell token, its one argument (its identity at re-adoption).
    """
    tmp_dir, shm_dir, dev_dir = scratch
    mounts: list[dict[str, Any]] = [
        PROC_MOUNT,
        {  # a bind: the runtime makes no /dev of its own (no tmpfs, no nodes). Not noexec,
            # as the runtimes' /dev is not: mmap of /dev/zero with PROT_EXEC must work.
            "destination": "/dev",
            "type": "bind",
            "source": str(dev_dir),
            "options": ["bind", "ro", "nosuid"],
        },
    ]
    if template.mounts.devpts:
        mounts.append(
            {
                "destination": "/dev/pts",
                "type": "devpts",
                "source": "devpts",
                "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"],
            }
        )
    mounts += [
        {
            "destination": "/dev/shm",  # noqa: S108 (the container's own)
            "type": "bind",
            "source": str(shm_dir),
            "options": ["bind", "nosuid", "noexec", "nodev"],
        },
        {  # keyed by the IPC namespace: the superblock the namespace has anyway
            "destination": "/dev/mqueue",
            "type": "mqueue",
            "source": "mqueue",
            "options": ["nosuid", "noexec", "nodev"],
        },
    ]
    if template.mounts.sysfs:
        mounts.append(
            {
                "destination": "/sys",
                "type": "sysfs",
                "source": "sysfs",
                "options": ["nosuid", "noexec", "nodev", "ro"],
            }
        )
        mounts += [
            {
                "destination": masked,
                "type": "bind",
                "source": str(empty_dir),
                "options": ["bind", "ro", "nosuid", "nodev", "noexec"],
            }
            for masked in MASKED_DIRS
        ]
    mounts += [
        {
            "destination": "/tmp",  # noqa: S108 (the container's own)
            "type": "bind",
            "source": str(tmp_dir),
            "options": ["bind", "nosuid", "nodev"],
        },
        {
            "destination": LAUNCHER_IN_ROOT,
            "type": "bind",
            "source": str(launcher),
            "options": ["bind", "ro", "nosuid", "nodev"],
        },
        {
            "destination": ASSIGN_DIR_IN_ROOT,
            "type": "bind",
            "source": str(assign_dir),
            "options": ["bind", "ro", "nosuid", "nodev"],
        },
    ]
    namespaces = ["pid", "network", "ipc", "uts", "mount", "cgroup"]
    if userns_base is not None:
        namespaces.append("user")
    config = runtime_config(
        args=launcher_argv(token),
        hostname=container_id,
        rootfs=str(rootfs),
        mounts=mounts,
        namespaces=namespaces,
        cgroups_path=cgroups_path,
        resources=linux_resources(template.resources),
        capabilities=list(template.capabilities),
        rlimits=[{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
        seccomp=seccomp_profile(),
        masked_paths=list(MASKED_PATHS),
        readonly_paths=list(READONLY_PATHS),
        user=user,
        cwd=template.workdir or "/",
    )
    if template.sysctls:  # namespaced settings of the instance's own netns (checked)
        config["linux"]["sysctl"] = dict(template.sysctls)
    if userns_base is not None:
        config["linux"]["uidMappings"] = mappings(userns_base)
        config["linux"]["gidMappings"] = mappings(userns_base)
    return config


def workload_env(
    template_env: dict[str, str], request_env: dict[str, str], name: str
) -> dict[str, str]:
    """The workload's whole environment (the launcher passes exactly this, C or sh): PATH unless
    the template or request sets it, then the template's, the request's, and the instance name."""
    return {"PATH": DEFAULT_PATH, **template_env, **request_env, "FLUIDEDGE_INSTANCE": name}


def encode_assignment(argv: list[str], env: dict[str, str]) -> bytes:
    """The launcher's assignment: ``argc NUL argv... NUL KEY=VALUE NUL...``."""
    parts = [str(len(argv)), *argv, *(f"{k}={v}" for k, v in env.items())]
    return b"".join(part.encode() + b"\0" for part in parts)
