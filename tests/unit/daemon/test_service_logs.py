"""Pure parts of operating the daemon: the unit and config text, structured log records."""

from __future__ import annotations

import logging
import re
import tomllib
from pathlib import Path

from tests.unit.linux.source_rules import SRC

from fluidedge.core.config import DEFAULT_STATE_DIR, parse_config
from fluidedge.daemon.logs import fields_of, journal_datagram, logfmt
from fluidedge.daemon.service import CAPABILITIES, default_config, render_unit
from fluidedge.instances.images import builtin
from fluidedge.linux import bpfbuild


def _directives(unit: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in unit.splitlines():
        if line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            out.setdefault(key, []).append(value)
    return out


def test_unit_runs_the_daemon_sandboxed_with_what_it_needs_left_open() -> None:
    unit = _directives(render_unit("/opt/fe venv/bin/python"))
    assert unit["ExecStart"] == [
        "'/opt/fe venv/bin/python' -m fluidedge serve --config /etc/fluidedge/fluidedge.toml"
    ]
    # the modules the config's parts need, loaded unsandboxed first, its failure not fatal
    assert unit["ExecStartPre"] == [
        "-+'/opt/fe venv/bin/python' -m fluidedge kernel-modules --config "
        "/etc/fluidedge/fluidedge.toml"
    ]
    assert "PrivateTmp" not in unit  # an image import reads the host's /tmp
    assert "RestrictSUIDSGID" not in unit  # an image import restores setuid/setgid modes
    assert unit["StateDirectory"] == ["fluidedge"]
    assert unit["StateDirectoryMode"] == ["0700"]
    assert unit["CacheDirectory"] == ["fluidedge"]
    assert unit["CacheDirectoryMode"] == ["0700"]
    assert unit["KillMode"] == ["process"]  # instances outlive a daemon restart
    assert unit["ProtectSystem"] == ["strict"]
    assert unit["ReadWritePaths"] == ["/run -/sys/fs/cgroup -/sys/fs/bpf /tmp /var/tmp"]
    assert unit["RestrictAddressFamilies"] == ["AF_UNIX AF_INET AF_INET6 AF_NETLINK AF_PACKET"]
    caps = unit["CapabilityBoundingSet"][0].split()
    assert {"CAP_NET_ADMIN", "CAP_SYS_ADMIN", "CAP_BPF", "CAP_NET_RAW"} <= set(caps)
    assert not {"CAP_SYS_MODULE", "CAP_SYS_TIME", "CAP_SYS_BOOT"} & set(caps)
    assert len(caps) == len(CAPABILITIES)
    # Settings that would break namespaces, cgroups or BPF are not set.
    for broken in ("RestrictNamespaces", "ProtectControlGroups", "ProtectKernelTunables"):
        assert broken not in unit


def test_default_config_is_a_valid_daemon_config() -> None:
    config = parse_config(tomllib.loads(default_config()))
    assert str(config.state_dir) == "/var/lib/fluidedge"
    assert config.api.listen == "127.0.0.1"
    assert config.store_synchronous == "full"
    assert config.parts == {}


def _record(msg: str, **extra: str) -> logging.LogRecord:
    record = logging.LogRecord("fluidedge.instances", logging.WARNING, "/x.py", 7, msg, (), None)
    for key, value in extra.items():
        setattr(record, key, value)
    return record


def test_log_records_carry_level_part_event_and_ids() -> None:
    record = _record('orphan kept: "x"', event="orphan_found", ids="fe0123456789")
    assert fields_of(record)["part"] == "instances"
    line = logfmt(record)
    assert line == (
        "level=warning part=instances event=orphan_found ids=fe0123456789 "
        'msg="orphan kept: \\"x\\""'
    )
    assert "event=log" in logfmt(_record("plain"))


def test_journal_datagram_uses_the_native_protocol() -> None:
    data = journal_datagram(_record("two\nlines", event="store_unavailable", part="daemon"))
    assert b"PRIORITY=4\n" in data
    assert b"FLUIDEDGE_PART=daemon\n" in data
    assert b"FLUIDEDGE_EVENT=store_unavailable\n" in data
    assert b"SYSLOG_IDENTIFIER=fluidedge\n" in data
    # A value with a newline: name, newline, 64-bit little-endian length, value, newline.
    assert b"MESSAGE\n" + (9).to_bytes(8, "little") + b"two\nlines\n" in data


def _writable(unit: dict[str, list[str]]) -> list[Path]:
    """What ``ProtectSystem=strict`` leaves writable to the unit (systemd.exec(5))."""
    roots = {
        "StateDirectory": "/var/lib",
        "CacheDirectory": "/var/cache",
        "RuntimeDirectory": "/run",
    }
    out = [Path(base, name) for key, base in roots.items() for name in unit.get(key, [])]
    for line in unit.get("ReadWritePaths", []):
        out += [Path(path.lstrip("-")) for path in line.split()]
    return out


def test_every_default_path_the_daemon_writes_is_writable_under_its_unit() -> None:
    """Under ``ProtectSystem=strict`` the rest of the file system is read-only: a default path
    outside what the unit opens made the daemon fail at every start under systemd (the built-in
    image's layout cached in /var/cache/fluidedge, found in the VM tier's systemd payload).
    Every ``/var`` path written in ``src/`` (state, caches) must be inside what it opens."""
    writable = _writable(_directives(render_unit("/usr/bin/python3")))
    literals = {
        Path(m.group(1))
        for path in SRC.rglob("*.py")
        for m in re.finditer(r"[\"'](/var/[^\"'\s{]+)[\"']", path.read_text())
    }
    assert {DEFAULT_STATE_DIR, builtin.CACHE, bpfbuild.DEFAULT_CACHE} <= literals
    outside = sorted(str(p) for p in literals if not any(p.is_relative_to(r) for r in writable))
    assert outside == [], writable
