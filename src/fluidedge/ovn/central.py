"""OVN's central part, run by fluidedge: NB and SB ``ovsdb-server`` + ``ovn-northd``, no systemd.

One member (a standalone NB and SB database) or a Raft cluster of three (``ovsdb-tool
create-cluster`` on the first member, ``join-cluster`` on the others) with one ``ovn-northd``
per member: the northds take the SB lock in turn, so one is active and the others stand by.
Each member lives in a directory of its own under ``root`` (0700): ``nb.db``/``sb.db``, the
Unix sockets clients use (``nb.sock``/``sb.sock``; Unix sockets are paths, so a chassis in any
network namespace reaches them), pidfiles, control sockets and logs. Raft members talk to each
other over TCP on loopback (the only transport Raft takes), on ports given or picked free.

Clients get :attr:`Central.nb_remote`/:attr:`Central.sb_remote`: every member's socket,
comma-separated (the OVSDB clients reconnect to another member when one dies).
"""

from __future__ import annotations

import functools
import shutil
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from fluidedge.ovn import tool
from fluidedge.ovn.errors import OvnInvalid

SCHEMAS = {
    "nb": Path("/usr/share/ovn/ovn-nb.ovsschema"),
    "sb": Path("/usr/share/ovn/ovn-sb.ovsschema"),
}
DB_NAMES = {"nb": "OVN_Northbound", "sb": "OVN_Southbound"}


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on now (the kernel's pick; Raft binds it a moment later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@dataclass
class Member:
    """One member's files: its NB and SB servers and its northd."""

    index: int
    root: Path
    raft_ports: dict[str, int]

    @property
    def env(self) -> dict[str, str]:
        d = str(self.root)
        return {
            "OVN_RUNDIR": d,
            "OVN_DBDIR": d,
            "OVN_LOGDIR": d,
            "OVN_SYSCONFDIR": d,
            "OVS_RUNDIR": d,
            "OVS_DBDIR": d,
            "OVS_LOGDIR": d,
            "OVS_SYSCONFDIR": d,
        }

    def db(self, kind: str) -> Path:
        return self.root / f"{kind}.db"

    def sock(self, kind: str) -> Path:
        return self.root / f"{kind}.sock"

    def ctl(self, kind: str) -> Path:
        return self.root / f"{kind}.ctl"

    def pidfile(self, kind: str) -> Path:
        return self.root / f"{kind}.pid"

    def raft(self, kind: str) -> str:
        return f"tcp:127.0.0.1:{self.raft_ports[kind]}"


class Central:
    """The NB/SB databases and northd(s) under ``root``: ``members`` is 1 or 3."""

    def __init__(
        self, root: Path, members: int = 1, raft_ports: Sequence[int] | None = None
    ) -> None:
        if members not in (1, 3):
            raise OvnInvalid(f"ovn: central members must be 1 or 3, not {members}")
        self.root = root
        self.clustered = members > 1
        ports = list(raft_ports or [])
        if self.clustered and ports and len(ports) != 2 * members:
            raise OvnInvalid(f"ovn: {members} members need {2 * members} raft ports")
        self.members: list[Member] = []
        for i in range(members):
            if self.clustered:
                raft = {"nb": ports[2 * i], "sb": ports[2 * i + 1]} if ports else {}
            else:
                raft = {}
            self.members.append(Member(i, root / f"m{i}", raft))

    # ------------------------------------------------------------------ addresses
    def remote(self, kind: str) -> str:
        return ",".join(f"unix:{m.sock(kind)}" for m in self.members)

    @property
    def nb_remote(self) -> str:
        return self.remote("nb")

    @property
    def sb_remote(self) -> str:
        return self.remote("sb")

    # ------------------------------------------------------------------ lifecycle
    def start(self, timeout: float = 30.0) -> None:
        """Create the databases (first start) and start every member's servers and northd."""
        tool.private(self.root)
        for member in self.members:
            tool.private(member.root)
            for kind in ("nb", "sb"):
                if self.clustered and kind not in member.raft_ports:
                    member.raft_ports[kind] = free_port()
                self._create_db(member, kind)
        for member in self.members:
            for kind in ("nb", "sb"):
                self._start_server(member, kind, timeout)
        for member in self.members:
            for kind in ("nb", "sb"):
                tool.wait(
                    functools.partial(self._serving, member, kind),
                    f"{DB_NAMES[kind]} of member {member.index} did not come up "
                    f"(see {member.root})",
                    timeout,
                )
        first = self.members[0]
        tool.run(
            ["ovn-nbctl", f"--db={self.nb_remote}", "--no-leader-only", "--timeout=30", "init"],
            first.env,
            timeout=timeout + 5,
        )
        for member in self.members:
            self._start_northd(member, timeout)
        tool.wait(self.northd_active, "no ovn-northd became active", timeout)

    def _create_db(self, member: Member, kind: str) -> None:
        db = member.db(kind)
        if db.exists():
            return
        schema = str(SCHEMAS[kind])
        if not self.clustered:
            tool.run(["ovsdb-tool", "create", str(db), schema], member.env)
        elif member.index == 0:
            tool.run(
                ["ovsdb-tool", "create-cluster", str(db), schema, member.raft(kind)], member.env
            )
        else:
            tool.run(
                [
                    "ovsdb-tool",
                    "join-cluster",
                    str(db),
                    DB_NAMES[kind],
                    member.raft(kind),
                    self.members[0].raft(kind),
                ],
                member.env,
            )

    def _start_server(self, member: Member, kind: str, timeout: float) -> None:
        if tool.alive(member.pidfile(kind)) is not None:
            return
        tool.run(
            [
                "ovsdb-server",
                str(member.db(kind)),
                f"--remote=punix:{member.sock(kind)}",
                f"--pidfile={member.pidfile(kind)}",
                f"--unixctl={member.ctl(kind)}",
                f"--log-file={member.root / f'{kind}.log'}",
                "--detach",
                "--no-chdir",
            ],
            member.env,
            timeout=timeout,
        )

    def _serving(self, member: Member, kind: str) -> bool:
        if not member.ctl(kind).exists():
            return False
        if not self.clustered:
            return member.sock(kind).exists()
        status = self.cluster_status(member, kind)
        return "Status: cluster member" in status and "Leader: unknown" not in status

    def cluster_status(self, member: Member, kind: str) -> str:
        """``cluster/status`` of one member's database ('' if it does not answer)."""
        result = tool.run(
            ["ovs-appctl", "-t", str(member.ctl(kind)), "cluster/status", DB_NAMES[kind]],
            member.env,
            check=False,
            timeout=5.0,
        )
        return result.stdout if result.returncode == 0 else ""

    def leader(self, kind: str) -> Member | None:
        """The member whose ``kind`` server is the Raft leader now (clustered only)."""
        for member in self.members:
            if tool.alive(member.pidfile(kind)) is None:
                continue
            if "Role: leader" in self.cluster_status(member, kind):
                return member
        return None

    def _start_northd(self, member: Member, timeout: float) -> None:
        if tool.alive(member.pidfile("northd")) is not None:
            return
        tool.run(
            [
                "ovn-northd",
                f"--ovnnb-db={self.nb_remote}",
                f"--ovnsb-db={self.sb_remote}",
                f"--pidfile={member.pidfile('northd')}",
                f"--unixctl={member.ctl('northd')}",
                f"--log-file={member.root / 'northd.log'}",
                "--detach",
                "--no-chdir",
            ],
            member.env,
            timeout=timeout,
        )

    def northd_status(self, member: Member) -> str:
        """``active``, ``standby``, ``paused`` or '' (not running/answering)."""
        if tool.alive(member.pidfile("northd")) is None:
            return ""
        result = tool.run(
            ["ovs-appctl", "-t", str(member.ctl("northd")), "status"],
            member.env,
            check=False,
            timeout=5.0,
        )
        return result.stdout.split(":")[-1].strip() if result.returncode == 0 else ""

    def northd_active(self) -> bool:
        return any(self.northd_status(m) == "active" for m in self.members)

    def kill_member_daemon(self, member: Member, kind: str) -> None:
        """Stop one daemon (``nb``, ``sb`` or ``northd``) of a member: failover drills."""
        ctl = member.ctl(kind)
        tool.stop_daemon(ctl, member.pidfile(kind), member.env)

    def restart_member(self, member: Member, timeout: float = 30.0) -> None:
        """Start whatever of a member is not running (it rejoins its cluster)."""
        for kind in ("nb", "sb"):
            self._start_server(member, kind, timeout)
        self._start_northd(member, timeout)

    def running(self) -> bool:
        return all(
            tool.alive(m.pidfile(k)) is not None
            for m in self.members
            for k in ("nb", "sb", "northd")
        )

    def stop(self) -> None:
        """Stop every northd, then the databases (their files stay)."""
        for member in self.members:
            tool.stop_daemon(member.ctl("northd"), member.pidfile("northd"), member.env)
        for member in self.members:
            for kind in ("nb", "sb"):
                tool.stop_daemon(member.ctl(kind), member.pidfile(kind), member.env)

    def destroy(self) -> None:
        """Stop and remove everything under ``root``."""
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)
