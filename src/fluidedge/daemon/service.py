"""Install the daemon as a systemd service: the unit, a default config, the directories.

``fluidedge install-service`` writes ``/etc/systemd/system/fluidedge.service`` and, unless one
exists, ``/etc/fluidedge/fluidedge.toml``; state goes to ``/var/lib/fluidedge`` (mode 0700) and
logs to the journal (structured fields, :mod:`fluidedge.daemon.logs`). Rendering is pure
(:func:`render_unit`, :func:`default_config`) so it is tested without systemd running, and
checked with ``systemd-analyze verify`` where that tool exists.

The sandbox is as tight as a root network daemon that makes containers allows. What it must
leave open, and why, is said next to each setting in the unit itself (docs/daemon.md repeats
it): namespaces (runc makes pid/net/ipc/uts/mount namespaces, the TOF enters the lab's),
cgroups (``/sys/fs/cgroup`` written for every instance), BPF (the TOF fast path loads tc
programs and pins maps under ``/sys/fs/bpf``), ``/run`` (network namespaces, runc), raw and
netlink sockets (AF_PACKET data plane, rtnetlink).
"""

from __future__ import annotations

import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

UNIT_NAME = "fluidedge.service"

# Capabilities the daemon and its children (runc, instances) may hold. Instances get none
# unless their template asks, and can only ask for one of these. Left out on purpose:
# CAP_SYS_MODULE, CAP_SYS_BOOT, CAP_SYS_TIME, CAP_SYS_RAWIO, CAP_SYSLOG, CAP_MAC_*,
# CAP_LINUX_IMMUTABLE, CAP_WAKE_ALARM, CAP_BLOCK_SUSPEND, CAP_AUDIT_CONTROL, CAP_AUDIT_READ,
# CAP_SYS_PACCT, CAP_SYS_TTY_CONFIG, CAP_LEASE, CAP_CHECKPOINT_RESTORE.
CAPABILITIES = (
    "CAP_NET_ADMIN",  # links, bridges, addresses, routes, tc; socket buffers past rmem_max
    "CAP_NET_RAW",  # AF_PACKET data plane
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_ADMIN",  # setns/unshare, mounts (runc), BPF on kernels without CAP_BPF
    "CAP_BPF",
    "CAP_PERFMON",  # BPF programs that read kernel memory (verifier rules)
    "CAP_IPC_LOCK",  # BPF map memory on kernels that charge RLIMIT_MEMLOCK
    "CAP_SYS_PTRACE",  # /proc/<pid>/exe and ns of instance processes (readiness, re-adoption)
    "CAP_SYS_CHROOT",  # runc pivot_root
    "CAP_SYS_RESOURCE",
    "CAP_SYS_NICE",
    "CAP_KILL",
    "CAP_SETUID",
    "CAP_SETGID",
    "CAP_SETPCAP",  # runc drops capabilities for the instance
    "CAP_SETFCAP",
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_MKNOD",  # runc device nodes
    "CAP_AUDIT_WRITE",
)


@dataclass(frozen=True)
class ServicePaths:
    """Where the service's files go (``root`` prefixes them all, for tests and packaging)."""

    root: Path = Path("/")
    python: str = ""  # the interpreter running fluidedge; default: this one

    @property
    def unit(self) -> Path:
        return self.root / "etc/systemd/system" / UNIT_NAME

    @property
    def config_dir(self) -> Path:
        return self.root / "etc/fluidedge"

    @property
    def config(self) -> Path:
        return self.config_dir / "fluidedge.toml"

    @property
    def state_dir(self) -> Path:
        return self.root / "var/lib/fluidedge"


