"""A hostile tenant against its neighbours: real containers, each attack asserting containment.

The attacker is an instance running the host's ``python3`` (visible through the read-only
``/usr``) with a script that tries, with raw syscalls through ctypes: a user namespace (unshare
and clone with CLONE_NEWUSER), io_uring, ptrace of a process of its own and of the neighbour,
mount, bpf, keyctl, raw and packet sockets, and reading the neighbour's assignment (which holds a
secret in its environment) by every path it could know. It records each errno. Sanity checks
prove the script runs the calls for real (its own assignment is readable, fork and threads
work), so a denial is containment, not a broken probe. Runs on the host's cgroup v1 and, in the
VM tier (``scripts/vmtest``), on pure v2.
"""

from __future__ import annotations

import errno
import json
import os
import stat
import time
from pathlib import Path
from typing import Any

import pytest

from fluidedge.instances.models import InstanceRequest

from .conftest import ManagerFactory

pytestmark = pytest.mark.root

ATTACK = r"""
import ctypes, json, os, socket, sys, threading
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
out = {}
def sys_(name, nr, *args):
    ctypes.set_errno(0)
    argv = [ctypes.c_long(a) if isinstance(a, int) else a for a in args]
    r = libc.syscall(ctypes.c_long(nr), *argv)
    if r == 0 and name == "clone_newuser":
        libc.syscall(ctypes.c_long(60), ctypes.c_long(0))  # the child, if one was made: exit
    out[name] = "ok" if r >= 0 else ctypes.get_errno()
CLONE_NEWUSER, SIGCHLD = 0x10000000, 17
sys_("unshare_newuser", 272, CLONE_NEWUSER)
sys_("clone_newuser", 56, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0)
params = ctypes.create_string_buffer(120)
sys_("io_uring_setup", 425, 4, params)
sys_("bpf", 321, 0, 0, 0)
sys_("keyctl", 250, 0, 0, 0, 0, 0)
os.makedirs("/tmp/m", exist_ok=True)
ctypes.set_errno(0)
r = libc.mount(b"tmpfs", b"/tmp/m", b"tmpfs", 0, None)
out["mount"] = "ok" if r == 0 else ctypes.get_errno()
child = os.fork()
if child == 0:
    os.execv("/bin/busybox", ["sleep", "60"])
out["fork"] = "ok"
sys_("ptrace_own_child", 101, 16, child, 0, 0)   # PTRACE_ATTACH
sys_("ptrace_neighbour", 101, 16, int(sys.argv[1]), 0, 0)
os.kill(child, 9)
t = threading.Thread(target=lambda: None); t.start(); t.join(); out["thread"] = "ok"
for name, args in (("raw_socket", (socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)),
                   ("packet_socket", (socket.AF_PACKET, socket.SOCK_RAW, 0))):
    try:
        socket.socket(*args).close(); out[name] = "ok"
    except OSError as exc:
        out[name] = exc.errno
out["own_assignment"] = "ok" if b"ATTACKER=1" in open("/.fe/assign", "rb").read() else "no"
reads = {}
for path in sys.argv[2:]:
    try:
        reads[path] = open(path, "rb").read().decode(errors="replace")
    except OSError as exc:
        reads[path] = exc.errno
out["neighbour_reads"] = reads
with open("/tmp/attack.new", "w") as handle:
    json.dump(out, handle)
os.rename("/tmp/attack.new", "/tmp/attack.json")
"""


def _results(pid: int, timeout: float = 60.0) -> dict[str, Any]:
    path = Path(f"/proc/{pid}/root/tmp/attack.json")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            return dict(json.loads(path.read_text()))
        except (OSError, ValueError):
            time.sleep(0.05)
    raise AssertionError(f"the attack script left no results (pid {pid})")


def test_hostile_tenant_is_contained(manager_factory: ManagerFactory) -> None:
    manager = manager_factory(pool_scale=0)
    victim = manager.create_instance(
        InstanceRequest(name="victim", template="idle", env={"SECRET": "s3cr3t-token"})
    )
    victim_assign = manager.shell_root / victim.id / "assign" / "assign"
    assert b"SECRET=s3cr3t-token" in victim_assign.read_bytes()
    # The secret is root-only on the host: 0600 file, 0700 directories up to the state dir.
    assert stat.S_IMODE(victim_assign.stat().st_mode) == 0o600
    for directory in (
        victim_assign.parent,
        victim_assign.parent.parent,
        manager.shell_root,
        manager.state_dir,
    ):
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700, directory
    log = manager.shell_root / victim.id / "log"
    assert stat.S_IMODE(log.stat().st_mode) == 0o600
    attacker = manager.create_instance(
        InstanceRequest(
            name="attacker",
            template="idle",
            command=[
                "/bin/busybox",
                "sh",
                "-c",
                'python3 -c "$0" "$@"; sleep 1000',
                ATTACK,
                str(victim.pid),
                str(victim_assign),
                f"/proc/{victim.pid}/root/.fe/assign",
                f"/proc/{victim.pid}/environ",
                "/proc/1/root/.fe/assign",  # its own pid 1 is itself: proves the path form works
            ],
            env={"ATTACKER": "1"},
            resources={"memory_mb": 64},
        )
    )
    got = _results(attacker.pid or 0)
    print({k: v for k, v in got.items() if k != "neighbour_reads"})  # pytest -s: what it saw
    # Sanity: the probe really ran its calls.
    assert (got["fork"], got["thread"], got["own_assignment"]) == ("ok", "ok", "ok")
    # Seccomp's allow-list answers EPERM to what is not on it.
    for name in ("unshare_newuser", "clone_newuser", "io_uring_setup", "bpf", "keyctl", "mount"):
        assert got[name] == errno.EPERM, (name, got[name])
    assert got["ptrace_own_child"] == errno.EPERM
    # The neighbour is not even visible from its pid namespace.
    assert got["ptrace_neighbour"] in (errno.ESRCH, errno.EPERM)
    # No CAP_NET_RAW: raw and packet sockets are refused.
    assert got["raw_socket"] == errno.EPERM
    assert got["packet_socket"] == errno.EPERM
    reads = got["neighbour_reads"]
    assert reads[str(victim_assign)] == errno.ENOENT  # the host's state dir is not in its root
    assert reads[f"/proc/{victim.pid}/root/.fe/assign"] in (errno.ENOENT, errno.EACCES)
    assert reads[f"/proc/{victim.pid}/environ"] in (errno.ENOENT, errno.EACCES)
    assert "ATTACKER=1" in reads["/proc/1/root/.fe/assign"]
    assert not any("s3cr3t" in str(value) for value in reads.values())
    # And the victim was not disturbed.
    assert manager.get_instance("victim").view().state == "running"
    assert os.path.exists(f"/proc/{victim.pid}")
