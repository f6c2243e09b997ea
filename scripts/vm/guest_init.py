"""PID 1 of the test VM (Debian's python3, after the initramfs's switch_root).

Mounts what a pure cgroup-v2 host has (proc, sys, cgroup2 at /sys/fs/cgroup, tmpfs /tmp and
/run, devpts, /dev/shm) or, with ``"cgroup": "hybrid"`` in its config, what the development
machines have instead (v1 hierarchies under a tmpfs, an empty cgroup2 at ``unified``: the same
kernel in both modes, for the benches that compare them), and the run's 9p shares at the paths
the host gave; runs the payload with its output to the console and to ``/fe-io/output``,
writes its exit status to ``/fe-io/rc`` and powers off. As PID 1 it also reaps every orphan (a
container's init re-parents here, and an unreaped task keeps its cgroup busy), so it waits on
all children, not only the payload.

With ``"init": "systemd"`` it hands over to systemd instead, as a stock Debian host boots: it
mounts the shares, writes ``fe-payload.service`` (this script with ``--payload``: the payload,
its output, its status, then power off) and execs ``/lib/systemd/systemd`` with that unit as
the default, so the payload runs as a service beside what it starts with ``systemctl``
(systemd mounts cgroup2, /run, /dev/shm... itself).

Reads ``/fe-io/config.json``: ``argv``, ``cwd``, ``env``, ``mounts`` ([{tag, path, readonly}]),
``cgroup`` (``v2``, the default, or ``hybrid``), ``init`` (``script``, the default, or
``systemd``).
Copied into the io share by ``scripts/vm/run.py`` on every run (no image rebuild to change it).
"""

import ctypes
import json
import os
import subprocess
import sys
import threading

IO = "/fe-io"


def mount(source: str, target: str, fstype: str, options: str = "") -> None:
    os.makedirs(target, exist_ok=True)
    argv = ["mount", "-t", fstype, *(["-o", options] if options else []), source, target]
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        print(f"fe-vm: mount {target}: {result.stderr.strip()}", flush=True)


def power_off() -> None:
    os.sync()
    libc = ctypes.CDLL(None, use_errno=True)
    libc.reboot(0x4321FEDC)  # LINUX_REBOOT_CMD_POWER_OFF


def pump(stream, sinks) -> None:  # type: ignore[no-untyped-def]
    for chunk in iter(lambda: stream.read1(65536), b""):
        for sink in sinks:
            sink.write(chunk)
            sink.flush()


# The development machines' hybrid layout (systemd's "hybrid" with cpu and cpuacct apart).
V1_HIERARCHIES = ("cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids")


def mount_cgroups(mode: str) -> str:
    """Mount the cgroup hierarchies of ``mode``; say what the payload finds."""
    if mode != "hybrid":
        mount("cgroup2", "/sys/fs/cgroup", "cgroup2", "nsdelegate")
        with open("/sys/fs/cgroup/cgroup.controllers") as handle:
            return f"cgroup v2 at /sys/fs/cgroup ({handle.read().strip()})"
    mount("tmpfs", "/sys/fs/cgroup", "tmpfs", "mode=755")
    for name in V1_HIERARCHIES:
        mount("cgroup", f"/sys/fs/cgroup/{name}", "cgroup", name)
    mount("cgroup", "/sys/fs/cgroup/systemd", "cgroup", "none,name=systemd")
    mount("cgroup2", "/sys/fs/cgroup/unified", "cgroup2")
    return f"hybrid cgroups: v1 {' '.join(V1_HIERARCHIES)}, empty cgroup2 at unified"


PAYLOAD_UNIT = """\
[Unit]
Description=fluidedge VM payload (scripts/vm/guest_init.py --payload)
After=basic.target systemd-journald.service

[Service]
Type=exec
ExecStart=/usr/bin/python3 /fe-io/guest_init.py --payload
"""