def render_unit(python: str, config: Path = Path("/etc/fluidedge/fluidedge.toml")) -> str:
    """The systemd unit text for the daemon run by ``python`` with ``config``."""
    exec_start = shlex.join([python, "-m", "fluidedge", "serve", "--config", str(config)])
    modules = shlex.join([python, "-m", "fluidedge", "kernel-modules", "--config", str(config)])
    caps = " ".join(CAPABILITIES)
    return f"""\
# fluidedge daemon (written by `fluidedge install-service`; see docs/daemon.md)
[Unit]
Description=fluidedge mobile-edge node daemon (TOF and instance manager)
Documentation=man:systemd.exec(5)
After=network-online.target
Wants=network-online.target

[Service]
Type=exec
# The kernel modules the configured parts need (daemon/modules.py), loaded with the privilege
# the daemon's sandbox leaves out ("+": no sandbox; "-": a failure is the part's to report).
ExecStartPre=-+{modules}
ExecStart={exec_start}
Restart=on-failure
RestartSec=2s
# A refused start (damaged store, state_dir locked) exits 1: do not loop on it.
RestartPreventExitStatus=1
TimeoutStopSec=120
# Stop the daemon, never the instances: they are re-adopted at the next start.
KillMode=process
Environment=PYTHONUNBUFFERED=1

# Logs: structured records to the journal (FLUIDEDGE_PART, FLUIDEDGE_EVENT, FLUIDEDGE_IDS).
SyslogIdentifier=fluidedge
StandardOutput=journal
StandardError=journal

# Files: config read-only in /etc/fluidedge, state 0700 in /var/lib/fluidedge, what can be
# rebuilt (the built-in image's layout, compiled eBPF objects) 0700 in /var/cache/fluidedge.
ConfigurationDirectory=fluidedge
StateDirectory=fluidedge
StateDirectoryMode=0700
CacheDirectory=fluidedge
CacheDirectoryMode=0700
RuntimeDirectory=fluidedge
RuntimeDirectoryMode=0700
UMask=0077

# Sandbox: the file system is read-only but for the state, /run (network namespaces, runc),
# /sys/fs/cgroup (every instance's cgroups), /sys/fs/bpf (the TOF fast path's pinned maps)
# and the host's /tmp and /var/tmp (the compilers' and image tools' scratch files).
ProtectSystem=strict
ReadWritePaths=/run -/sys/fs/cgroup -/sys/fs/bpf /tmp /var/tmp
ProtectHome=read-only
NoNewPrivileges=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectClock=yes
LockPersonality=yes
RestrictRealtime=yes
SystemCallArchitectures=native
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK AF_PACKET
CapabilityBoundingSet={caps}
# Left open on purpose (each would break a part):
#   RestrictNamespaces=    runc makes pid/net/ipc/uts/mount namespaces; the TOF enters the lab's
#   ProtectControlGroups=  instances' cgroups are written under /sys/fs/cgroup
#   ProtectKernelTunables= cgroup and BPF file systems live under /sys; net sysctls
#   PrivateDevices=        the TOF's TUN device; runc makes device nodes for instances
#   PrivateNetwork=        it is a network function
#   ProtectHostname=       instances set their own hostname (UTS namespace)
#   PrivateTmp=            an image import reads a path of the host (POST /v1/images), and
#                          operators stage archives in /tmp (docker save -o /tmp/app.tar)
#   RestrictSUIDSGID=      image layers hold setuid/setgid files (su, passwd, ping): the
#                          import restores their modes in the 0700 store, inert in instances
#                          (noNewPrivileges, and their owner is an unprivileged mapped uid)
#   MemoryDenyWriteExecute= and SystemCallFilter= are inherited by instances' workloads
#                          (JITs, arbitrary syscalls behind their own seccomp filter)
# cgroup v2: the instances' cgroups are under /fluidedge at the root, not below this unit
# (systemd restarts the unit in its own cgroup, which must then hold no child cgroups using
# controllers); delegation keeps every controller enabled from the root down, which they use.
Delegate=yes
LimitNOFILE=65536

[Install]
WantedBy=multi-user.target
"""


def default_config(state_dir: Path = Path("/var/lib/fluidedge")) -> str:
    """The default ``/etc/fluidedge/fluidedge.toml`` (loopback API, both parts off)."""
    return f"""\
# fluidedge daemon configuration (docs/daemon.md; each part's keys in docs/<part>.md)
state_dir = "{state_dir}"
store_synchronous = "full"   # a 2xx means on disk; "normal" survives a crash, not power loss

[api]
listen = "127.0.0.1"         # loopback only
port = 8181
# token: read from state_dir/token (created 0600 on first start)

# Enable parts by uncommenting their table:
# [instances]
# [tof]
# backend = "userspace"
# netns = "fe-host"
# enb_interface = "s1enb"
# sgw_interface = "s1sgw"
"""


def install(paths: ServicePaths, *, overwrite_config: bool = False) -> list[Path]:
    """Write the unit (always) and the default config (unless present); return what was
    written. The caller runs ``systemctl daemon-reload`` (there may be no systemd here)."""
    # Not resolved: a virtualenv's interpreter is a symlink that must stay one.
    python = paths.python or sys.executable
    written = []
    paths.unit.parent.mkdir(parents=True, exist_ok=True)
    paths.unit.write_text(render_unit(python, Path("/etc/fluidedge/fluidedge.toml")))
    paths.unit.chmod(0o644)
    written.append(paths.unit)
    paths.config_dir.mkdir(parents=True, exist_ok=True)
    if overwrite_config or not paths.config.exists():
        paths.config.write_text(default_config())
        paths.config.chmod(0o644)
        written.append(paths.config)
    paths.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    paths.state_dir.chmod(0o700)
    return written
