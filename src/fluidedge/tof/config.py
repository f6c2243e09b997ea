"""The ``[tof]`` configuration table.

Two-adapter mode (the default and the one the seed recommends, §4.3): ``enb_interface`` faces
the eNodeBs and ``sgw_interface`` the SGWs, so the direction of a G-PDU is the interface it came
in on and the TOF also switches non-GTP traffic between them (§4.3.1). Single-adapter mode
(``s1_interface``) cannot tell eNBs from SGWs, so ``enb_addresses`` and ``sgw_addresses`` must be
pre-provisioned (§4.3); in two-adapter mode these lists, when given, restrict which peers the TOF
learns tunnels from.

Example::

    [tof]
    backend = "userspace"
    netns = "lab-host"              # open the data-plane sockets in this namespace (optional)
    enb_interface = "s1enb"
    sgw_interface = "s1sgw"
    apps_tun = "tofapps"            # TUN device toward the apps network
    ue_pools = ["198.18.100.0/24"]  # routed into the TUN so app replies come back to us
    pinger_target = "198.18.200.10"
    pinger_interval = 0.2
    idle_timeout = 300
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from fluidedge.tof.accounting.config import AccountingConfig
from fluidedge.tof.accounting.ratelimit import RateLimitConfig
from fluidedge.tof.errors import TofConfigError
from fluidedge.tof.intercept.model import InterceptConfig

_IFNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,14}$")


def _ifname(value: str | None) -> str | None:
    if value is not None and not _IFNAME.match(value):
        raise ValueError(f"invalid interface name {value!r} (1-15 chars of A-Z a-z 0-9 _ . -)")
    return value


class TofConfig(BaseModel):
    """Validated ``[tof]`` table (see the module docstring for an example)."""

    model_config = ConfigDict(extra="forbid")

    backend: Literal["userspace", "fastpath", "none"] = "userspace"
    netns: str | None = None
    enb_interface: str | None = "s1enb"
    sgw_interface: str | None = "s1sgw"
    s1_interface: str | None = None
    enb_addresses: list[str] = Field(default_factory=list)
    sgw_addresses: list[str] = Field(default_factory=list)
    apps_tun: str = "tofapps"
    apps_interface: str | None = None  # the apps network's interface (checked/set up at start)
    apps_gateway: str | None = None  # its address the apps route the UE pools to, "a.b.c.d/nn"
    apps_setup: Literal["auto", "check"] | None = None  # default: auto in netns, else check
    # Multi-host (docs/multi-host.md): the apps network is this node's ``ovn`` network of this
    # name; at start the TOF plugs ``apps_interface`` into it (a veth whose other end is a
    # logical port on this node's chassis), so apps on other nodes are reached over geneve.
    apps_ovn_network: str | None = Field(default=None, pattern=r"^[a-z][a-z0-9-]{0,31}$")
    ue_pools: list[str] = Field(default_factory=lambda: ["198.18.100.0/24"])
    pinger_target: str = "198.18.200.10"
    pinger_target6: str | None = None
    pinger_interval: float = Field(default=0.2, gt=0, le=60)
    pinger_give_up: float = Field(default=30.0, gt=0, le=3600)
    # Seconds between checks that the data plane's tc programs are still attached (someone's
    # ``tc qdisc del dev X clsact`` re-attached within one); 0: no check (docs/tof.md).
    program_check_interval: float = Field(default=1.0, ge=0, le=3600)
    idle_timeout: float = Field(default=300.0, gt=0, le=86400)
    flow_timeout: float = Field(default=300.0, gt=0, le=86400)
    queue_limit: int = Field(default=256, ge=0, le=65536)
    queue_timeout: float = Field(default=3.0, gt=0, le=60)
    max_tunnels: int = Field(default=100_000, ge=1)
    max_flows: int = Field(default=1_000_000, ge=1)
    batch: int = Field(default=64, ge=1, le=4096)
    # The interpreter's GIL switch interval (s) while a data-plane thread runs: the longest
    # another Python thread of the daemon may keep the data plane waiting once it has taken the
    # GIL during one of the data plane's system calls (CPython's default is 5 ms; docs/tof.md).
    switch_interval: float = Field(default=0.0005, ge=0.0001, le=0.1)
    s1_mtu: int = Field(default=1500, ge=576, le=9216)
    mss_clamp: bool = True
    # Fail-open (docs/tof.md): a tc program on the S1 interfaces switches S1 through unchanged
    # while no agent runs (killed, crashed, stopped, restarting). False: stop() removes it and
    # S1 is cut while the daemon is down.
    fail_open: bool = True
    event_log: int = Field(
        default=1000, ge=1, le=100_000
    )  # bearer events kept (GET /tunnels/events)
    gtpc: bool = True  # learn/forget bearers from GTPv1-C (UDP 2123) crossing the wire
    # /metrics: a packet counter per bearer and direction, labelled with the UE's address
    # (docs/tof.md, "Metrics"). Off: two series per subscriber, rebuilt on every scrape (at
    # 100,000 bearers 200,000 series and seconds of CPU), is what Prometheus warns against.
    metrics_per_bearer: bool = False
    # Fast path: offloaded uplink packets enter the host's stack (routing + netfilter) instead
    # of being routed by the program, so security groups filter them (docs/tof-fastpath.md).
    # None: on when the daemon has a [secgroups] part. The userspace backend always does.
    filter_offloaded: bool | None = None
    # On-demand services (docs/superfluid.md): packets queued while an instance is created or
    # resumed, per UE and in total, and for how long; demands handled at once; creations/s.
    ondemand_queue_per_ue: int = Field(default=64, ge=1, le=65536)
    ondemand_queue_total: int = Field(default=4096, ge=1, le=1_000_000)
    ondemand_queue_timeout: float = Field(default=3.0, gt=0, le=60)
    ondemand_workers: int = Field(default=2, ge=1, le=16)
    ondemand_create_rate: float = Field(default=50.0, gt=0, le=10_000)
    ondemand_create_burst: int = Field(default=8, ge=1, le=10_000)
    # Per-UE usage records of offloaded traffic, IPFIX / JSON Lines (docs/accounting.md).
    accounting: AccountingConfig = Field(default_factory=AccountingConfig)
    # Per-UE rate limits of offloaded traffic, per service (docs/accounting.md).
    ratelimit: RateLimitConfig = Field(default_factory=RateLimitConfig)
    # Lawful-intercept mirroring of offloaded traffic (docs/accounting.md).
    intercept: InterceptConfig = Field(default_factory=InterceptConfig)

    @field_validator("enb_interface", "sgw_interface", "s1_interface", "apps_tun", "apps_interface")
    @classmethod
    def _check_ifname(cls, value: str | None) -> str | None:
        return _ifname(value)

    @field_validator("enb_addresses", "sgw_addresses")
    @classmethod
    def _check_addresses(cls, value: list[str]) -> list[str]:
        return [str(ipaddress.ip_address(v)) for v in value]

    @field_validator("apps_gateway")
    @classmethod
    def _check_gateway(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if "/" not in value:
            raise ValueError("apps_gateway needs a prefix length, e.g. 198.19.0.1/24")
        return str(ipaddress.ip_interface(value))

    @field_validator("ue_pools")
    @classmethod
    def _check_pools(cls, value: list[str]) -> list[str]:
        return [str(ipaddress.ip_network(v, strict=True)) for v in value]

    @field_validator("pinger_target", "pinger_target6")
    @classmethod
    def _check_target(cls, value: str | None) -> str | None:
        return None if value is None else str(ipaddress.ip_address(value))

    @model_validator(mode="after")
    def _mode(self) -> TofConfig:
        if self.s1_interface is not None:
            if not (self.enb_addresses and self.sgw_addresses):
                raise ValueError(
                    "single-adapter mode (s1_interface) needs enb_addresses and sgw_addresses"
                )
            self.enb_interface = None
            self.sgw_interface = None
        elif self.enb_interface is None or self.sgw_interface is None:
            raise ValueError("set enb_interface and sgw_interface, or s1_interface")
        if self.apps_ovn_network is not None and self.apps_interface is None:
            raise ValueError("apps_ovn_network needs apps_interface (the port to plug into it)")
        if self.apps_gateway is not None and self.apps_interface is None:
            raise ValueError("apps_gateway needs apps_interface (the interface to put it on)")
        if set(self.enb_addresses) & set(self.sgw_addresses):
            raise ValueError("an address cannot be both an eNB and an SGW")
        return self

    @property
    def single_adapter(self) -> bool:
        return self.s1_interface is not None


def parse_tof_config(section: dict[str, Any]) -> TofConfig:
    try:
        return TofConfig(**section)
    except ValidationError as exc:
        raise TofConfigError(f"config [tof]: {exc}") from exc
