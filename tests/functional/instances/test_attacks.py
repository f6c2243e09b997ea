"""A hostile tenant against its neighbours: real containers, each attack asserting containment.

The attacker is an instance running ``python3`` (an image built from the host's python,
``tests/fixtures/images.py``) with a script that tries, with raw syscalls through ctypes: a
user namespace (unshare and clone with CLONE_NEWUSER), io_uring, ptrace of a process of its
own and of the neighbour, mount, bpf, keyctl, raw and packet sockets, and reading the
neighbour's assignment (which holds a secret in its environment) by every path it could know.
It records each errno. Sanity checks prove the script runs the calls for real (its own
assignment is readable, fork and threads work), so a denial is containment, not a broken
probe. Runs on the host's cgroup v1 and, in the VM tier (``scripts/vmtest``), on pure v2.

Images and user namespaces (issue 12 §2, §3): an instance sees none of the host's files (not
``/etc/shadow``, not a world-readable file planted under ``/etc``), and its root is an
unprivileged host uid of its own range (``uid_map``, the owner of what it creates, its
``/proc/<pid>/status`` on the host), distinct from its neighbour's.
"""

from __future__ import annotations

import errno
import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from fluidedge.instances.images.store import ImageImport
from fluidedge.instances.models import InstanceRequest, TemplateSpec
from tests.fixtures.wait import wait_for

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
out["own_assignment"] = "ok" if os.environ.get("ATTACKER") == "1" else "no"
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

    def read() -> dict[str, Any] | None:
        try:
            return dict(json.loads(path.read_text()))
        except (OSError, ValueError):  # not written yet
            return None

    return wait_for(read, timeout, f"the attack script's results (pid {pid})")


def test_hostile_tenant_is_contained(manager_factory: ManagerFactory, python_image: Path) -> None:
    manager = manager_factory(pool_scale=0)
    manager.images.import_image(ImageImport(name="python", source=str(python_image), ref="python"))
    manager.create_template(
        TemplateSpec(name="probe", image="python", command=["/bin/busybox", "sleep", "1"])
    )
    victim = manager.create_instance(
        InstanceRequest(name="victim", template="idle", env={"SECRET": "s3cr3t-token"})
    )
    victim_assign = manager.shell_root / victim.id / "assign" / "assign"
    # The secret reached the workload (its environment) through the launcher's go FIFO and
    # rests nowhere on the host's disk: no file under the instance's directory holds it.
    assert b"SECRET=s3cr3t-token" in Path(f"/proc/{victim.pid}/environ").read_bytes()
    assert not victim_assign.exists()
    for path in (manager.shell_root / victim.id).rglob("*"):
        if path.is_file():
            assert b"s3cr3t" not in path.read_bytes(), path
    # What is there is root-only on the host: 0700 directories up to the state dir.
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
            template="probe",
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
                "/proc/1/environ",  # its own pid 1 is itself: proves the path form works
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
    assert "ATTACKER=1" in reads["/proc/1/environ"]
    assert not any("s3cr3t" in str(value) for value in reads.values())
    # And the victim was not disturbed.
    assert manager.get_instance("victim").view().state == "running"
    assert os.path.exists(f"/proc/{victim.pid}")


def _log_until(manager: Any, name: str, marker: str, timeout: float = 30.0) -> str:
    def logged() -> str | None:
        text = str(manager.logs(name))
        return text if marker in text else None

    return wait_for(logged, timeout, lambda: f"{name} to log {marker!r}: {manager.logs(name)!r}")


def test_host_files_are_not_in_an_instance(manager_factory: ManagerFactory) -> None:
    planted = Path(f"/etc/fe-planted-{os.getpid()}")
    planted.write_text("host-secret-planted\n")
    os.chmod(planted, 0o644)  # world-readable on the host: only its absence protects it
    try:
        manager = manager_factory(pool_scale=0)
        script = (
            f"for f in /etc/shadow {planted} /etc/hostname /usr/bin/python3; do "
            'if cat "$f" >/dev/null 2>&1; then echo "READ $f"; else echo "DENIED $f"; fi; '
            "done; echo probe-done; sleep 1000"
        )
        inst = manager.create_instance(
            InstanceRequest(name="reader", template="idle", command=["/bin/sh", "-c", script])
        )
        text = _log_until(manager, "reader", "probe-done")
        for path in ("/etc/shadow", str(planted), "/etc/hostname", "/usr/bin/python3"):
            assert f"DENIED {path}" in text, text
        assert "READ" not in text
        assert "host-secret-planted" not in text
        # Its root is the busybox image's, seen from the host too.
        root = Path(f"/proc/{inst.pid}/root")
        assert not (root / "etc" / "shadow").exists()
        assert not (root / planted.relative_to("/")).exists()
        assert (root / "bin" / "busybox").exists()
    finally:
        planted.unlink()


def _host_ids(pid: int) -> tuple[int, int]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.split()
    return int(fields["Uid"][0]), int(fields["Gid"][0])


def test_container_root_is_not_host_root(manager_factory: ManagerFactory) -> None:
    manager = manager_factory(pool_scale=0)
    script = "cat /proc/self/uid_map; id -u; touch /tmp/made-inside; echo probe-done; sleep 1000"
    one = manager.create_instance(
        InstanceRequest(name="one", template="idle", command=["/bin/sh", "-c", script])
    )
    two = manager.create_instance(InstanceRequest(name="two", template="idle"))
    text = _log_until(manager, "one", "probe-done")
    inside, host, size = (int(x) for x in text.split("\n")[0].split())
    assert (inside, size) == (0, 65536)
    assert host >= 1 << 16  # an unprivileged range, not host root
    assert text.split("\n")[1].strip() == "0"  # root inside...
    assert _host_ids(one.pid or 0) == (host, host)  # ...an unprivileged uid outside
    made = Path(f"/proc/{one.pid}/root/tmp/made-inside")
    wait_for(made.exists, 10, f"{made}")
    assert (made.stat().st_uid, made.stat().st_gid) == (host, host)
    # The neighbour's root is another range: no uid in common.
    other = _host_ids(two.pid or 0)[0]
    assert abs(other - host) >= 65536
    # What its launcher reads is its own root's: the FIFOs it was released through.
    for fifo in ("go", "started"):
        path = manager.shell_root / one.id / "assign" / fifo
        assert (path.stat().st_uid, stat.S_IMODE(path.stat().st_mode)) == (host, 0o600)


def test_userns_opt_out_is_recorded_and_runs_as_host_root(
    manager_factory: ManagerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    manager = manager_factory(pool_scale=0)
    manager.create_template(
        TemplateSpec.model_validate(
            {
                "name": "legacy",
                "command": ["/bin/sleep", "1000"],
                "userns_opt_out": "a legacy NF needs host uid 0",
            }
        )
    )
    assert "a legacy NF needs host uid 0" in caplog.text
    assert manager.get_template("legacy").userns_opt_out == "a legacy NF needs host uid 0"
    inst = manager.create_instance(InstanceRequest(name="legacy", template="legacy"))
    assert _host_ids(inst.pid or 0) == (0, 0)
