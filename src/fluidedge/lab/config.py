"""The lab description: TOML in, a validated model and its bearer table out (pure).

The embedded default (``default.toml`` next to this module) is the topology of the issue; a
user file replaces it wholesale. Bearers are derived here, not written in the file, so the
colliding-TEID property holds by construction: each SGW allocates uplink TEIDs from the same
base and each eNB allocates downlink TEIDs from the same base, unless a UE pins its own.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from importlib import resources
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from fluidedge.lab.errors import LabConfigError

Mode = Literal["bridge", "tof", "routed"]
MODES: tuple[Mode, ...] = ("bridge", "tof", "routed")
# "emulated": the lab's own Python eNBs/SGWs on S1-U; "osmo": a real GTP stack (Gn/Gp), UEs
# behind sgsnemu (one per SGSN node, the ``enb`` entries) and osmo-ggsn (the one ``sgw``).
Flavour = Literal["emulated", "osmo"]
FLAVOURS: tuple[Flavour, ...] = ("emulated", "osmo")

_NODE_NAME = re.compile(r"^[a-z][a-z0-9]{0,9}$")
# Namespace suffixes the topology itself uses; nodes may not take them.
RESERVED_NAMES = frozenset({"ran", "core", "host", "pdn", "mme", "gen"})
MAX_TEID = 0xFFFFFFFF


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LabSection(_Model):
    mode: Mode = "bridge"
    flavour: Flavour = "emulated"


class S1Section(_Model):
    subnet: IPv4Network = IPv4Network("198.18.0.0/24")
    host_enb_side: IPv4Address = IPv4Address("198.18.0.1")
    host_sgw_side: IPv4Address = IPv4Address("198.18.0.2")


class GtpuSection(_Model):
    uplink_teid_base: int = Field(default=0x1001, ge=1, le=MAX_TEID)
    downlink_teid_base: int = Field(default=0x2001, ge=1, le=MAX_TEID)
    echo_interval: float = Field(default=2.0, ge=0.0, le=3600.0)
    pdu_session_container: bool = False
    qfi: int = Field(default=9, ge=0, le=63)


class PoolSection(_Model):
    subnet: IPv4Network = IPv4Network("198.18.100.0/24")
    # UE-side MTU: leaves room for outer IPv4+UDP+GTP-U (+ a PDU Session Container) within the
    # S1 MTU of 1500, so G-PDUs are never fragmented on S1 (operators use 1400-1450).
    mtu: int = Field(default=1400, ge=1280, le=1456)
    # Inner IPv6 (dual-stack UEs): a UE's IPv6 address has the same host index in this prefix
    # as its IPv4 address in ``subnet``. Absent: IPv4 only. S1 itself stays IPv4.
    subnet6: IPv6Network | None = None


_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_DNS_NAME = re.compile(rf"^{_LABEL}(?:\.{_LABEL})*$")


def _dns_name(name: str) -> str:
    """A DNS name of the lab zone, as the zone keys it (lower case, no final dot)."""
    text = name.lower().removesuffix(".")
    if len(text) > 253 or not _DNS_NAME.match(text):
        raise ValueError(
            f"{name!r} is not a DNS name (dot-separated labels of letters, digits and inner "
            "hyphens, 1-63 characters each, 253 in all)"
        )
    return text


DnsName = Annotated[str, AfterValidator(_dns_name)]


class PdnDnsSection(_Model):
    """``[pdn.dns]``: the PDN host's DNS server, the core's resolver the UEs are given."""

    # A second address of the PDN host (its IPv6 twin too when the lab is dual-stack).
    address: IPv4Address = IPv4Address("198.18.200.53")
    port: int = Field(default=53, ge=1, le=65535)
    ttl: int = Field(default=60, ge=0, le=86400)
    # Names of the PDN host itself: its address (and its IPv6 address when dual-stack).
    host_names: tuple[DnsName, ...] = Field(
        default=("pdn.example", "www.pdn.example"), max_length=64
    )
    # More names of the zone -> their IPv4 and/or IPv6 addresses.
    names: dict[
        DnsName,
        Annotated[tuple[IPv4Address | IPv6Address, ...], Field(min_length=1, max_length=16)],
    ] = Field(default_factory=dict, max_length=1024)
    # The fluidedge host namespace's own address on the PDN segment: its one route there leads
    # to ``address`` only (the ME platform's DNS responder asks the core's resolver from it).
    host_address: IPv4Address = IPv4Address("198.18.200.254")

    @model_validator(mode="before")
    @classmethod
    def _keys_unique(cls, raw: object) -> object:
        names = raw.get("names") if isinstance(raw, dict) else None
        if isinstance(names, dict):
            seen: set[str] = set()
            for name in names:
                normal = str(name).lower().removesuffix(".")
                if normal in seen:
                    raise ValueError(f"dns name {normal!r} is given twice")
                seen.add(normal)
        return raw

    @model_validator(mode="after")
    def _unique(self) -> PdnDnsSection:
        twice = sorted(set(self.host_names) & set(self.names)) or sorted(
            {n for n in self.host_names if self.host_names.count(n) > 1}
        )
        if twice:
            raise ValueError(f"dns name {twice[0]!r} is given twice")
        return self


class PdnSection(_Model):
    subnet: IPv4Network = IPv4Network("198.18.200.0/24")
    address: IPv4Address = IPv4Address("198.18.200.10")
    # Same host indexes as in ``subnet`` (PDN host, SGW PDN-side addresses).
    subnet6: IPv6Network = IPv6Network("2001:db8:200::/64")
    http_port: int = Field(default=80, ge=1, le=65535)
    udp_echo_port: int = Field(default=7, ge=1, le=65535)
    dns: PdnDnsSection = PdnDnsSection()


class AppsSection(_Model):
    subnet: IPv4Network = IPv4Network("198.19.0.0/24")
    gateway: IPv4Address = IPv4Address("198.19.0.1")


class AppSpec(_Model):
    name: str
    address: IPv4Address
    http_port: int = Field(default=80, ge=1, le=65535)


class MmeSpec(_Model):
    name: str
    address: IPv4Address
    port: int = Field(default=36412, ge=1, le=65535)


class EnbSpec(_Model):
    name: str
    address: IPv4Address
    mme: str | None = None


class SgwSpec(_Model):
    name: str
    address: IPv4Address
    pdn_address: IPv4Address


class UeSpec(_Model):
    name: str
    address: IPv4Address
    enb: str
    sgw: str
    ul_teid: int | None = Field(default=None, ge=1, le=MAX_TEID)
    dl_teid: int | None = Field(default=None, ge=1, le=MAX_TEID)
    pdu_session_container: bool | None = None
    qfi: int | None = Field(default=None, ge=0, le=63)


class LabConfig(_Model):
    """A whole lab description. Construct through :func:`load` / :func:`loads`."""

    lab: LabSection = LabSection()
    s1: S1Section = S1Section()
    gtpu: GtpuSection = GtpuSection()
    ue_pool: PoolSection = PoolSection()
    pdn: PdnSection = PdnSection()
    apps: AppsSection = AppsSection()
    app: tuple[AppSpec, ...] = ()
    mme: tuple[MmeSpec, ...] = ()
    enb: tuple[EnbSpec, ...] = Field(min_length=1)
    sgw: tuple[SgwSpec, ...] = Field(min_length=1)
    ue: tuple[UeSpec, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _check(self) -> LabConfig:
        _check_names(self)
        _check_addresses(self)
        _check_references(self)
        if self.lab.flavour == "osmo":
            _check_osmo(self)
        bearers(self)  # raises on TEID clashes within one peer
        return self


def _check_osmo(cfg: LabConfig) -> None:
    """What a real GTP stack can be: one GGSN, one sgsnemu (one UE) per SGSN node, IPv4."""
    if len(cfg.sgw) != 1:
        raise ValueError("osmo flavour: exactly one sgw entry (the GGSN)")
    for e in cfg.enb:
        mine = [u.name for u in cfg.ue if u.enb == e.name]
        if len(mine) != 1:
            raise ValueError(
                f"osmo flavour: enb {e.name} (an SGSN) must serve exactly one ue, not {mine}"
            )
        if e.mme is not None:
            raise ValueError(f"osmo flavour: enb {e.name}: no mme (sgsnemu speaks GTPv1-C)")
    if cfg.mme:
        raise ValueError("osmo flavour: no mme entries (the control plane is GTPv1-C)")
    if cfg.ue_pool.subnet6 is not None:
        raise ValueError("osmo flavour: ue_pool.subnet6 is not supported (IPv4 PDP contexts)")
    for u in cfg.ue:
        pinned = [k for k in ("ul_teid", "dl_teid", "pdu_session_container", "qfi")
                  if getattr(u, k) is not None]  # fmt: skip
        if pinned:
            raise ValueError(
                f"osmo flavour: ue {u.name}: {', '.join(pinned)} cannot be set "
                "(the GGSN and sgsnemu allocate TEIDs; GTPv1-U has no PDU Session Container)"
            )
    if cfg.gtpu.pdu_session_container:
        raise ValueError("osmo flavour: gtpu.pdu_session_container is not supported")


def _check_names(cfg: LabConfig) -> None:
    seen: set[str] = set()
    for kind, name in _all_nodes(cfg):
        if not _NODE_NAME.match(name):
            raise ValueError(
                f"{kind} name {name!r}: must be 1-10 lowercase letters/digits, "
                "starting with a letter"
            )
        if name in RESERVED_NAMES:
            raise ValueError(f"{kind} name {name!r} is reserved by the lab topology")
        if name in seen:
            raise ValueError(f"{kind} name {name!r} is used twice")
        seen.add(name)


def _all_nodes(cfg: LabConfig) -> list[tuple[str, str]]:
    return (
        [("ue", u.name) for u in cfg.ue]
        + [("enb", e.name) for e in cfg.enb]
        + [("sgw", s.name) for s in cfg.sgw]
        + [("mme", m.name) for m in cfg.mme]
        + [("app", a.name) for a in cfg.app]
    )


def _check_addresses(cfg: LabConfig) -> None:
    def inside(what: str, addr: IPv4Address, net: IPv4Network) -> None:
        if addr not in net or addr in (net.network_address, net.broadcast_address):
            raise ValueError(f"{what} {addr} is not a host address of {net}")

    s1 = cfg.s1.subnet
    used: dict[IPv4Address, str] = {}

    def claim(what: str, addr: IPv4Address) -> None:
        if addr in used:
            raise ValueError(f"{what} {addr} is already used by {used[addr]}")
        used[addr] = what

    for what, addr in (
        ("s1.host_enb_side", cfg.s1.host_enb_side),
        ("s1.host_sgw_side", cfg.s1.host_sgw_side),
    ):
        inside(what, addr, s1)
        claim(what, addr)
    for e in cfg.enb:
        inside(f"enb {e.name} address", e.address, s1)
        claim(f"enb {e.name}", e.address)
    for s in cfg.sgw:
        inside(f"sgw {s.name} address", s.address, s1)
        claim(f"sgw {s.name}", s.address)
        inside(f"sgw {s.name} pdn_address", s.pdn_address, cfg.pdn.subnet)
        claim(f"sgw {s.name} (pdn side)", s.pdn_address)
    for m in cfg.mme:
        inside(f"mme {m.name} address", m.address, s1)
        claim(f"mme {m.name}", m.address)
    inside("pdn.address", cfg.pdn.address, cfg.pdn.subnet)
    claim("pdn", cfg.pdn.address)
    inside("pdn.dns.address", cfg.pdn.dns.address, cfg.pdn.subnet)
    claim("pdn.dns.address", cfg.pdn.dns.address)
    inside("pdn.dns.host_address", cfg.pdn.dns.host_address, cfg.pdn.subnet)
    claim("pdn.dns.host_address", cfg.pdn.dns.host_address)
    inside("apps.gateway", cfg.apps.gateway, cfg.apps.subnet)
    claim("apps gateway", cfg.apps.gateway)
    for a in cfg.app:
        inside(f"app {a.name} address", a.address, cfg.apps.subnet)
        claim(f"app {a.name}", a.address)
    for u in cfg.ue:
        inside(f"ue {u.name} address", u.address, cfg.ue_pool.subnet)
        claim(f"ue {u.name}", u.address)
    nets = {
        "s1.subnet": s1,
        "ue_pool.subnet": cfg.ue_pool.subnet,
        "pdn.subnet": cfg.pdn.subnet,
        "apps.subnet": cfg.apps.subnet,
    }
    keys = list(nets)
    for i, first in enumerate(keys):
        for second in keys[i + 1 :]:
            if nets[first].overlaps(nets[second]):
                raise ValueError(f"{first} {nets[first]} overlaps {second} {nets[second]}")


def _check_references(cfg: LabConfig) -> None:
    enbs = {e.name for e in cfg.enb}
    sgws = {s.name for s in cfg.sgw}
    mmes = {m.name for m in cfg.mme}
    for e in cfg.enb:
        if e.mme is not None and e.mme not in mmes:
            raise ValueError(f"enb {e.name}: unknown mme {e.mme!r}")
    for u in cfg.ue:
        if u.enb not in enbs:
            raise ValueError(f"ue {u.name}: unknown enb {u.enb!r}")
        if u.sgw not in sgws:
            raise ValueError(f"ue {u.name}: unknown sgw {u.sgw!r}")


@dataclass(frozen=True, slots=True)
class Bearer:
    """One UE's default bearer: the S1-U tunnel pair between its eNB and its SGW."""

    ue: str
    ue_address: IPv4Address
    ue_address6: IPv6Address | None  # dual-stack UEs (``ue_pool.subnet6``), else None
    enb: str
    enb_address: IPv4Address
    sgw: str
    sgw_address: IPv4Address
    ul_teid: int  # allocated by the SGW: eNB -> SGW G-PDUs carry it
    dl_teid: int  # allocated by the eNB: SGW -> eNB G-PDUs carry it
    pdu_session_container: bool
    qfi: int

    def as_json(self) -> dict[str, object]:
        return {
            "ue": self.ue,
            "ue_address": str(self.ue_address),
            "ue_address6": None if self.ue_address6 is None else str(self.ue_address6),
            "enb": self.enb,
            "enb_address": str(self.enb_address),
            "sgw": self.sgw,
            "sgw_address": str(self.sgw_address),
            "ul_teid": self.ul_teid,
            "dl_teid": self.dl_teid,
            "pdu_session_container": self.pdu_session_container,
            "qfi": self.qfi,
        }

    @classmethod
    def from_json(cls, raw: dict[str, object]) -> Bearer:
        def addr(key: str) -> IPv4Address:
            return IPv4Address(str(raw[key]))

        def num(key: str) -> int:
            value = raw[key]
            if not isinstance(value, int):
                raise LabConfigError(f"bearer field {key!r} must be an integer")
            return value

        six = raw.get("ue_address6")
        return cls(
            ue=str(raw["ue"]),
            ue_address=addr("ue_address"),
            ue_address6=None if six is None else IPv6Address(str(six)),
            enb=str(raw["enb"]),
            enb_address=addr("enb_address"),
            sgw=str(raw["sgw"]),
            sgw_address=addr("sgw_address"),
            ul_teid=num("ul_teid"),
            dl_teid=num("dl_teid"),
            pdu_session_container=bool(raw["pdu_session_container"]),
            qfi=num("qfi"),
        )


