"""``ovn-nbctl`` adapter: argument lists, one OVSDB transaction per call.

Several commands given to one ``ovn-nbctl`` run separated by ``--`` are one transaction: all
or nothing. ``wait="hv"`` returns only when every chassis has applied it (``--wait=hv``), so
the caller's next packet sees the new state; ``"sb"`` waits for northd only.

A one-shot ``ovn-nbctl`` given several cluster members picks one at random and fails if that
one is dead, so each call names only the members that accept a connection now. When none does
(the central is down, or not up yet after a site's reboot), the call fails at once with
:class:`~fluidedge.ovn.errors.OvnUnreachable` instead of waiting out the tool's ``--timeout``
(30 s, under the caller's locks) for its own error.
"""

from __future__ import annotations

import contextlib
import json
import socket
from collections.abc import Mapping, Sequence
from typing import Any

from fluidedge.ovn import tool
from fluidedge.ovn.errors import OvnFailure, OvnUnreachable

Command = Sequence[str]


class Nbctl:
    """The northbound database at ``remote`` (one or several comma-separated members)."""

    def __init__(self, remote: str, env: dict[str, str] | None = None, timeout: float = 30.0):
        self.remote = remote
        self.env = env or {}
        self.timeout = timeout

    def live_remote(self) -> str:
        """The members of :attr:`remote` that accept a connection now (one connect each,
        0.5 s at most); :class:`OvnUnreachable` if none does."""
        live = [m for m in self.remote.split(",") if reachable(m)]
        if not live:
            raise OvnUnreachable(
                f"ovn: the northbound database ({self.remote}) accepts no connection"
            )
        return ",".join(live)

    def argv(self, commands: Sequence[Command], wait: str | None = None) -> list[str]:
        argv = ["ovn-nbctl", f"--db={self.live_remote()}", f"--timeout={int(self.timeout)}"]
        if wait is not None:
            argv.append(f"--wait={wait}")
        for i, command in enumerate(commands):
            if i:
                argv.append("--")
            argv.extend(command)
        return argv

    def transact(self, commands: Sequence[Command], wait: str | None = None) -> str:
        """Run ``commands`` as one transaction; their joined output."""
        if not commands:
            return ""
        return tool.run(self.argv(commands, wait), self.env, timeout=self.timeout + 10).stdout

    def delete_if(self, table: str, name: str, external_ids: Mapping[str, str]) -> bool:
        """Delete the row of ``table`` named ``name`` only if its ``external_ids`` are exactly
        ``external_ids`` still: one OVSDB transaction of a ``wait`` (RFC 7047 §5.2.6, timeout
        0: it fails at once if the row changed or went) and a ``delete``, sent with
        ``ovsdb-client`` (``ovn-nbctl`` cannot make a command depend on a value). A cluster
        member that is not the leader forwards it. Whether the row was deleted."""
        where = [["name", "==", name]]
        ids = ["map", [[k, v] for k, v in sorted(external_ids.items())]]
        txn = [
            "OVN_Northbound",
            {"op": "wait", "timeout": 0, "table": table, "where": where,
             "columns": ["external_ids"], "until": "==", "rows": [{"external_ids": ids}]},
            {"op": "delete", "table": table, "where": where},
        ]  # fmt: skip
        body = json.dumps(txn)
        members = self.live_remote().split(",")
        out = ""
        for i, member in enumerate(members):
            argv = ["ovsdb-client", f"--timeout={int(self.timeout)}", "transact", member, body]
            try:
                out = tool.run(argv, self.env, timeout=self.timeout + 10).stdout
                break
            except OvnFailure:
                if i == len(members) - 1:
                    raise
        try:
            results = json.loads(out)
        except ValueError as exc:
            raise OvnFailure(f"ovsdb-client transact: unreadable answer {out[:200]!r}") from exc
        if not isinstance(results, list) or len(results) < 2:
            return False
        ok = all(isinstance(r, dict) and "error" not in r for r in results[:2])
        return ok and int(results[1].get("count", 0)) > 0

    def run(self, *command: str, wait: str | None = None) -> str:
        return self.transact([command], wait)

    def rows(self, table: str, columns: Sequence[str], *conditions: str) -> list[dict[str, Any]]:
        """Rows of ``table`` (``find`` with ``conditions``, else ``list``), as {column: value}
        with OVSDB sets/maps/uuids decoded to lists/dicts/strings."""
        return self.queries([(table, columns, conditions)])[0]

    def queries(
        self, queries: Sequence[tuple[str, Sequence[str], Sequence[str]]]
    ) -> list[list[dict[str, Any]]]:
        """Several :meth:`rows` queries in one ``ovn-nbctl`` run (one connection, one
        consistent snapshot): the rows of each, in order."""
        commands: list[list[str]] = []
        for i, (table, columns, conditions) in enumerate(queries):
            verb = ["find", table, *conditions] if conditions else ["list", table]
            head = ["--format=json"] if i == 0 else []
            commands.append([*head, f"--columns={','.join(columns)}", *verb])
        text = self.transact(commands)
        decoder = json.JSONDecoder()
        out: list[list[dict[str, Any]]] = []
        pos = 0
        for _ in queries:
            while pos < len(text) and text[pos].isspace():
                pos += 1
            data, pos = decoder.raw_decode(text, pos)
            out.append(
                [
                    {h: decode(v) for h, v in zip(data["headings"], row, strict=True)}
                    for row in data["data"]
                ]
            )
        return out


def reachable(remote: str, timeout: float = 0.5) -> bool:
    """Whether an OVSDB remote (``unix:/path``, ``tcp:ip:port``, ``ssl:ip:port``) accepts a
    connection (closed at once)."""
    kind, _, rest = remote.partition(":")
    with contextlib.suppress(OSError, ValueError):
        if kind == "unix":
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(timeout)
                sock.connect(rest)
                return True
        elif kind in ("tcp", "ssl"):
            host, _, port = rest.rpartition(":")
            with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
                return True
    return False


def decode(value: Any) -> Any:
    """OVSDB JSON (RFC 7047 §5.1) to Python: ``["set", [...]]`` -> list, ``["map", [...]]`` ->
    dict, ``["uuid", u]`` -> u."""
    if isinstance(value, list) and len(value) == 2 and isinstance(value[0], str):
        kind, body = value
        if kind == "set":
            return [decode(v) for v in body]
        if kind == "map":
            return {decode(k): decode(v) for k, v in body}
        if kind in ("uuid", "named-uuid"):
            return body
    return value


def as_list(value: Any) -> list[Any]:
    """A set column's value as a list (OVSDB sends a 1-element set as the bare element)."""
    return value if isinstance(value, list) else [value]
