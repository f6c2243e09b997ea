"""Our own ``ovsdb-server`` + ``ovs-vswitchd``: start, adopt, stop, without systemd.

One pair per network namespace (a userspace-datapath switch opens its ports with AF_PACKET in
the namespace it runs in, so a network inside a namespace needs a vswitchd there), and at
most one userspace-datapath switch per namespace on the whole host: the netdev datapath owns a
persistent tap named ``ovs-netdev`` there, which a second switch cannot open (tests therefore
put their switches in namespaces of their own). :meth:`OvsDaemons.stop` exits with
``--cleanup`` so the taps go with the switch. Everything
lives under ``root`` (mode 0700): ``db/conf.db``, ``run/`` (sockets, pidfiles, each bridge's
``.mgmt`` socket), ``log/``. The daemons detach, so they outlive a restart of the fluidedge
daemon: :meth:`OvsDaemons.start` adopts a running pair (pidfile + a live control socket)
instead of starting a second one, and the bridges, ports and flows they hold stay in place.

Datapath: ``netdev`` (userspace, works everywhere; these machines have no ``openvswitch``
kernel module) or ``system`` (the kernel datapath). ``auto`` picks ``system`` when the module is
loaded or loadable. The kernel datapath is one per network namespace (``ovs-system``) and
belongs to one switch: a vswitchd that opens it deletes the ports it does not know, flushes
its flows, and deletes it whole at ``exit --cleanup``. An operator's host often runs its own
Open vSwitch (Debian's ``openvswitch-switch`` service, started when the package is
installed), so a switch of ours never takes the kernel datapath of a namespace where another
``ovs-vswitchd`` runs (:func:`foreign_switches`): ``system`` is refused there with the other
switch's pid, ``auto`` takes ``netdev`` (:func:`choose_datapath`).
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

from fluidedge.linux import procfs
from fluidedge.linux.netns import describe as netns_describe
from fluidedge.linux.proc import netns_argv
from fluidedge.ovs import tool
from fluidedge.ovs.errors import OvsFailure, OvsNotRunning

SCHEMA = Path("/usr/share/openvswitch/vswitch.ovsschema")
DATAPATHS = ("netdev", "system")


def kernel_datapath_available() -> bool:
    """True if the ``openvswitch`` kernel module is loaded or can be loaded here."""
    if Path("/sys/module/openvswitch").is_dir():
        return True
    with contextlib.suppress(OvsFailure):
        tool.run(["modprobe", "-q", "openvswitch"], {}, timeout=20.0)
        return Path("/sys/module/openvswitch").is_dir()
    return False


def choose_datapath(wanted: str, *, module: bool, foreign: bool) -> str:
    """The datapath of a new switch: ``wanted`` (netdev/system/auto), whether the kernel module
    is there, whether another ovs-vswitchd runs in the switch's namespace. ``auto`` takes the
    kernel datapath only where it is free; ``system`` stays (and is refused at start if taken)."""
    if wanted not in (*DATAPATHS, "auto"):
        raise OvsFailure(f"datapath must be one of auto, {', '.join(DATAPATHS)}: {wanted!r}")
    if wanted == "auto":
        return "system" if module and not foreign else "netdev"
    return wanted


def _netns_identity(netns: str | None) -> tuple[int, int] | None:
    """(device, inode) of network namespace ``netns`` (None: this process's)."""
    try:
        found = os.stat(f"/run/netns/{netns}" if netns else "/proc/self/ns/net")
    except OSError:
        return None
    return found.st_dev, found.st_ino


def foreign_switches(netns: str | None, ours: int | None = None) -> list[tuple[int, str]]:
    """The ``ovs-vswitchd`` processes in namespace ``netns`` (None: this process's) other than
    pid ``ours``: (pid, command line). What the kernel datapath there would be shared with."""
    target = _netns_identity(netns)
    if target is None:
        return []
    found: list[tuple[int, str]] = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == ours:
            continue
        try:
            with open(f"/proc/{entry.name}/comm", "rb") as handle:
                if handle.read().strip() != b"ovs-vswitchd":
                    continue
            ns = os.stat(f"/proc/{entry.name}/ns/net")
            with open(f"/proc/{entry.name}/cmdline", "rb") as handle:
                cmdline = handle.read().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:  # gone meanwhile, or not ours to read
            continue
        if (ns.st_dev, ns.st_ino) == target:
            found.append((int(entry.name), cmdline))
    return sorted(found)


def private(path: Path) -> Path:
    """``path`` as a directory only its owner may enter (0700)."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path, 0o700)
    return path


def alive(pidfile: Path) -> int | None:
    """The pid in ``pidfile`` if that process is alive: a zombie is not (a daemon killed
    under a parent that does not reap, such as a container's ``sleep`` as pid 1, stays one
    for good, and ``kill(pid, 0)`` succeeds on it)."""
    try:
        pid = int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if procfs.process_running(pid) else None


class OvsDaemons:
    """The ovsdb-server/ovs-vswitchd pair under ``root``, in namespace ``netns``."""

    def __init__(self, root: Path, netns: str | None = None, datapath: str = "netdev") -> None:
        self.root = root
        self.netns = netns
        self.datapath = datapath
        self.run_dir = root / "run"
        self.db_dir = root / "db"
        self.log_dir = root / "log"
        self.db_file = self.db_dir / "conf.db"
        self.db_sock = self.run_dir / "db.sock"
        self.db_ctl = self.run_dir / "ovsdb-server.ctl"
        self.vswitchd_ctl = self.run_dir / "ovs-vswitchd.ctl"
        self.db_pidfile = self.run_dir / "ovsdb-server.pid"
        self.vswitchd_pidfile = self.run_dir / "ovs-vswitchd.pid"
        # Bumped by every start that started something: a component that installed flows
        # at another generation knows they are gone (a new vswitchd starts with none).
        self.generation = 0

    @property
    def env(self) -> dict[str, str]:
        """What every tool call carries so it talks to this switch and no other."""
        return {
            "OVS_RUNDIR": str(self.run_dir),
            "OVS_DBDIR": str(self.db_dir),
            "OVS_LOGDIR": str(self.log_dir),
            "OVS_SYSCONFDIR": str(self.db_dir),
        }

    @property
    def db(self) -> str:
        return f"unix:{self.db_sock}"

    def mgmt(self, bridge: str) -> str:
        """The OpenFlow management socket of ``bridge`` (what ovs-ofctl connects to)."""
        return f"unix:{self.run_dir / bridge}.mgmt"

    # ------------------------------------------------------------------ state
    def pids(self) -> tuple[int | None, int | None]:
        return alive(self.db_pidfile), alive(self.vswitchd_pidfile)

    def _answers(self, ctl: Path) -> bool:
        if not ctl.exists():
            return False
        result = tool.run(
            ["ovs-appctl", "-t", str(ctl), "version"], self.env, check=False, timeout=5.0
        )
        return result.returncode == 0

    def running(self) -> bool:
        """Both daemons alive and answering on their control sockets."""
        db, vswitchd = self.pids()
        return (
            db is not None
            and vswitchd is not None
            and self._answers(self.db_ctl)
            and self._answers(self.vswitchd_ctl)
        )

    def _check_namespace(self) -> None:
        """Raise :class:`OvsFailure` if the running vswitchd is not in the namespace that
        ``netns`` names now (compared by the namespaces' inodes; a name that no longer exists
        is the caller's to refuse)."""
        if self.netns is None:
            return
        pid = alive(self.vswitchd_pidfile)
        try:
            ours = os.stat(f"/proc/{pid}/ns/net")
            named = os.stat(f"/run/netns/{self.netns}")
        except OSError:
            return  # gone meanwhile, or no such name: nothing to compare
        if (ours.st_dev, ours.st_ino) != (named.st_dev, named.st_ino):
            raise OvsFailure(
                f"ovs: the switch under {self.root} (ovs-vswitchd pid {pid}) runs in a namespace "
                f"whose name was deleted; {netns_describe(self.netns)} is another one now. "
                "Delete the networks of the old namespace (their switch stops with the last), "
                "then create them again"
            )

    def require(self) -> None:
        if not self.running():
            raise OvsNotRunning(f"ovs: the switch under {self.root} is not running")

    # ------------------------------------------------------------------ lifecycle
    def start(self, timeout: float = 30.0) -> bool:
        """Start the pair (or adopt a running one); return True if we started anything.

        A running pair is adopted only if it runs in the namespace ``netns`` names now: after
        ``ip netns del`` and ``ip netns add`` of the same name, the pair still runs in the old,
        nameless namespace, and a bridge added to it there would never meet the devices
        plugged into the new one (:class:`OvsFailure`, saying so)."""
        if self.running():
            self._check_namespace()
            return False
        # A half-alive pair (one daemon died) is restarted whole: a vswitchd without its
        # database would keep stale flows, a database without vswitchd forwards nothing.
        self.stop()
        self.generation += 1
        if self.datapath == "system":
            self._refuse_shared_kernel_datapath()
        for directory in (self.root, self.run_dir, self.db_dir, self.log_dir):
            private(directory)
        if not self.db_file.exists():
            tool.run(["ovsdb-tool", "create", str(self.db_file), str(SCHEMA)], self.env)
        else:
            converted = tool.run(
                ["ovsdb-tool", "needs-conversion", str(self.db_file), str(SCHEMA)], self.env
            )
            if converted.stdout.strip() == "yes":
                tool.run(["ovsdb-tool", "convert", str(self.db_file), str(SCHEMA)], self.env)
        tool.run(
            netns_argv(
                self.netns,
                [
                    "ovsdb-server",
                    str(self.db_file),
                    f"--remote=punix:{self.db_sock}",
                    f"--pidfile={self.db_pidfile}",
                    f"--unixctl={self.db_ctl}",
                    f"--log-file={self.log_dir / 'ovsdb-server.log'}",
                    "--detach",
                    "--no-chdir",
                ],
            ),
            self.env,
            timeout=timeout,
        )
        tool.run(["ovs-vsctl", f"--db={self.db}", "--no-wait", "init"], self.env, timeout=timeout)
        tool.run(
            netns_argv(
                self.netns,
                [
                    "ovs-vswitchd",
                    self.db,
                    f"--pidfile={self.vswitchd_pidfile}",
                    f"--unixctl={self.vswitchd_ctl}",
                    f"--log-file={self.log_dir / 'ovs-vswitchd.log'}",
                    "--detach",
                    "--no-chdir",
                ],
            ),
            self.env,
            timeout=timeout,
        )
        deadline = time.monotonic() + timeout
        while not self.running():
            if time.monotonic() > deadline:
                raise OvsFailure(
                    f"ovs: daemons under {self.root} did not come up within {timeout}s "
                    f"(see {self.log_dir})"
                )
            time.sleep(0.05)
        # --detach writes the pidfile before the database is writable; one synchronous
        # transaction proves vswitchd has read its configuration.
        tool.run(["ovs-vsctl", f"--db={self.db}", "--timeout=30", "show"], self.env)
        return True

    def _refuse_shared_kernel_datapath(self) -> None:
        """Refuse the kernel datapath where another switch has it (see the module docstring):
        ours would delete that switch's ports and flows, and at its stop the datapath."""
        others = foreign_switches(self.netns)
        if others:
            where = netns_describe(self.netns)
            pid, cmdline = others[0]
            raise OvsFailure(
                f"ovs: the kernel datapath of {where} is another Open vSwitch's (ovs-vswitchd "
                f"pid {pid}: {cmdline[:200]}); a second switch on it would delete that "
                "switch's ports and flows. Use the userspace datapath (ovs_datapath = "
                '"netdev" or "auto"), or stop that switch'
            )

    def stop(self, timeout: float = 20.0) -> None:
        """Stop vswitchd (removing its datapath) then the database; absent is fine.

        The database file stays (bridges and ports are declared state, restored on start);
        :meth:`destroy` removes it too.
        """
        for ctl, pidfile, argv in (
            (self.vswitchd_ctl, self.vswitchd_pidfile, ["exit", "--cleanup"]),
            (self.db_ctl, self.db_pidfile, ["exit"]),
        ):
            pid = alive(pidfile)
            if pid is None:
                continue
            if ctl.exists():
                tool.run(["ovs-appctl", "-t", str(ctl), *argv], self.env, check=False)
            deadline = time.monotonic() + timeout
            while alive(pidfile) == pid and time.monotonic() < deadline:
                time.sleep(0.02)
            if alive(pidfile) == pid:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            # A SIGKILLed daemon leaves its pidfile behind; it names a dead pid from now on.
            with contextlib.suppress(FileNotFoundError):
                pidfile.unlink()

    def destroy(self) -> None:
        """Stop and forget everything: database, logs, sockets."""
        import shutil  # noqa: PLC0415 (only on teardown)

        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)
