"""The ``[cluster]`` config table: this node's name and URL, etcd, the node-to-node token."""

from __future__ import annotations

import re
import ssl
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

NODE_NAME = r"^[a-z][a-z0-9-]{0,31}$"
_URL = r"^https?://[A-Za-z0-9.\-\[\]:]+:[0-9]{1,5}$"


class ClusterConfig(BaseModel):
    """This node's part in the cluster (docs/multi-host.md)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    etcd: str = Field(
        description="etcd client URLs, comma-separated (http://ip:port, or https:// for TLS)"
    )
    node: str = Field(pattern=NODE_NAME, description="this node's name (unique in the site)")
    url: str = Field(description="this node's API as the other nodes reach it (scheme://ip:port)")
    token: str | None = Field(
        default=None,
        min_length=16,
        description="bearer token the nodes' APIs accept (the site's shared API token)",
    )
    token_file: Path | None = Field(default=None, description="the token, from a file")
    prefix: str = Field(default="/fluidedge", pattern=r"^(/[A-Za-z0-9_.-]+)+$")
    heartbeat: float = Field(default=1.0, gt=0, le=60, description="seconds between beats")
    ttl: int = Field(default=5, ge=2, le=300, description="lease: a node silent this long is dead")
    placement: Literal["spread", "pack"] = Field(
        default="spread", description="default node choice: least committed, or fullest that fits"
    )
    forward_timeout: float = Field(default=120.0, gt=0, le=3600)
    ca_file: Path | None = Field(
        default=None,
        description="CA bundle (PEM) the node-to-node HTTPS client trusts (the nodes' "
        "api.tls_cert, or the site CA that signed them); default: the system's CAs",
    )

    etcd_ca_file: Path | None = Field(
        default=None,
        description="CA bundle (PEM) that signed etcd's server certificates (https:// "
        "endpoints); default: the system's CAs",
    )
    etcd_cert_file: Path | None = Field(
        default=None, description="this node's client certificate for etcd (PEM)"
    )
    etcd_key_file: Path | None = Field(default=None, description="its private key (PEM)")

    @field_validator("etcd")
    @classmethod
    def _endpoints(cls, value: str) -> str:
        schemes = set()
        for part in value.split(","):
            if not re.fullmatch(_URL, part):
                raise ValueError(f"invalid etcd URL {part!r} (http(s)://ip:port)")
            schemes.add(part.split(":", 1)[0])
        if len(schemes) > 1:
            raise ValueError("etcd endpoints mix http:// and https://")
        return value

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not re.fullmatch(_URL, value):
            raise ValueError(f"invalid node URL {value!r} (scheme://ip:port, no path)")
        return value

    @model_validator(mode="after")
    def _ttl_over_heartbeat(self) -> ClusterConfig:
        if self.ttl < 2 * self.heartbeat:
            raise ValueError("cluster.ttl must be at least twice cluster.heartbeat")
        if (self.token is None) == (self.token_file is None):
            raise ValueError("set one of cluster.token and cluster.token_file")
        if (self.etcd_cert_file is None) != (self.etcd_key_file is None):
            raise ValueError("set both cluster.etcd_cert_file and cluster.etcd_key_file, or none")
        tls = (self.etcd_ca_file, self.etcd_cert_file)
        if any(f is not None for f in tls) and not self.etcd.startswith("https://"):
            raise ValueError("etcd TLS files need https:// etcd endpoints")
        return self

    def etcd_verify(self) -> ssl.SSLContext | bool:
        """What the etcd client verifies the members with, and presents to them: the system's
        CAs (``True``) for plain ``https://``, else a context with ``etcd_ca_file`` and the
        client certificate (etcd's ``--client-cert-auth``)."""
        if self.etcd_ca_file is None and self.etcd_cert_file is None:
            return True
        try:
            context = ssl.create_default_context(
                cafile=str(self.etcd_ca_file) if self.etcd_ca_file is not None else None
            )
            if self.etcd_cert_file is not None and self.etcd_key_file is not None:
                context.load_cert_chain(str(self.etcd_cert_file), str(self.etcd_key_file))
        except (OSError, ssl.SSLError) as exc:
            raise ValueError(f"cluster etcd TLS: {exc}") from exc
        return context

    def verify(self) -> ssl.SSLContext | bool:
        """What the node-to-node client verifies HTTPS peers with (always verified)."""
        if self.ca_file is None:
            return True
        try:
            return ssl.create_default_context(cafile=str(self.ca_file))
        except (OSError, ssl.SSLError) as exc:
            raise ValueError(f"cluster.ca_file {self.ca_file}: {exc}") from exc

    def read_token(self) -> str:
        if self.token is not None or self.token_file is None:
            return self.token or ""
        token = self.token_file.read_text().strip()
        if len(token) < 16:
            raise ValueError(f"{self.token_file}: token shorter than 16 characters")
        return token
