"""The ``[tof.accounting]`` table: triggers (global and per service) and where records go.

Example::

    [tof.accounting]
    enabled = true
    volume_threshold = 10_000_000   # bytes (up + down) since the record opened
    time_threshold = 300            # s from a record's first packet
    period = 60                     # s: every record closes at each multiple of the clock
    # a bearer's end (retired, purged) and a TEID replaced always close its records

    [tof.accounting.services.video]  # a service's own triggers (unset keys: the global ones)
    volume_threshold = 100_000_000

    [tof.accounting.ipfix]
    collector = "127.0.0.1:4739"
    transport = "udp"               # or "tcp"

    [tof.accounting.jsonl]
    max_bytes = 10_000_000          # rotate usage.jsonl beyond this
    keep = 5
"""

from __future__ import annotations

import ipaddress
import re

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

# RFC 5612 §2: the enterprise number IANA reserves for documentation and examples. The project
# has no Private Enterprise Number of its own; an operator with one sets ``enterprise_number``.
DEFAULT_PEN = 32473

_SERVICE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")


class Triggers(BaseModel):
    """Reporting triggers (PFCP usage reporting in spirit, TS 29.244 §5.2.2.2). ``None``: off."""

    model_config = ConfigDict(extra="forbid")

    volume_threshold: int | None = Field(default=None, ge=1)
    time_threshold: float | None = Field(default=None, gt=0, le=86400 * 31)
    period: float | None = Field(default=None, gt=0, le=86400)


class IpfixConfig(BaseModel):
    """Where IPFIX messages go (RFC 7011 §10: UDP or TCP)."""

    model_config = ConfigDict(extra="forbid")

    collector: str  # "host:port", an IP address literal (no names: nothing resolves here)
    transport: str = Field(default="udp", pattern="^(udp|tcp)$")
    observation_domain: int = Field(default=1, ge=0, le=0xFFFFFFFF)
    enterprise_number: int = Field(default=DEFAULT_PEN, ge=1, le=0xFFFFFFFF)
    template_refresh: float = Field(default=60.0, gt=0, le=3600)  # UDP (RFC 7011 §8.4)
    max_message: int = Field(default=1400, ge=512, le=65535)  # UDP: below the path MTU

    @field_validator("collector")
    @classmethod
    def _check_collector(cls, value: str) -> str:
        host, sep, port = value.rpartition(":")
        if not sep or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"collector {value!r}: expected ADDRESS:PORT")
        host = host.removeprefix("[").removesuffix("]")
        ipaddress.ip_address(host)  # raises with the reason
        return value

    @property
    def address(self) -> tuple[str, int]:
        host, _, port = self.collector.rpartition(":")
        return host.removeprefix("[").removesuffix("]"), int(port)


class JsonlConfig(BaseModel):
    """JSON Lines files under ``state_dir/accounting/records`` (rotated by size)."""

    model_config = ConfigDict(extra="forbid")

    max_bytes: int = Field(default=10_000_000, ge=1024)
    keep: int = Field(default=5, ge=1, le=1000)


class AccountingConfig(Triggers):
    """Validated ``[tof.accounting]`` table (see the module docstring)."""

    enabled: bool = False
    period: float | None = Field(default=60.0, gt=0, le=86400)
    check_interval: float = Field(default=1.0, gt=0, le=60)  # s between trigger checks
    services: dict[str, Triggers] = Field(default_factory=dict)
    ipfix: IpfixConfig | None = None
    jsonl: JsonlConfig | None = None
    spool_max_bytes: int = Field(default=64 * 1024 * 1024, ge=0)  # 0: no spool
    checkpoint_interval: float = Field(default=5.0, gt=0, le=3600)  # the restart marker

    @field_validator("services")
    @classmethod
    def _check_services(cls, value: dict[str, Triggers]) -> dict[str, Triggers]:
        for name in value:
            if not _SERVICE_NAME.match(name):
                raise ValueError(f"services: invalid service name {name!r}")
        return value

    @model_validator(mode="after")
    def _sinks(self) -> AccountingConfig:
        if self.enabled and self.ipfix is None and self.jsonl is None:
            raise ValueError("accounting needs a sink: [tof.accounting.ipfix] and/or .jsonl")
        return self

    def triggers_for(self, service: str) -> Triggers:
        """The global triggers with ``service``'s own values (those it sets) on top."""
        own = self.services.get(service)
        merged: dict[str, object] = {
            "volume_threshold": self.volume_threshold,
            "time_threshold": self.time_threshold,
            "period": self.period,
        }
        if own is not None:
            for key in own.model_fields_set:
                merged[key] = getattr(own, key)
        return Triggers.model_validate(merged)
