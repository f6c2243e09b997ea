"""The instance manager's API models and their validation.

Names are checked at the boundary (they end up in cgroup paths, file names and interface
names); addresses are parsed with :mod:`ipaddress`. Every model forbids unknown fields so a typo
in a request is a 400 with a reason, not a silently ignored option. Every free-form field has a
size limit (``LIMITS``), stated in the OpenAPI schema and in the 400's reason when exceeded: a
template is stored, kept in memory and written into every instance, so megabytes of description
or env would cost on every request.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from fluidedge.core.jsontypes import JsonInt, bounds
from fluidedge.core.patterns import (
    IPV4,
    IPV4_PREFIX,
    IPV6,
    IPV6_PREFIX,
    V4_LENGTH,
    V6_LENGTH,
    anchored,
)
from fluidedge.linux.capabilities import KNOWN_CAPABILITIES

# Kernel settings a template may give its instance's network namespace (OCI linux.sysctl,
# applied by the runtime inside the new namespace): forwarding and reverse-path filtering,
# what a routed function needs. Namespaced, so they change nothing outside the instance.
NETNS_SYSCTLS = frozenset(
    {
        "net.ipv4.ip_forward",
        "net.ipv4.conf.all.rp_filter",
        "net.ipv4.conf.default.rp_filter",
        "net.ipv6.conf.all.forwarding",
    }
)
NAME_PATTERN = r"^[a-z][a-z0-9-]{0,31}$"
IFNAME_PATTERN = r"^[a-z][a-z0-9]{0,7}$"
_LABEL_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}=[A-Za-z0-9_.-]{0,63}$")
# A file path under /.fe/: names of at most NAME_MAX (255) characters.
_FILE_RE = re.compile(r"^[A-Za-z0-9_.-]{1,255}(/[A-Za-z0-9_.-]{1,255})*$")
_ENV_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

# What the launcher takes (its C source is built from these numbers, see launcher.py): the
# assignment file's size, arguments and environment entries. A request beyond them is a 400
# naming the limit, never a silent truncation. The manager adds PATH (unless given) and
# FLUIDEDGE_INSTANCE to the environment: ENV_RESERVED entries are kept for those.
MAX_ASSIGNMENT_BYTES = 131071
MAX_ARGS = 1023
MAX_ENV = 1023
ENV_RESERVED = 2


# Size limits of the free-form fields (characters, or entries for lists and maps).
LIMITS = {
    "description": 4096,
    "args": 256,
    "arg": 4096,
    "env": 256,
    "env_key": 256,
    "env_value": 32768,
    "files": 64,
    "file_path": 255,
    "file_content": 256 * 1024,
    "labels": 64,
    "label": 63,
    "selectors": 32,
}
# Launcher-owned names in the assignment directory (/.fe): a template file must not shadow them.
RESERVED_FILES = frozenset({"go", "assign", "started"})

Name = Annotated[str, Field(pattern=NAME_PATTERN, description="lower-case name, <= 32 chars")]
_NoNul = r"^[^\x00]*$"
Arg = Annotated[str, Field(max_length=LIMITS["arg"], pattern=_NoNul)]
# command[0] must be absolute, without '=' (checked by _check_argv); prefixItems states it.
Command = Annotated[
    list[Arg],
    Field(
        min_length=1,
        max_length=LIMITS["args"],
        json_schema_extra={
            "prefixItems": [{"type": "string", "pattern": r"^/[^\x00=]*$", "maxLength": 4096}]
        },
    ),
]
# Addresses and networks (ipaddress checks them; these patterns state their shape in the schema,
# every text form ipaddress writes included: fluidedge.core.patterns).
_IPV4_NET = anchored(IPV4_PREFIX)
_IPV6_NET = anchored(IPV6_PREFIX)
# Key patterns are checked by the validators below (their reasons are clearer than a regex);
# the schemas state them too, so that a generated schema-valid request is a valid one.
EnvKey = Annotated[str, Field(max_length=LIMITS["env_key"])]
EnvValue = Annotated[str, Field(max_length=LIMITS["env_value"], pattern=_NoNul)]
Env = Annotated[
    dict[EnvKey, EnvValue],
    Field(max_length=LIMITS["env"]),
    WithJsonSchema(
        {
            "type": "object",
            "maxProperties": LIMITS["env"],
            "propertyNames": {"pattern": _ENV_KEY_RE.pattern, "maxLength": LIMITS["env_key"]},
            "additionalProperties": {
                "type": "string",
                "pattern": _NoNul,
                "maxLength": LIMITS["env_value"],
            },
        }
    ),
]
LabelText = Annotated[str, Field(max_length=LIMITS["label"])]
Labels = Annotated[dict[LabelText, LabelText], Field(max_length=LIMITS["labels"])]
FilePath = Annotated[str, Field(max_length=LIMITS["file_path"])]
FileContent = Annotated[str, Field(max_length=LIMITS["file_content"])]
_FILE_SCHEMA_RE = (
    r"^(?!(go|assign|started)(/|$))(?!(.*/)?\.\.(/|$))"
    r"[A-Za-z0-9_.-]{1,255}(/[A-Za-z0-9_.-]{1,255})*$"
)
Files = Annotated[
    dict[FilePath, FileContent],
    Field(max_length=LIMITS["files"]),
    WithJsonSchema(
        {
            "type": "object",
            "maxProperties": LIMITS["files"],
            "propertyNames": {"pattern": _FILE_SCHEMA_RE, "maxLength": LIMITS["file_path"]},
            "additionalProperties": {"type": "string", "maxLength": LIMITS["file_content"]},
        }
    ),
]
Selectors = Annotated[
    list[Annotated[str, Field(json_schema_extra={"pattern": _LABEL_RE.pattern})]],
    Field(max_length=LIMITS["selectors"]),
]
IfName = Annotated[
    str,
    Field(
        pattern=IFNAME_PATTERN,
        description="interface name, <= 8 chars, not 'lo'",
        json_schema_extra={"not": {"const": "lo"}},
    ),
]


_PORT, _PORT_SCHEMA = bounds(1, 65535)
_MEM, _MEM_SCHEMA = bounds(4, 1 << 20)
_PIDS, _PIDS_SCHEMA = bounds(2, 1 << 16)
_POOL, _POOL_SCHEMA = bounds(0, 5000)
Port = Annotated[JsonInt, _PORT, _PORT_SCHEMA]
MemoryMb = Annotated[JsonInt, _MEM, _MEM_SCHEMA]
Pids = Annotated[JsonInt, _PIDS, _PIDS_SCHEMA]
PoolSize = Annotated[JsonInt, _POOL, _POOL_SCHEMA]


class _Strict(BaseModel):
    # strict: a JSON ``false`` is not a number, a number is not a string (no silent coercion).
    model_config = ConfigDict(extra="forbid", strict=True)


def _check_env(env: dict[str, str]) -> dict[str, str]:
    if len(env) > MAX_ENV - ENV_RESERVED:
        raise ValueError(f"at most {MAX_ENV - ENV_RESERVED} environment variables (got {len(env)})")
    for key, value in env.items():
        if not _ENV_KEY_RE.match(key):
            raise ValueError(f"invalid environment variable name {key!r}")
        if "\0" in value:
            raise ValueError(f"environment variable {key} holds a NUL byte")
    return env


def _check_files(files: dict[str, str]) -> dict[str, str]:
    for path in files:
        parts = path.split("/")
        if not _FILE_RE.match(path) or ".." in parts:
            raise ValueError(
                f"invalid file path {path[:80]!r} (relative, names of A-Z a-z 0-9 _ . -, no '..')"
            )
        if parts[0] in RESERVED_FILES:
            raise ValueError(
                f"file path {path!r} is reserved for the launcher "
                f"({', '.join(sorted(RESERVED_FILES))})"
            )
    return files


def check_file_tree(paths: Iterable[str]) -> None:
    """Raise ValueError when the files cannot all be written: a path that is also a directory
    of another (``a`` and ``a/b``), a name ``.`` (the directory itself). The template's and the
    request's files are checked together too. Not a model check: a template stored before it
    still loads (its instances are refused, with this reason)."""
    files = set(paths)
    for path in sorted(files):
        parts = path.split("/")
        if "." in parts:
            raise ValueError(f"file path {path!r} names '.', a directory, not a file")
        for depth in range(1, len(parts)):
            parent = "/".join(parts[:depth])
            if parent in files:
                raise ValueError(f"file path {parent!r} is also the directory of {path!r}")


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
    memory_mb: JsonInt = Field(default=32, ge=4, le=1 << 20, description="memory limit (MiB)")
    pids: JsonInt = Field(default=64, ge=2, le=1 << 16, description="pids limit")


class ResourceOverrides(_Strict):
    cpus: float | None = Field(default=None, gt=0, le=64)
    cpu_limit: float | None = Field(default=None, gt=0, le=64)
    memory_mb: MemoryMb | None = None
    pids: Pids | None = None


class InterfaceSpec(_Strict):
    # The model validator's rule, stated in the schema too: unfiltered, no groups, no pairs.
    model_config = ConfigDict(
        json_schema_extra={
            "if": {
                "properties": {"port_security": {"const": False}},
                "required": ["port_security"],
            },
            "then": {
                "properties": {
                    "security_groups": {"anyOf": [{"type": "null"}, {"maxItems": 0}]},
                    "allowed_address_pairs": {"maxItems": 0},
                }
            },
        }
    )

    name: IfName
    network: Name
    security_groups: list[Name] | None = Field(
        default=None,
        max_length=16,
        description="security groups of the interface (the [secgroups] part); "
        "default: the tenant's default group",
    )
    port_security: bool = Field(
        default=True,
        description="false: the interface is not filtered at all (no groups, no pairs)",
    )
    allowed_address_pairs: list[
        Annotated[
            str,
            Field(json_schema_extra={"anyOf": [{"pattern": _IPV4_NET}, {"pattern": _IPV6_NET}]}),
        ]
    ] = Field(
        default_factory=list,
        max_length=8,
        description="extra prefixes the interface may send from (e.g. a shared VIP)",
    )
    isolated: bool = Field(
        default=False,
        description="ovs and linuxbridge networks: plug the interface outside the learning "
        "switch (ovs: an access VLAN of its own, NORMAL never forwards to or from it; "
        "linuxbridge: no learning or flooding to it, and what it sends is dropped unless a "
        "chain takes it), so that a service function bridging two legs is no loop; only the "
        "chains part's steering reaches it",
    )

    @field_validator("allowed_address_pairs")
    @classmethod
    def _pairs(cls, value: list[str]) -> list[str]:
        out = []
        for text in value:
            try:
                out.append(str(ipaddress.ip_network(text, strict=False)))
            except ValueError as exc:
                raise ValueError(f"invalid allowed address pair {text!r}: {exc}") from exc
        return out

    @model_validator(mode="after")
    def _unfiltered_has_no_groups(self) -> InterfaceSpec:
        if not self.port_security and (self.security_groups or self.allowed_address_pairs):
            raise ValueError(
                "port_security: an unfiltered interface takes no security groups or pairs"
            )
        return self


class Readiness(_Strict):
    # The model validator's rules, stated in the schema too.
    model_config = ConfigDict(
        json_schema_extra={
            "allOf": [
                {
                    "if": {"properties": {"kind": {"const": "tcp"}}, "required": ["kind"]},
                    "then": {"required": ["port"], "properties": {"port": {"type": "integer"}}},
                },
                {
                    "if": {"properties": {"kind": {"const": "file"}}, "required": ["kind"]},
                    "then": {
                        "required": ["path"],
                        "properties": {"path": {"type": "string", "pattern": "^/"}},
                    },
                },
            ]
        }
    )

    kind: Literal["none", "started", "tcp", "file"] = "started"
    port: Port | None = None
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
    size: JsonInt = Field(default=4, ge=0, le=5000, description="prepared shells to keep")
    low_water: PoolSize | None = Field(
        default=None, description="refill when fewer are ready (default: size)"
    )
    refill: bool = Field(default=True, description="keep the pool full as shells are consumed")
    refill_delay_ms: float = Field(
        default=50,
        ge=0,
        le=60_000,
        description="wait after a consumption before refilling, so the prepare work (runc "
        "create is CPU-heavy) does not compete with the request being served",
    )


# A uid or gid the user namespace maps (0..65535), as a pattern so the schema states it.
_ID = r"(6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3}|0)"


class Mounts(_Strict):
    """The kernel filesystems an instance gets besides ``/proc``, ``/dev`` and ``/dev/mqueue``.

    Each is a filesystem (a superblock) per instance, and every superblock on the host costs
    every memory cgroup a slot in its shrinker map: kernel memory that grows with the square of
    the instance count (docs/instances.md, "Density: what 10,000 costs the kernel"). A workload
    that needs neither turns them off and is cheaper at scale (the built-in ``idle`` does).
    """

    sysfs: bool = Field(
        default=True,
        description="/sys: read-only sysfs of the instance's network namespace (its interfaces)",
    )
    devpts: bool = Field(default=True, description="/dev/pts: pseudo-terminals (/dev/ptmx)")


class TemplateSpec(_Strict):
    """What an instance runs, and how many shells to keep prepared for it."""

    name: Name
    description: str = Field(default="", max_length=LIMITS["description"])
    image: Name = Field(
        default="busybox",
        description="the image whose root the instance runs on (see /v1/images); its "
        "Entrypoint+Cmd, Env, WorkingDir, User and ExposedPorts fill what the template omits",
    )
    command: list[Arg] = Field(
        default_factory=list,
        max_length=LIMITS["args"],
        description="argv (command[0] absolute); default: the image's Entrypoint + Cmd",
        json_schema_extra={
            "prefixItems": [{"type": "string", "pattern": r"^/[^\x00=]*$", "maxLength": 4096}]
        },
    )
    workdir: str | None = Field(
        default=None, max_length=4096, pattern=r"^/[^\x00]*$", description="default: image's"
    )
    user: str | None = Field(
        default=None,
        pattern=rf"^{_ID}(:{_ID})?$",
        description="uid[:gid] inside the instance; default: the image's User",
    )
    ports: list[Port] = Field(
        default_factory=list, max_length=64, description="TCP ports served (image's ExposedPorts)"
    )
    userns_opt_out: str | None = Field(
        default=None,
        max_length=LIMITS["description"],
        pattern=r"^\s*\S[\s\S]*$",
        description="admin only: run without a user namespace (container root = host root, "
        "no capabilities); the value is the reason, recorded. Absent: a user namespace",
    )
    env: Env = Field(default_factory=dict)
    files: Files = Field(
        default_factory=dict,
        description="files written into /.fe/ at start; '{name}' is replaced by the instance name",
    )
    resources: Resources = Field(default_factory=Resources)
    capabilities: list[
        Annotated[str, Field(json_schema_extra={"enum": sorted(KNOWN_CAPABILITIES)})]
    ] = Field(default_factory=list, max_length=len(KNOWN_CAPABILITIES))
    interfaces: list[InterfaceSpec] = Field(
        default_factory=list, max_length=8, json_schema_extra={"uniqueItems": True}
    )
    sysctls: dict[
        Annotated[str, Field(json_schema_extra={"enum": sorted(NETNS_SYSCTLS)})],
        Annotated[str, Field(pattern=r"^[0-2]$")],
    ] = Field(
        default_factory=dict,
        max_length=len(NETNS_SYSCTLS),
        description="kernel settings of the instance's own network namespace, set by the "
        "runtime at creation (its /proc/sys is read-only): IP forwarding for a routed "
        "service function",
    )
    readiness: Readiness = Field(default_factory=Readiness)
    pool: PoolPolicy = Field(default_factory=PoolPolicy)
    labels: Labels = Field(default_factory=dict)
    mounts: Mounts = Field(
        default_factory=Mounts,
        description="kernel filesystems beyond /proc, each one per instance (/sys, /dev/pts; "
        "/dev is the daemon's shared read-only skeleton); a lean template turns them off "
        "(docs/instances.md, Density)",
    )
    cos: Name | None = Field(default=None, description="class of service (the [cat] part)")
    failover: Literal["none", "recreate"] = Field(
        default="none",
        description="[cluster]: when its node dies, re-create the instance on a live node "
        "(same name, interfaces and addresses) or leave it lost",
    )
    restart: Literal["no", "always"] = Field(
        default="no",
        description="always: an instance whose workload is gone is created again on this "
        "node (same name, id, addresses and request), at the daemon's start (after a reboot) "
        "and when it exits while the daemon runs, with a back-off; no: it stays exited",
    )

    @field_validator("command")
    @classmethod
    def _command(cls, value: list[str]) -> list[str]:
        return _check_argv(value) if value else value

    @field_validator("env")
    @classmethod
    def _env(cls, value: dict[str, str]) -> dict[str, str]:
        return _check_env(value)

    @field_validator("files")
    @classmethod
    def _files(cls, value: dict[str, str]) -> dict[str, str]:
        return _check_files(value)

    @field_validator("capabilities")
    @classmethod
    def _caps(cls, value: list[str]) -> list[str]:
        for cap in value:
            if cap not in KNOWN_CAPABILITIES:
                raise ValueError(f"unknown or refused capability {cap!r}")
        return sorted(set(value))

    @field_validator("sysctls")
    @classmethod
    def _sysctls(cls, value: dict[str, str]) -> dict[str, str]:
        for key, setting in value.items():
            if key not in NETNS_SYSCTLS:
                raise ValueError(f"sysctl {key!r} is not one of {', '.join(sorted(NETNS_SYSCTLS))}")
            if setting not in {"0", "1", "2"}:
                raise ValueError(f"sysctl {key}: value {setting!r} is not 0, 1 or 2")
        return dict(sorted(value.items()))

    @field_validator("interfaces")
    @classmethod
    def _no_lo(cls, value: list[InterfaceSpec]) -> list[InterfaceSpec]:
        if "lo" in [iface.name for iface in value]:
            raise ValueError("'lo' is reserved")
        return value

    def duplicate_interfaces(self) -> list[str]:
        """Interface names given more than once (checked by the manager, after the networks
        exist, so that a request naming unknown networks gets its 404 first)."""
        names = [iface.name for iface in self.interfaces]
        return sorted({name for name in names if names.count(name) > 1})

    @model_validator(mode="after")
    def _fits_launcher(self) -> TemplateSpec:
        check_assignment(self.command, self.env)
        return self


def interface_address(
    text: str,
) -> ipaddress.IPv4Interface | ipaddress.IPv6Interface:
    """An address with its prefix length (``10.0.0.2/24``); ValueError saying what is wrong."""
    if "/" not in text:
        raise ValueError(f"address {text!r} needs a prefix length (e.g. /24)")
    try:
        return ipaddress.ip_interface(text)
    except ValueError as exc:
        raise ValueError(f"invalid address {text!r}: {exc}") from exc


class InterfaceAssignment(_Strict):
    security_groups: list[Name] | None = Field(
        default=None,
        max_length=16,
        description="security groups of this instance's interface (overrides the template's)",
    )
    addresses: list[
        Annotated[
            str,
            Field(
                json_schema_extra={
                    "anyOf": [
                        {"pattern": anchored(IPV4 + "/" + V4_LENGTH)},
                        {"pattern": anchored(IPV6 + "/" + V6_LENGTH)},
                    ]
                }
            ),
        ]
    ] = Field(default_factory=list, max_length=8)
    gateway: str | None = Field(
        default=None,
        json_schema_extra={
            "anyOf": [
                {"type": "string", "pattern": anchored(IPV4)},
                {"type": "string", "pattern": anchored(IPV6)},
                {"type": "null"},
            ]
        },
    )

    @field_validator("addresses")
    @classmethod
    def _addresses(cls, value: list[str]) -> list[str]:
        return [str(interface_address(text)) for text in value]

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
    interfaces: dict[str, InterfaceAssignment] = Field(default_factory=dict, max_length=8)
    command: Command | None = None
    env: Env = Field(default_factory=dict)
    files: Files = Field(
        default_factory=dict,
        description="more files written into /.fe/ at start, over the template's (a secret "
        "for this instance only, e.g. the ME platform's Mp1 token); no '{name}' substitution",
    )
    resources: ResourceOverrides = Field(default_factory=ResourceOverrides)
    labels: Labels = Field(default_factory=dict)
    affinity: Selectors = Field(default_factory=list, description="key=value: share CPUs with")
    anti_affinity: Selectors = Field(default_factory=list, description="key=value: avoid CPUs of")
    placement: Literal["spread", "pack"] | None = None
    wait_ready: bool = True
    cold: bool = Field(default=False, description="skip the pool (measurements)")
    restart: Literal["no", "always"] | None = Field(
        default=None, description="the template's restart policy unless given"
    )
    cos: Name | None = Field(
        default=None, description="class of service (the [cat] part); default: the template's"
    )
    node: str | None = Field(
        default=None,
        pattern=r"^[a-z][a-z0-9-]{0,31}$",
        description="the [cluster] node to run on (default: placement chooses; any node's "
        "API forwards to it)",
    )

    @field_validator("command")
    @classmethod
    def _command(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else _check_argv(value)

    @field_validator("env")
    @classmethod
    def _env(cls, value: dict[str, str]) -> dict[str, str]:
        return _check_env(value)

    @field_validator("files")
    @classmethod
    def _files(cls, value: dict[str, str]) -> dict[str, str]:
        return _check_files(value)

    @field_validator("affinity", "anti_affinity")
    @classmethod
    def _selectors(cls, value: list[str]) -> list[str]:
        return _check_labels(value)

    @model_validator(mode="after")
    def _fits_launcher(self) -> InstanceRequest:
        check_assignment(self.command or ["/"], self.env)
        return self


class NetworkSpec(_Strict):
    """A switch the daemon manages: a Linux bridge or an Open vSwitch bridge, optionally
    inside a network namespace."""

    name: Name
    bridge: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,14}$")
    driver: Literal["linuxbridge", "ovs", "ovn"] = Field(
        default="linuxbridge",
        description="linuxbridge: a Linux bridge (kernel forwarding); ovs: a bridge on "
        "fluidedge's own Open vSwitch (userspace netdev datapath, or the kernel one); ovn: an "
        "OVN logical switch of the network's name spanning the nodes (needs instances.ovn; "
        "bridge is unused)",
    )
    netns: str | None = Field(default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
    subnet: str | None = Field(
        default=None,
        description="addresses must fall inside it",
        json_schema_extra={
            "anyOf": [
                {"type": "string", "pattern": _IPV4_NET},
                {"type": "string", "pattern": _IPV6_NET},
                {"type": "null"},
            ]
        },
    )

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
    durable: float = Field(
        default=0.0,
        description="the claim's flush to disk, made while the workload execs",
    )
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
    cos: str | None = Field(default=None, description="class of service (the [cat] part)")
    restart: Literal["no", "always"] = Field(default="no", description="its restart policy")
    restarts: int = Field(default=0, description="times it was created again (restart)")


class PoolStatus(BaseModel):
    template: str
    target: int
    ready: int
    preparing: int
    consumed: int
    failures: int
    last_error: str | None = None


class OrphanView(BaseModel):
    """Something of ours found at start that the store does not know (kept, not destroyed)."""

    id: str = Field(description="container id, shell directory name, or veth name")
    kind: Literal["container", "directory", "veth"]
    reason: str
    status: str | None = Field(default=None, description="runc status of a container")
    pid: int | None = None
    veths: list[str] = Field(default_factory=list)
    cgroups: list[str] = Field(default_factory=list)
    directory: str | None = None
    found_at: float
