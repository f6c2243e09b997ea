"""The CAT part's API models: classes of service, layouts, presets, assignments.

A mask is given per cache id (``{"0": "ff0", "1": "ff0"}``) or once for every cache id
(``"ff0"``); MBA percentages the same way. Names end up as resctrl directory names, so they are
checked at the boundary; ``default`` names the root group (every task and CPU no class claims).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from fluidedge.instances.models import NAME_PATTERN
from fluidedge.instances.placement import parse_cpuset

CosName = Annotated[
    str,
    Field(
        pattern=NAME_PATTERN,
        description="class name (lower-case, <= 32 chars); 'default' is the root group",
    ),
]
_RESERVED = {"info", "mon-groups", "mon-data"}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def check_cpus(value: str | None) -> str | None:
    if value is None:
        return None
    if not value.strip():
        return ""
    try:
        cpus = parse_cpuset(value)
    except ValueError:
        raise ValueError(f"invalid CPU list {value!r} (want e.g. '0-3,6')") from None
    if any(cpu < 0 or cpu > 4095 for cpu in cpus):
        raise ValueError(f"CPU list {value!r} out of range")
    return value.strip()


class CosSpec(_Strict):
    """One class of service (a resctrl control group)."""

    name: CosName
    l3: str | dict[str, str] | None = Field(
        default=None, description="L3 CBM (hex), all or per cache id"
    )
    l2: str | dict[str, str] | None = Field(default=None, description="L2 CBM (hex)")
    mb: int | dict[str, int] | None = Field(default=None, description="MBA percentage")
    cpus: str | None = Field(
        default=None,
        description="CPU-based assignment: these CPUs' default-group tasks use this class "
        "(and instances naming the class are pinned inside them)",
    )
    exclusive: bool = Field(default=False, description="resctrl mode 'exclusive': no overlap")

    @field_validator("name")
    @classmethod
    def _not_reserved(cls, value: str) -> str:
        if value in _RESERVED:
            raise ValueError(f"{value!r} is reserved by resctrl")
        return value

    @field_validator("cpus")
    @classmethod
    def _cpus(cls, value: str | None) -> str | None:
        return check_cpus(value)


class LayoutRequest(_Strict):
    """Several classes applied all-or-none."""

    classes: list[CosSpec] = Field(min_length=1, max_length=64)
    replace: bool = Field(
        default=False, description="also delete the classes declared before and not named here"
    )


class PresetRequest(_Strict):
    """One of the seed's CoS models laid on this host's cache."""

    resource: Literal["L3", "L2"] = "L3"
    names: dict[str, CosName] = Field(
        default_factory=dict,
        description="class name per role (noisy, target, target2; 'rest' is the default group)",
    )
    cpus: dict[str, str] = Field(default_factory=dict, description="CPU list per role")

    @field_validator("cpus")
    @classmethod
    def _cpus(cls, value: dict[str, str]) -> dict[str, str]:
        for cpus in value.values():
            check_cpus(cpus)
        return value


class AssignRequest(_Strict):
    instance: CosName


class ClassView(BaseModel):
    name: str
    declared: CosSpec | None
    schemata: dict[str, dict[str, str]]
    mode: str
    cpus: str
    tasks: int
    instances: list[str]
    monitoring: dict[str, dict[str, int | str]]
    notes: list[str] = Field(default_factory=list)


class InstanceCos(BaseModel):
    instance: str
    cos: str
    tasks: int
    in_class: int
    monitoring: dict[str, dict[str, int | str]]


class Status(BaseModel):
    supported: bool
    reason: str
    checks: list[str]
    mount: str
    host: dict[str, Any] | None = None
    mode: str = Field(
        default="tasks",
        description="how instances join a class: their cgroup's tasks, kept in sync",
    )
    last_error: str | None = None


class LayoutView(BaseModel):
    model: str | None = None
    rounding: str | None = None
    classes: list[ClassView]
    ways: dict[str, int] = Field(default_factory=dict)
