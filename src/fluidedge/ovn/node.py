"""A node's OVN configuration: where the databases are and what this host's chassis is.

``instances.ovn`` in the daemon's config; absent (the default), no OVN code runs and a
single-host install works exactly as without it. Present, the node runs its chassis
(:mod:`.chassis`: its own Open vSwitch and ``ovn-controller``) when its first ``ovn`` network
is created, against the central named here (run by :mod:`.central` on one host or three).
"""

from __future__ import annotations

import ipaddress
import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

_REMOTE = r"^(unix:/[A-Za-z0-9_./-]+|(tcp|ssl):[0-9a-fA-F.:\[\]]+:[0-9]{1,5})$"


class OvnNode(BaseModel):
    """This node's part in an OVN deployment."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    nb: str = Field(description="northbound database: comma-separated unix:/path or tcp:ip:port")
    sb: str = Field(description="southbound database (ovn-controller's ovn-remote), same form")
    chassis: str = Field(pattern=r"^[a-z][a-z0-9-]{0,31}$", description="this node's chassis")
    encap: str = Field(description="tunnel endpoint address with prefix, put on br-phy")
    underlay: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,14}$",
        description="device (in netns) that reaches the other chassis; added to br-phy",
    )
    netns: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$",
        description="namespace the chassis runs in (default: the host's); ovn networks use it",
    )
    datapath: Literal["netdev", "system"] = "netdev"

    @field_validator("nb", "sb")
    @classmethod
    def _remotes(cls, value: str) -> str:
        parts = value.split(",")
        for part in parts:
            if not re.fullmatch(_REMOTE, part):
                raise ValueError(f"invalid OVSDB remote {part!r} (unix:/path or tcp:ip:port)")
        return value

    @field_validator("encap")
    @classmethod
    def _encap(cls, value: str) -> str:
        try:
            return str(ipaddress.ip_interface(value))
        except ValueError as exc:
            raise ValueError(f"invalid encap address {value!r} (want ip/prefix)") from exc