def ipv6_twin(
    address: IPv4Address, subnet: IPv4Network, subnet6: IPv6Network | None
) -> IPv6Address | None:
    """The IPv6 address with ``address``'s host index in ``subnet6`` (None without one)."""
    if subnet6 is None:
        return None
    return subnet6.network_address + (int(address) - int(subnet.network_address))


def dns_zone(cfg: LabConfig) -> dict[str, list[str]]:
    """The PDN's DNS zone: names -> addresses (the PDN host's names get its IPv6 address when
    the UEs are dual-stack)."""
    pdn = cfg.pdn
    own = [str(pdn.address)]
    six = ipv6_twin(pdn.address, pdn.subnet, pdn.subnet6 if cfg.ue_pool.subnet6 else None)
    if six is not None:
        own.append(str(six))
    zone = {name: list(own) for name in pdn.dns.host_names}
    zone.update({name: [str(a) for a in addresses] for name, addresses in pdn.dns.names.items()})
    return zone


def bearers(cfg: LabConfig) -> tuple[Bearer, ...]:
    """Allocate TEIDs: per SGW (uplink) and per eNB (downlink), each from the same base."""
    enb_addr = {e.name: e.address for e in cfg.enb}
    sgw_addr = {s.name: s.address for s in cfg.sgw}
    next_ul: dict[str, int] = {}
    next_dl: dict[str, int] = {}
    used_ul: dict[tuple[str, int], str] = {}
    used_dl: dict[tuple[str, int], str] = {}
    out: list[Bearer] = []
    for u in cfg.ue:
        ul = u.ul_teid
        if ul is None:
            ul = next_ul.get(u.sgw, cfg.gtpu.uplink_teid_base)
            while (u.sgw, ul) in used_ul:
                ul += 1
        dl = u.dl_teid
        if dl is None:
            dl = next_dl.get(u.enb, cfg.gtpu.downlink_teid_base)
            while (u.enb, dl) in used_dl:
                dl += 1
        if ul > MAX_TEID or dl > MAX_TEID:
            raise ValueError(f"ue {u.name}: TEID allocation ran past 0xffffffff")
        if (u.sgw, ul) in used_ul:
            raise ValueError(
                f"ue {u.name}: uplink TEID {ul:#x} already used at {u.sgw} "
                f"by {used_ul[(u.sgw, ul)]}"
            )
        if (u.enb, dl) in used_dl:
            raise ValueError(
                f"ue {u.name}: downlink TEID {dl:#x} already used at {u.enb} "
                f"by {used_dl[(u.enb, dl)]}"
            )
        used_ul[(u.sgw, ul)] = u.name
        used_dl[(u.enb, dl)] = u.name
        next_ul[u.sgw] = ul + 1
        next_dl[u.enb] = dl + 1
        pdu = cfg.gtpu.pdu_session_container
        if u.pdu_session_container is not None:
            pdu = u.pdu_session_container
        out.append(
            Bearer(
                ue=u.name,
                ue_address=u.address,
                ue_address6=ipv6_twin(u.address, cfg.ue_pool.subnet, cfg.ue_pool.subnet6),
                enb=u.enb,
                enb_address=enb_addr[u.enb],
                sgw=u.sgw,
                sgw_address=sgw_addr[u.sgw],
                ul_teid=ul,
                dl_teid=dl,
                pdu_session_container=pdu,
                qfi=cfg.gtpu.qfi if u.qfi is None else u.qfi,
            )
        )
    return tuple(out)


