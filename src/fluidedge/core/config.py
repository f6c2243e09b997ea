"""Daemon configuration, read from TOML.

Secure by default: the API binds to loopback, and mutating calls need a bearer token. The token
comes from ``api.token`` or, when absent, from ``api.token_file`` (default ``state_dir/token``,
created with a random token and mode 0600 on first start). Reads are open on loopback unless
``api.open_reads = false``. The API is also served on a Unix socket (``state_dir/api.sock``,
mode 0600) so that a CLI reaches a daemon running inside a network namespace. Listening off
loopback means HTTPS (``api.tls_cert``/``api.tls_key``) unless ``api.allow_plain_http = true``.

Each product part has its own table (``[tof]``, ``[instances]``, ...), validated by that part; the
daemon only hands the raw table over.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from fluidedge.core.errors import ConfigError
from fluidedge.core.guiconfig import GuiConfig

DEFAULT_STATE_DIR = Path("/var/lib/fluidedge")
DEFAULT_PORT = 8181
DEFAULT_SOCKET_NAME = "api.sock"
TOKEN_FILE_NAME = "token"  # noqa: S105 (a file name)
DEFAULT_MAX_BODY_BYTES = 1 << 20


class ApiConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    listen: str = "127.0.0.1"
    port: int = Field(default=DEFAULT_PORT, ge=1, le=65535)
    token: str | None = Field(default=None, min_length=16)
    token_file: Path | None = Field(default=None, description="default: state_dir/token")
    open_reads: bool = True
    socket: str = Field(
        default=DEFAULT_SOCKET_NAME,
        description="Unix socket serving the API too (relative to state_dir; '' = none)",
    )
    max_body_bytes: int = Field(default=DEFAULT_MAX_BODY_BYTES, ge=1024, le=1 << 30)
    tls_cert: Path | None = None
    tls_key: Path | None = None
    allow_plain_http: bool = Field(
        default=False, description="serve plain HTTP off loopback (only behind a TLS proxy)"
    )
    audit_log: str = Field(default="audit.log", description="relative to state_dir")
    audit_max_bytes: int = Field(default=10 << 20, ge=4096)
    audit_backups: int = Field(default=5, ge=1, le=100)

    @field_validator("listen")
    @classmethod
    def _listen_is_ip(cls, value: str) -> str:
        ipaddress.ip_address(value)
        return value

    @property
    def loopback(self) -> bool:
        return ipaddress.ip_address(self.listen).is_loopback

    @property
    def tls(self) -> bool:
        return self.tls_cert is not None

    @model_validator(mode="after")
    def _tls_off_loopback(self) -> ApiConfig:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("api.tls_cert and api.tls_key go together")
        if not self.loopback and not self.tls and not self.allow_plain_http:
            raise ValueError(
                f"api.listen = {self.listen} is not loopback: set api.tls_cert and api.tls_key "
                "(HTTPS), or api.allow_plain_http = true to serve plain HTTP on purpose"
            )
        return self


class DaemonConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    state_dir: Path = DEFAULT_STATE_DIR
    store: Path | None = None
    # "full": a 2xx means the change is on disk (fsync per commit); "normal": survives a
    # daemon crash but not power loss (docs/daemon.md, Durability).
    store_synchronous: Literal["full", "normal"] = "full"
    api: ApiConfig = Field(default_factory=ApiConfig)
    gui: GuiConfig = Field(default_factory=GuiConfig)
    # The [admission] table (fluidedge.tenants.config.AdmissionConfig), validated by the tenant
    # service when the daemon builds its context: core sits below the tenants package.
    admission: dict[str, Any] = Field(default_factory=dict)
    parts: dict[str, dict[str, Any]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _paths_under_state_dir(self) -> DaemonConfig:
        if self.api.token_file is None:
            self.api = self.api.model_copy(update={"token_file": self.state_dir / TOKEN_FILE_NAME})
        return self

    @property
    def store_path(self) -> Path:
        return self.store if self.store is not None else self.state_dir / "fluidedge.sqlite"

    @property
    def socket_path(self) -> Path | None:
        """The API's Unix socket (``None`` when disabled)."""
        return self.state_dir / self.api.socket if self.api.socket else None

    @property
    def audit_path(self) -> Path | None:
        return self.state_dir / self.api.audit_log if self.api.audit_log else None


_CORE_KEYS = {"state_dir", "store", "store_synchronous", "api", "gui", "admission"}


def parse_config(data: dict[str, Any]) -> DaemonConfig:
    """Validate a parsed TOML document; unknown top-level tables become part sections."""
    core = {k: v for k, v in data.items() if k in _CORE_KEYS}
    parts = {k: v for k, v in data.items() if k not in _CORE_KEYS}
    for name, section in parts.items():
        if not isinstance(section, dict):
            raise ConfigError(f"config: [{name}] must be a table")
    try:
        return DaemonConfig(**core, parts=parts)
    except ValidationError as exc:
        raise ConfigError(f"config: {exc}") from exc


def load_config(path: Path | None) -> DaemonConfig:
    """Load the daemon configuration from ``path`` (defaults when ``None``)."""
    if path is None:
        return parse_config({})
    try:
        data = tomllib.loads(path.read_text())
    except OSError as exc:
        raise ConfigError(f"config: cannot read {path}: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config: {path}: {exc}") from exc
    return parse_config(data)


def resolve_token(api: ApiConfig) -> str:
    """Return the API token, creating ``api.token_file`` with a fresh one if needed."""
    if api.token is not None:
        return api.token
    path = api.token_file if api.token_file is not None else DEFAULT_STATE_DIR / TOKEN_FILE_NAME
    if path.exists():
        token = path.read_text().strip()
        if len(token) < 16:
            raise ConfigError(f"config: token file {path} holds a token shorter than 16 chars")
        return token
    token = secrets.token_urlsafe(32)
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(token + "\n")
    except OSError as exc:
        raise ConfigError(
            f"config: cannot create the token file {path}: {exc.strerror} "
            "(set api.token, or make the directory writable)"
        ) from exc
    return token
