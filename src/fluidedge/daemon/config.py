"""Daemon configuration, read from TOML.

Secure by default: the API binds to loopback, and mutating calls need a bearer token. The token
comes from ``api.token`` or, when absent, from ``api.token_file`` (created with a random token and
mode 0600 on first start). Reads are open on loopback unless ``api.open_reads = false``.

Each product part has its own table (``[tof]``, ``[instances]``, ...), validated by that part; the
daemon only hands the raw table over.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from fluidedge.daemon.errors import ConfigError
from fluidedge.gui.config import GuiConfig

DEFAULT_STATE_DIR = Path("/var/lib/fluidedge")
DEFAULT_PORT = 8181


class ApiConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    listen: str = "127.0.0.1"
    port: int = Field(default=DEFAULT_PORT, ge=1, le=65535)
    token: str | None = Field(default=None, min_length=16)
    token_file: Path = DEFAULT_STATE_DIR / "token"
    open_reads: bool = True

    @field_validator("listen")
    @classmethod
    def _listen_is_ip(cls, value: str) -> str:
        ipaddress.ip_address(value)
        return value


class DaemonConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    state_dir: Path = DEFAULT_STATE_DIR
    store: Path | None = None
    api: ApiConfig = ApiConfig()
    gui: GuiConfig = GuiConfig()
    parts: dict[str, dict[str, Any]] = Field(default_factory=dict)

    @property
    def store_path(self) -> Path:
        return self.store if self.store is not None else self.state_dir / "fluidedge.sqlite"


_CORE_KEYS = {"state_dir", "store", "api", "gui"}


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
    path = api.token_file
    if path.exists():
        token = path.read_text().strip()
        if len(token) < 16:
            raise ConfigError(f"config: token file {path} holds a token shorter than 16 chars")
        return token
    path.parent.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(token + "\n")
    return token