def default_text() -> str:
    """The embedded default description (TOML)."""
    return resources.files("fluidedge.lab").joinpath("default.toml").read_text(encoding="utf-8")


def loads(text: str, *, source: str = "<lab config>") -> LabConfig:
    """Parse and validate a TOML description; errors name the source and the field."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise LabConfigError(f"{source}: not valid TOML: {exc}") from exc
    try:
        return LabConfig.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top level)"
        raise LabConfigError(f"{source}: {where}: {first['msg']}") from exc


def osmo_text() -> str:
    """The embedded default description of the osmo flavour (TOML)."""
    return resources.files("fluidedge.lab").joinpath("osmo.toml").read_text(encoding="utf-8")


def load(path: Path | None = None, *, flavour: Flavour | None = None) -> LabConfig:
    """Load ``path``, or the embedded default (of ``flavour``) when ``path`` is None."""
    if path is None:
        if flavour == "osmo":
            return loads(osmo_text(), source="osmo.toml")
        return loads(default_text(), source="default.toml")
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise LabConfigError(f"cannot read lab config {path}: {exc.strerror}") from exc
    return loads(text, source=str(path))


def with_overrides(
    cfg: LabConfig,
    *,
    mode: Mode | None = None,
    pdu_session_container: bool | None = None,
    flavour: Flavour | None = None,
) -> LabConfig:
    """A copy of ``cfg`` with the command-line overrides applied (re-validated)."""
    raw = cfg.model_dump(mode="json")
    if mode is not None:
        raw["lab"]["mode"] = mode
    if flavour is not None:
        raw["lab"]["flavour"] = flavour
    if pdu_session_container is not None:
        raw["gtpu"]["pdu_session_container"] = pdu_session_container
    try:
        return LabConfig.model_validate(raw)
    except ValidationError as exc:
        raise LabConfigError(str(exc.errors()[0]["msg"])) from exc


__all__ = [
    "FLAVOURS",
    "MODES",
    "Bearer",
    "Flavour",
    "LabConfig",
    "Mode",
    "bearers",
    "default_text",
    "dns_zone",
    "load",
    "loads",
    "osmo_text",
    "with_overrides",
]
