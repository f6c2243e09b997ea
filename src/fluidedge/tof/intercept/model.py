"""Intercepts, pure: the request model, the boundary checks, target matching, the pcap format.

A target is a UE address, optionally narrowed to one bearer (the eNB and SGW addresses of its
S1-U tunnel, the pipeline's bearer key). A destination is either a network interface (copies
are sent on it as Ethernet frames) or a pcap file (nanosecond timestamps, LINKTYPE_RAW: each
record is the inner IP packet). What is copied is the packet as the application sees it:
uplink after the destination NAT (serviceIP -> applicationIP), downlink as the application sent
it, before the reverse NAT and the GTP-U encapsulation toward the eNB.
"""

from __future__ import annotations

import ipaddress
import os
import re
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.config import JsonDict

from fluidedge.errors import ConflictError, InputError, NotFoundError
from fluidedge.tof.errors import TofError
from fluidedge.tof.models import IPV4_ANY

_IFNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,14}$")
_FILE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,120}\.pcap$")
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
# What a pcap destination looks like: a bare NAME.pcap, or an absolute path ending in one (the
# directory is checked against the allowed ones after the schema: 409 when it is not).
_PCAP_TEXT = r"^(/([A-Za-z0-9_.-]+/)*)?[A-Za-z0-9][A-Za-z0-9_.-]{0,120}\.pcap$"
# Described as IPv4 (any dotted quad), so a generated schema-valid request is a valid one;
# IPv6 is accepted too (not described, as for the Service API's addresses).
_ADDRESS_SCHEMA: JsonDict = {"pattern": IPV4_ANY}

# pcap (the libpcap file format, draft-ietf-opsawg-pcap): nanosecond-resolution magic,
# version 2.4, snap length, LINKTYPE_RAW (101: the record starts with an IPv4 or IPv6 header).
PCAP_MAGIC_NS = 0xA1B23C4D
LINKTYPE_RAW = 101
SNAPLEN = 65535
PCAP_HEADER = struct.Struct("<IHHiIII")
PCAP_RECORD = struct.Struct("<IIII")


class InterceptInvalid(TofError, InputError):
    """An intercept request violates a rule (bad address, interface, path...)."""


class InterceptNotFound(TofError, NotFoundError):
    """No intercept has that name."""


class InterceptConflict(TofError, ConflictError):
    """The name, or the target's UE, is already intercepted."""


class InterceptRefused(InterceptConflict):
    """A well-formed (schema-valid) request this node cannot carry out: a destination that is
    not one of the two, a directory that is not allowed, a file that exists, an interface that
    cannot be opened, peers of two families (409, the reason says which)."""


