"""The ``[admission]`` table: default tenant quota and the host's own limits.

Host limits hold for every instance, the admin's included: today one request could ask for
65,536 pids (above a 32,768 ``pid_max``) and two of them were admitted. ``pid_max`` is read
from the kernel, at most once a second (:func:`fluidedge.tenants.admission.pid_max`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from fluidedge.core.errors import ConfigError
from fluidedge.tenants.models import Quota


class AdmissionConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    default_quota: Quota = Field(default_factory=Quota, description="a new tenant's quota")
    max_pids_per_instance: int = Field(
        default=4096, ge=2, le=1 << 16, description="bound of one instance's pids limit"
    )
    pids_reserved_fraction: float = Field(
        default=0.25,
        ge=0.0,
        lt=1.0,
        description="share of pid_max kept for the host: instances' pids limits sum to at "
        "most pid_max * (1 - this) * pids_overcommit",
    )
    pids_overcommit: float = Field(
        default=1.0,
        ge=1.0,
        le=100.0,
        description="1.0: the pids limits can never exhaust pid_max together; more admits "
        "more (a limit is a cap, most instances use a few pids)",
    )
    default_cpu_limit: float = Field(
        default=1.0,
        ge=0,
        le=64,
        description="CPU cap (CFS quota, in CPUs) of an instance that names none; at least "
        "its CPU request. 0: uncapped (a tenant's instance is capped at its request then)",
    )


def admission_config(table: AdmissionConfig | Mapping[str, Any] | None) -> AdmissionConfig:
    """The ``[admission]`` table validated (the daemon config holds it raw: core sits below
    this package); an invalid table is a :class:`ConfigError` naming the field."""
    if table is None:
        return AdmissionConfig()
    if isinstance(table, AdmissionConfig):
        return table
    try:
        return AdmissionConfig.model_validate(dict(table))
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise ConfigError(f"[admission] {where}: {first['msg']}") from exc
