"""``ovs-vsctl`` adapter: bridges and ports of one of our switches, by argv.

Names and external_ids are validated here (OVSDB strings would take anything, but a name ends
up as a Linux interface and in flow texts). Each call is one OVSDB transaction; vsctl waits
until ovs-vswitchd has applied it, so a port's ``ofport`` is known when :meth:`add_port`
returns.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping

from fluidedge.ovs import tool
from fluidedge.ovs.daemons import OvsDaemons
from fluidedge.ovs.errors import OvsFailure

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,14}$")
_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")
_VALUE = re.compile(r"^[A-Za-z0-9_.:/@+-]{0,255}$")
_MAC = re.compile(r"[0-9a-f]{2}(:[0-9a-f]{2}){5}")
PROTOCOLS = "OpenFlow10,OpenFlow13,OpenFlow14,OpenFlow15"


def check_name(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise OvsFailure(f"ovs: invalid bridge/port name {name!r}")
    return name


def _ids(column: str, ids: Mapping[str, str]) -> list[str]:
    out = []
    for key, value in sorted(ids.items()):
        if not _KEY.fullmatch(key) or not _VALUE.fullmatch(value):
            raise OvsFailure(f"ovs: invalid external_ids entry {key!r}={value!r}")
        out.append(f'{column}:"{key}"="{value}"')
    return out


def _vlan(tag: int) -> int:
    if not 0 <= tag <= 4095:
        raise OvsFailure(f"ovs: invalid VLAN {tag}")
    return tag


def _number(ofport: int) -> int:
    if not 1 <= ofport <= 0xFEFF:  # OFPP_MAX (OpenFlow 1.0 numbering, as OVSDB has it)
        raise OvsFailure(f"ovs: invalid OpenFlow port number {ofport}")
    return ofport


class Vsctl:
    """Bridges and ports of the switch ``daemons``."""

    def __init__(self, daemons: OvsDaemons) -> None:
        self.daemons = daemons

    def run(self, *args: str) -> str:
        argv = ["ovs-vsctl", f"--db={self.daemons.db}", "--timeout=30", *args]
        return tool.run(argv, self.daemons.env, timeout=40.0).stdout

    # ------------------------------------------------------------------ bridges
    def add_bridge(
        self,
        name: str,
        external_ids: Mapping[str, str] | None = None,
        hwaddr: str | None = None,
    ) -> None:
        """Create (or adopt) bridge ``name`` on the switch's datapath, ``fail_mode=secure``.

        Secure: a bridge without flows forwards nothing. Standalone would fall back to a
        learning switch whenever our flows are missing (e.g. right after a vswitchd restart),
        i.e. to no filtering at all. ``hwaddr``: the bridge's own MAC (``other_config:hwaddr``;
        without it Open vSwitch takes its lowest port's, which moves as ports come and go).
        """
        check_name(name)
        mac = []
        if hwaddr is not None:
            if not _MAC.fullmatch(hwaddr):
                raise ValueError(f"not a MAC address: {hwaddr!r}")
            mac = [f'other_config:hwaddr="{hwaddr}"']
        self.run(
            "--may-exist",
            "add-br",
            name,
            "--",
            "set",
            "Bridge",
            name,
            f"datapath_type={self.daemons.datapath}",
            f"protocols={PROTOCOLS}",
            "fail_mode=secure",
            *mac,
            *_ids("external_ids", external_ids or {}),
        )

    def del_bridge(self, name: str) -> None:
        self.run("--if-exists", "del-br", check_name(name))

    def bridges(self) -> list[str]:
        return self.run("list-br").split()

    def bridge_id(self, name: str, key: str) -> str | None:
        """Bridge ``name``'s ``external_ids:key`` (None: no such bridge, or no such key)."""
        if not _KEY.fullmatch(key):
            raise OvsFailure(f"ovs: invalid external_ids key {key!r}")
        text = self.run("--if-exists", "get", "Bridge", check_name(name), f'external_ids:"{key}"')
        text = text.strip()  # ovs-vsctl quotes a string only where it must
        if not text:
            return None
        return str(json.loads(text)) if text.startswith('"') else text

    # ------------------------------------------------------------------ ports
    def add_port(
        self,
        bridge: str,
        port: str,
        external_ids: Mapping[str, str],
        tag: int | None = None,
        number: int | None = None,
    ) -> int:
        """Plug interface ``port`` into ``bridge`` (an access port of VLAN ``tag`` if given,
        from the same transaction on; OpenFlow port ``number`` if given and free); return its
        OpenFlow port number."""
        check_name(bridge)
        check_name(port)
        ids = _ids("external_ids", external_ids)
        if number is not None:
            ids.append(f"ofport_request={_number(number)}")
        extra = ["--", "set", "Interface", port, *ids] if ids else []
        if tag is not None:
            extra += ["--", "set", "Port", port, f"tag={_vlan(tag)}"]
        self.run("--may-exist", "add-port", bridge, port, *extra)
        number = self.ofport_if_any(port)
        if number is not None:
            return number
        # A port record left from a device that went (a reboot took the host's veths; an
        # instance made again with its id plugs a device of that name again): the add above
        # changed nothing in the database, so ovs-vswitchd never tried the new device and the
        # record keeps its "No such device". Made anew, in one transaction; it had no
        # OpenFlow port, so no flow can name its old number.
        self.run("--if-exists", "del-port", port, "--", "add-port", bridge, port, *extra)
        return self.ofport(port)

    def set_tag(self, port: str, tag: int | None) -> None:
        """Make ``port`` an access port of VLAN ``tag`` (None: back to a trunk of all)."""
        value = "[]" if tag is None else str(_vlan(tag))
        self.run("set", "Port", check_name(port), f"tag={value}")

    def del_port(self, port: str) -> None:
        """Remove ``port`` from whichever bridge has it; absent is fine."""
        self.run("--if-exists", "del-port", check_name(port))

    def ofport_if_any(self, port: str) -> int | None:
        """``port``'s OpenFlow port number; None when it has none or no such port exists."""
        value = self.run("--if-exists", "get", "Interface", check_name(port), "ofport").strip()
        try:
            number = int(value)
        except ValueError:
            return None
        return number if number > 0 else None

    def ofport(self, port: str) -> int:
        value = self.run("get", "Interface", check_name(port), "ofport").strip()
        try:
            number = int(value)
        except ValueError:
            number = -1
        if number <= 0:
            error = self.run("get", "Interface", port, "error").strip()
            raise OvsFailure(f"ovs: port {port} has no OpenFlow port number: {error}")
        return number

    def ports(self, bridge: str) -> list[str]:
        return self.run("list-ports", check_name(bridge)).split()

    def port_tags(self) -> dict[str, int | None]:
        """Every port's access VLAN (None: a trunk of all), one read-only query."""
        data = json.loads(self.run("--format=json", "--columns=name,tag", "list", "Port"))
        return {
            str(name): tag if isinstance(tag, int) else None for name, tag in data.get("data", [])
        }

    def interfaces(self) -> dict[str, dict[str, object]]:
        """Every interface: name -> {ofport, external_ids, error} (one query)."""
        text = self.run(
            "--format=json", "--columns=name,ofport,external_ids,error", "list", "Interface"
        )
        data = json.loads(text)
        out: dict[str, dict[str, object]] = {}
        for name, ofport, ids, error in data.get("data", []):
            pairs = ids[1] if isinstance(ids, list) and ids and ids[0] == "map" else []
            out[str(name)] = {
                "ofport": ofport if isinstance(ofport, int) else -1,
                "external_ids": {str(k): str(v) for k, v in pairs},
                "error": error if isinstance(error, str) else None,
            }
        return out