def _address(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return str(ipaddress.ip_address(value))
    except ValueError as exc:
        raise ValueError(f"not an IP address: {value!r}") from exc


class TargetModel(BaseModel):
    """Whose offloaded traffic: a UE address, optionally one bearer (its eNB and SGW)."""

    model_config = ConfigDict(extra="forbid")

    ue: str = Field(
        max_length=64,
        description="UE address (the inner address of its bearer)",
        json_schema_extra=_ADDRESS_SCHEMA,
    )
    enb: str | None = Field(
        default=None,
        max_length=64,
        description="only this eNB's bearer",
        json_schema_extra=_ADDRESS_SCHEMA,
    )
    sgw: str | None = Field(
        default=None,
        max_length=64,
        description="only this SGW's bearer",
        json_schema_extra=_ADDRESS_SCHEMA,
    )

    @field_validator("ue", "enb", "sgw")
    @classmethod
    def _check(cls, value: str | None) -> str | None:
        return _address(value)


class DestinationModel(BaseModel):
    """Where copies go: exactly one of an interface or a pcap file."""

    model_config = ConfigDict(extra="forbid")

    interface: str | None = Field(
        default=None, max_length=15, pattern=_IFNAME.pattern, description="mirror interface"
    )
    pcap: str | None = Field(
        default=None,
        max_length=1024,
        pattern=_PCAP_TEXT,
        description="pcap file: a name (in the state dir's intercepts/) or an absolute path in "
        "a configured directory; it must not exist yet",
    )

    @field_validator("interface")
    @classmethod
    def _check_if(cls, value: str | None) -> str | None:
        if value is not None and not _IFNAME.match(value):
            raise ValueError(f"invalid interface name {value!r}")
        return value


class NewInterceptModel(BaseModel):
    """``POST /v1/intercepts``."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=63, pattern=_ID.pattern, description="its id")
    target: TargetModel
    destination: DestinationModel


@dataclass(frozen=True)
class Intercept:
    """A validated intercept (what the store and the data plane hold)."""

    name: str
    ue: str
    enb: str | None
    sgw: str | None
    interface: str | None
    pcap: str | None  # absolute, resolved path
    created: float

    def to_api(self) -> dict[str, object]:
        return {
            "name": self.name,
            "target": {"ue": self.ue, "enb": self.enb, "sgw": self.sgw},
            "destination": {"interface": self.interface, "pcap": self.pcap},
            "created": self.created,
        }

    @property
    def packed_ue(self) -> bytes:
        return ipaddress.ip_address(self.ue).packed

    def matcher(self) -> Target:
        return Target(
            self.packed_ue,
            ipaddress.ip_address(self.enb).packed if self.enb else None,
            ipaddress.ip_address(self.sgw).packed if self.sgw else None,
        )


@dataclass(frozen=True, slots=True)
class Target:
    """Packed target for the data plane: the UE and the optional bearer peers."""

    ue: bytes
    enb: bytes | None
    sgw: bytes | None

    def matches(self, ue: bytes, enb: bytes, sgw: bytes) -> bool:
        """Whether a packet of bearer (enb, sgw, ue) is this target's."""
        return (
            ue == self.ue
            and (self.enb is None or enb == self.enb)
            and (self.sgw is None or sgw == self.sgw)
        )


def pcap_path(text: str, default_dir: Path, allowed: list[Path]) -> Path:
    """The file a ``pcap`` destination names, checked: a bare file name goes in
    ``default_dir``; an absolute path must be in ``default_dir`` or one of ``allowed``
    (compared after resolving the parent's symbolic links), its name ``*.pcap`` of safe
    characters. Raises :class:`InterceptInvalid` (malformed) or :class:`InterceptRefused` (a
    directory that is not allowed) with the reason."""
    if "\x00" in text:
        raise InterceptInvalid("destination.pcap: NUL in path")
    raw = Path(text)
    if not raw.is_absolute():
        if raw.name != text:
            raise InterceptInvalid("destination.pcap: a relative path must be a bare file name")
        raw = default_dir / raw
    if not _FILE.match(raw.name):
        raise InterceptInvalid(
            f"destination.pcap: file name {raw.name!r} must be NAME.pcap "
            "(A-Z a-z 0-9 _ . -, at most 125 chars)"
        )
    parent = Path(os.path.realpath(raw.parent))
    roots = [Path(os.path.realpath(d)) for d in (default_dir, *allowed)]
    if not any(parent == root for root in roots):
        raise InterceptRefused(
            f"destination.pcap: {raw.parent} is not an allowed directory "
            f"({', '.join(str(r) for r in roots)})"
        )
    return parent / raw.name


def validate(request: NewInterceptModel, default_dir: Path, allowed: list[Path]) -> Intercept:
    """A request's intercept, every rule the schema alone cannot express checked."""
    dest = request.destination
    if (dest.interface is None) == (dest.pcap is None):
        raise InterceptRefused("destination: give exactly one of interface or pcap")
    target = request.target
    families = {ipaddress.ip_address(a).version for a in (target.enb, target.sgw) if a}
    if len(families) > 1:
        raise InterceptRefused("target: enb and sgw must be of one address family")
    path = None if dest.pcap is None else str(pcap_path(dest.pcap, default_dir, allowed))
    return Intercept(
        request.name, target.ue, target.enb, target.sgw, dest.interface, path, created=0.0
    )


def pcap_header() -> bytes:
    """The pcap file header (nanosecond timestamps, raw IP records)."""
    return PCAP_HEADER.pack(PCAP_MAGIC_NS, 2, 4, 0, 0, SNAPLEN, LINKTYPE_RAW)


def pcap_record(packet: bytes, time_ns: int) -> bytes:
    """One pcap record: the packet (cut at the snap length) stamped ``time_ns`` (epoch)."""
    seconds, nanos = divmod(time_ns, 1_000_000_000)
    kept = packet[:SNAPLEN]
    return PCAP_RECORD.pack(seconds, nanos, len(kept), len(packet)) + kept


def read_pcap(data: bytes) -> list[tuple[int, bytes]]:
    """The records of a pcap file we wrote: (epoch ns, packet); for tests and tools."""
    if len(data) < PCAP_HEADER.size:
        raise ValueError("pcap: short header")
    magic, _major, _minor, _zone, _sig, _snap, link = PCAP_HEADER.unpack_from(data)
    if magic != PCAP_MAGIC_NS or link != LINKTYPE_RAW:
        raise ValueError("pcap: not a nanosecond raw-IP pcap")
    out: list[tuple[int, bytes]] = []
    at = PCAP_HEADER.size
    while at + PCAP_RECORD.size <= len(data):
        seconds, nanos, kept, _orig = PCAP_RECORD.unpack_from(data, at)
        at += PCAP_RECORD.size
        if at + kept > len(data):
            break  # a record cut by a crash: ignored
        out.append((seconds * 1_000_000_000 + nanos, data[at : at + kept]))
        at += kept
    return out


class Copier(Protocol):
    """What the pipeline copies an intercepted packet to (:class:`~.sink.Mirror`)."""

    target: Target

    def copy(self, packet: bytes) -> None: ...


class InterceptConfig(BaseModel):
    """``[tof.intercept]``: where pcap destinations may be written, and the copies' bound."""

    model_config = ConfigDict(extra="forbid")

    # Absolute directories (besides state_dir/intercepts) a pcap destination may name.
    pcap_dirs: list[str] = Field(default_factory=list)
    # Copies waiting for an intercept's writer; beyond, dropped and counted.
    queue: int = Field(default=65536, ge=16, le=10_000_000)

    @field_validator("pcap_dirs")
    @classmethod
    def _check_dirs(cls, value: list[str]) -> list[str]:
        for d in value:
            if not Path(d).is_absolute():
                raise ValueError(f"pcap_dirs: {d!r} is not an absolute path")
        return value