def mount_shares(config: dict) -> None:  # type: ignore[type-arg]
    for share in config.get("mounts", []):
        options = "trans=virtio,version=9p2000.L,msize=262144,cache=loose"
        mount(share["tag"], share["path"], "9p", options + (",ro" if share.get("readonly") else ""))


def hand_over_to_systemd(config: dict) -> None:  # type: ignore[type-arg]
    """Become systemd (PID 1 stays PID 1) with the payload's unit as the default unit."""
    mount_shares(config)
    with open("/etc/systemd/system/fe-payload.service", "w") as handle:
        handle.write(PAYLOAD_UNIT)
    print(f"fe-vm: Linux {os.uname().release}, systemd as PID 1", flush=True)
    os.execv(
        "/lib/systemd/systemd",
        ["/lib/systemd/systemd", "--unit=fe-payload.service", "--show-status=0"],
    )


def run_payload(config: dict, *, reap_all: bool) -> int | None:  # type: ignore[type-arg]
    """Run the payload, its output to ``/fe-io/output`` and the console; its exit status.
    ``reap_all`` (PID 1): wait on every child, not only the payload."""
    env = {
        "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": "/root",
        "LANG": "C.UTF-8",
        **config.get("env", {}),
    }
    output = open(f"{IO}/output", "wb")
    console = sys.stdout.buffer if reap_all else open("/dev/console", "wb")
    proc = subprocess.Popen(
        config["argv"],
        cwd=config.get("cwd", "/"),
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    assert proc.stdout is not None
    pumper = threading.Thread(target=pump, args=(proc.stdout, [output, console]), daemon=True)
    pumper.start()
    status = None
    if not reap_all:
        status = proc.wait()
    while status is None:  # reap everything; remember the payload's status
        try:
            pid, raw = os.wait()
        except ChildProcessError:
            break
        if pid == proc.pid:
            status = os.waitstatus_to_exitcode(raw)
    pumper.join(timeout=10)
    output.close()
    return status


def write_status(status: int | None) -> None:
    with open(f"{IO}/rc", "w") as handle:
        handle.write(f"{status if status is not None else 255}\n")


def payload_service() -> None:
    """``--payload``: the payload as systemd's ``fe-payload.service``, then power off."""
    status = None
    try:
        with open(f"{IO}/config.json") as handle:
            status = run_payload(json.load(handle), reap_all=False)
    finally:
        write_status(status)
        power_off()


def main() -> int:
    mount("proc", "/proc", "proc")
    with open(f"{IO}/config.json") as handle:
        config = json.load(handle)
    if config.get("init") == "systemd":
        hand_over_to_systemd(config)
    mount("sysfs", "/sys", "sysfs")
    cgroups = mount_cgroups(config.get("cgroup", "v2"))
    mount("tmpfs", "/tmp", "tmpfs", "mode=1777")
    mount("tmpfs", "/run", "tmpfs", "mode=755")
    mount("devpts", "/dev/pts", "devpts", "newinstance,ptmxmode=0666")
    mount("tmpfs", "/dev/shm", "tmpfs", "mode=1777")
    mount("tmpfs", "/var/tmp", "tmpfs", "mode=1777")
    subprocess.run(["ip", "link", "set", "lo", "up"], check=False)
    # What systemd's kmod-static-nodes does on a stock host: /dev/net/tun exists (opening it
    # loads tun). Open vSwitch's userspace datapath needs it for its internal ports.
    subprocess.run(["/sbin/modprobe", "tun"], check=False)  # PID 1 has no PATH with sbin
    with open("/proc/sys/kernel/hostname", "w") as handle:
        handle.write("fevm")
    print(f"fe-vm: Linux {os.uname().release}, {cgroups}")
    mount_shares(config)
    write_status(run_payload(config, reap_all=True))
    return 0


if __name__ == "__main__":
    if sys.argv[1:] == ["--payload"]:
        payload_service()
    try:
        main()
    except BaseException as exc:  # PID 1 must never exit: report, then power off
        print(f"fe-vm: guest init failed: {exc!r}", flush=True)
    power_off()
