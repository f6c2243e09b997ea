"""The instance manager's API models and their validation.

Names are checked at the boundary (they end up in cgroup paths, file names and interface
names); addresses are parsed with :mod:`ipaddress`. Every model forbids unknown fields so a typo
in a request is a 400 with a reason, not a silently ignored option.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

NAME_PATTERN = r"^[a-z][a-z0-9-]{0,31}$"
IFNAME_PATTERN = r"^[a-z][a-z0-9]{0,7}$"
_LABEL_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}=[A-Za-z0-9_.-]{0,63}$")
_FILE_RE = re.compile(r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$")
_ENV_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

# What the launcher takes (its C source is built from these numbers, see launcher.py): the
# assignment file's size, arguments and environment entries. A request beyond them is a 400
# naming the limit, never a silent truncation. The manager adds PATH (unless given) and
# FLUIDEDGE_INSTANCE to the environment: ENV_RESERVED entries are kept for those.
MAX_ASSIGNMENT_BYTES = 131071
MAX_ARGS = 1023
MAX_ENV = 1023
ENV_RESERVED = 2

KNOWN_CAPABILITIES = frozenset(
    {
        "CAP_CHOWN",
        "CAP_DAC_OVERRIDE",
        "CAP_DAC_READ_SEARCH",
        "CAP_FOWNER",
        "CAP_FSETID",
        "CAP_KILL",
        "CAP_SETGID",
        "CAP_SETUID",
        "CAP_SETPCAP",
        "CAP_NET_BIND_SERVICE",
        "CAP_NET_BROADCAST",
        "CAP_NET_ADMIN",
        "CAP_NET_RAW",
        "CAP_IPC_LOCK",
        "CAP_IPC_OWNER",
        "CAP_SYS_CHROOT",
        "CAP_SYS_NICE",
        "CAP_SYS_RESOURCE",
        "CAP_SYS_TIME",
        "CAP_MKNOD",
        "CAP_AUDIT_WRITE",
        "CAP_SETFCAP",
    }
)

Name = Annotated[str, Field(pattern=NAME_PATTERN, description="lower-case name, <= 32 chars")]
IfName = Annotated[str, Field(pattern=IFNAME_PATTERN, description="interface name, <= 8 chars")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _check_env(env: dict[str, str]) -> dict[str, str]:
    if len(env) > MAX_ENV - ENV_RESERVED:
        raise ValueError(f"at most {MAX_ENV - ENV_RESERVED} environment variables (got {len(env)})")
    for key, value in env.items():
        if not _ENV_KEY_RE.match(key):
            raise ValueError(f"invalid environment variable name {key!r}")
        if "\0" in value:
            raise ValueError(f"environment variable {key} holds a NUL byte")
    return env


def _check_argv(argv: list[str]) -> list[str]:
    if not argv:
        raise ValueError("command must not be empty")
    if not argv[0].startswith("/"):
        raise ValueError("command[0] must be an absolute path inside the instance")
    if "=" in argv[0]:
        raise ValueError("command[0] must not contain '='")
    if any("\0" in arg for arg in argv):
        raise ValueError("command arguments must not contain NUL bytes")
    if len(argv) > MAX_ARGS:
        raise ValueError(f"command: at most {MAX_ARGS} arguments (got {len(argv)})")
    return argv


def assignment_size(argv: list[str], env: dict[str, str]) -> int:
    """Bytes of the launcher's assignment file for ``argv`` and ``env`` (see
    :func:`fluidedge.instances.bundle.encode_assignment`)."""
    return (
        len(str(len(argv)).encode())
        + 1
        + sum(len(a.encode()) + 1 for a in argv)
        + sum(len(k.encode()) + len(v.encode()) + 2 for k, v in env.items())
    )


def check_assignment(argv: list[str], env: dict[str, str]) -> None:
    """Raise ValueError when ``argv`` + ``env`` exceed what the launcher takes."""
    if len(env) > MAX_ENV:
        raise ValueError(f"env: at most {MAX_ENV} variables in all (got {len(env)})")
    size = assignment_size(argv, env)
    if size > MAX_ASSIGNMENT_BYTES:
        raise ValueError(f"command + env: at most {MAX_ASSIGNMENT_BYTES} bytes in all (got {size})")


def _check_labels(selectors: list[str]) -> list[str]:
    for selector in selectors:
        if not _LABEL_RE.match(selector):
            raise ValueError(f"invalid label selector {selector!r} (want key=value)")
    return selectors


class Resources(_Strict):
    cpus: float = Field(default=0.01, gt=0, le=64, description="CPU request (cpu.shares)")
    cpu_limit: float | None = Field(
        default=None, gt=0, le=64, description="hard CPU cap via CFS quota (CPUs)"
    )
    memory_mb: int = Field(default=32, ge=4, le=1 << 20, description="memory limit (MiB)")
    pids: int = Field(default=64, ge=2, le=1 << 16, description="pids limit")


class ResourceOverrides(_Strict):
    cpus: float | None = Field(default=None, gt=0, le=64)
    cpu_limit: float | None = Field(default=None, gt=0, le=64)
    memory_mb: int | None = Field(default=None, ge=4, le=1 << 20)
    pids: int | None = Field(default=None, ge=2, le=1 << 16)


class InterfaceSpec(_Strict):
    name: IfName
    network: Name


class Readiness(_Strict):
    kind: Literal["none", "started", "tcp", "file"] = "started"
    port: int | None = Field(default=None, ge=1, le=65535)
    path: str | None = Field(default=None, description="absolute path inside the instance")
    timeout_s: float = Field(default=5.0, gt=0, le=120)

    @model_validator(mode="after")
    def _needs_target(self) -> Readiness:
        if self.kind == "tcp" and self.port is None:
            raise ValueError("readiness kind 'tcp' needs a port")
        if self.kind == "file" and (self.path is None or not self.path.startswith("/")):
            raise ValueError("readiness kind 'file' needs an absolute path")
        return self


class PoolPolicy(_Strict):
    size: int = Field(default=4, ge=0, le=5000, description="prepared shells to keep")
    low_water: int | None = Field(
        default=None, ge=0, le=5000, description="refill when fewer are ready (default: size)"
    )
    refill: bool = Field(default=True, description="keep the pool full as shells are consumed")
    refill_delay_ms: float = Field(
        default=50,
        ge=0,
        le=60_000,
        description="wait after a consumption before refilling, so the prepare work (runc "
        "create is CPU-heavy) does not compete with the request being served",
    )


class TemplateSpec(_Strict):
    """What an instance runs, and how many shells to keep prepared for it."""

    name: Name
    description: str = ""
    command: list[str]
    env: dict[str, str] = Field(default_factory=dict)
    files: dict[str, str] = Field(
        default_factory=dict,
        description="files written into /.fe/ at start; '{name}' is replaced by the instance name",
    )
    resources: Resources = Field(default_factory=Resources)
    capabilities: list[str] = Field(default_factory=list)
    interfaces: list[InterfaceSpec] = Field(default_factory=list, max_length=8)
    readiness: Readiness = Field(default_factory=Readiness)
    pool: PoolPolicy = Field(default_factory=PoolPolicy)
    labels: dict[str, str] = Field(default_factory=dict)

    @field_validator("command")
    @classmethod
    def _command(cls, value: list[str]) -> list[str]:
        return _check_argv(value)

    @field_validator("env")
    @classmethod
    def _env(cls, value: dict[str, str]) -> dict[str, str]:
        return _check_env(value)

    @field_validator("files")
    @classmethod
    def _files(cls, value: dict[str, str]) -> dict[str, str]:
        for path in value:
            if not _FILE_RE.match(path) or ".." in path.split("/"):
                raise ValueError(f"invalid file path {path!r} (relative, no '..')")
        return value

    @field_validator("capabilities")
    @classmethod
    def _caps(cls, value: list[str]) -> list[str]:
        for cap in value:
            if cap not in KNOWN_CAPABILITIES:
                raise ValueError(f"unknown or refused capability {cap!r}")
        return sorted(set(value))

    @field_validator("interfaces")
    @classmethod
    def _unique_ifaces(cls, value: list[InterfaceSpec]) -> list[InterfaceSpec]:
        names = [iface.name for iface in value]
        if len(names) != len(set(names)):
            raise ValueError("interface names must be unique")
        if "lo" in names:
            raise ValueError("'lo' is reserved")
        return value

    @model_validator(mode="after")
    def _fits_launcher(self) -> TemplateSpec:
        check_assignment(self.command, self.env)
        return self


class InterfaceAssignment(_Strict):
    addresses: list[str] = Field(default_factory=list, max_length=8)
    gateway: str | None = None

    @field_validator("addresses")
    @classmethod
    def _addresses(cls, value: list[str]) -> list[str]:
        out = []
        for text in value:
            if "/" not in text:
                raise ValueError(f"address {text!r} needs a prefix length (e.g. /24)")
            try:
                out.append(str(ipaddress.ip_interface(text)))
            except ValueError as exc:
                raise ValueError(f"invalid address {text!r}: {exc}") from exc
        return out

    @field_validator("gateway")
    @classmethod
    def _gateway(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            return str(ipaddress.ip_address(value))
        except ValueError as exc:
            raise ValueError(f"invalid gateway {value!r}") from exc


class InstanceRequest(_Strict):
    """``POST /v1/instances``: what is specific to one instance."""

    name: Name
    template: Name
    interfaces: dict[str, InterfaceAssignment] = Field(default_factory=dict)
    command: list[str] | None = None
    env: dict[str, str] = Field(default_factory=dict)
    resources: ResourceOverrides = Field(default_factory=ResourceOverrides)
    labels: dict[str, str] = Field(default_factory=dict)
    affinity: list[str] = Field(default_factory=list, description="key=value: share CPUs with")
    anti_affinity: list[str] = Field(default_factory=list, description="key=value: avoid CPUs of")
    placement: Literal["spread", "pack"] | None = None
    wait_ready: bool = True
    cold: bool = Field(default=False, description="skip the pool (measurements)")

    @field_validator("command")
    @classmethod
    def _command(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else _check_argv(value)

    @field_validator("env")
    @classmethod
    def _env(cls, value: dict[str, str]) -> dict[str, str]:
        return _check_env(value)

    @field_validator("affinity", "anti_affinity")
    @classmethod
    def _selectors(cls, value: list[str]) -> list[str]:
        return _check_labels(value)

    @model_validator(mode="after")
    def _fits_launcher(self) -> InstanceRequest:
        check_assignment(self.command or ["/"], self.env)
        return self


class NetworkSpec(_Strict):
    """A switch the daemon manages: a Linux bridge, optionally inside a network namespace."""

    name: Name
    bridge: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,14}$")
    netns: str | None = Field(default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
    subnet: str | None = Field(default=None, description="addresses must fall inside it")

    @field_validator("subnet")
    @classmethod
    def _subnet(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            return str(ipaddress.ip_network(value, strict=False))
        except ValueError as exc:
            raise ValueError(f"invalid subnet {value!r}") from exc


class Timing(BaseModel):
    """Milliseconds per phase of the request (the VIM model of §3)."""

    accept: float = 0.0
    placement: float = 0.0
    shell: float = 0.0
    config: float = 0.0
    network: float = 0.0
    start: float = 0.0
    ready: float = 0.0
    total: float = 0.0


class InterfaceState(BaseModel):
    name: str
    network: str
    host_ifname: str
    addresses: list[str] = Field(default_factory=list)
    gateway: str | None = None


class InstanceView(BaseModel):
    name: str
    id: str
    template: str
    state: str
    pid: int | None
    path: Literal["warm", "cold"]
    cpus: list[int]
    resources: Resources
    interfaces: list[InterfaceState]
    labels: dict[str, str]
    timing: Timing
    created_at: float
    op_ms: float | None = Field(
        default=None, description="duration of the pause/resume just done (freezer write)"
    )


class PoolStatus(BaseModel):
    template: str
    target: int
    ready: int
    preparing: int
    consumed: int
    failures: int
    last_error: str | None = None
