"""The CAT part's API models: classes of service, layouts, presets, assignments.

A mask is given per cache id (``{"0": "ff0", "1": "ff0"}``) or once for every cache id
(``"ff0"``); MBA percentages the same way. Names end up as resctrl directory names, so they are
checked at the boundary; ``default`` names the root group (every task and CPU no class claims).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema, field_validator

from fluidedge.cat.errors import CatInputError, CatUnprocessable
from fluidedge.cat.layout import DEFAULT_GROUP, MODELS
from fluidedge.core.cpus import CPU_LIST_PATTERN, CpuListError, parse_cpu_list
from fluidedge.core.jsontypes import JsonInt, unreserved
from fluidedge.instances.models import NAME_PATTERN

# resctrl's own directory names (and their spellings a class name could take): never a class.
RESERVED = ("info", "mon-data", "mon-groups")
# A capacity bitmask: hex digits, no 0x (the kernel's cbm_validate); whether the host's cache
# takes it (cbm_mask, min_cbm_bits, contiguity) is a 422 (layout.parse_cbm).
MASK_PATTERN = r"^[0-9a-fA-F]+$"
DOMAIN_PATTERN = r"^[0-9]+$"
# The seed's models (layout.MODELS), as the path parameter's enum.
CosModel = Literal["11-1", "4-4-4", "3-3-3-3", "7-4-1", "6-4-2"]
# Every role of every model; which ones a given model has is a 422 (the path names the model).
ROLES = tuple(sorted({role for spec in MODELS.values() for role, _ in spec}))
REST_ROLE = "rest"


CosName = Annotated[
    str,
    Field(
        pattern=NAME_PATTERN,
        description="class name (lower-case, <= 32 chars); 'default' is the root group",
        json_schema_extra={"not": {"enum": list(RESERVED)}},
    ),
    unreserved(RESERVED, "{value!r} is reserved by resctrl"),
]
InstanceName = Annotated[str, Field(pattern=NAME_PATTERN, description="a running instance")]
CpuList = Annotated[
    str,
    Field(
        pattern=CPU_LIST_PATTERN,
        max_length=4096,
        description="CPU list, e.g. '0-3,6' ('' claims none)",
    ),
]
Mask = Annotated[str, Field(pattern=MASK_PATTERN, max_length=64, description="hex CBM, no 0x")]
Percent = Annotated[
    JsonInt,
    Field(ge=0),
    WithJsonSchema({"type": "integer", "minimum": 0}),
]


def _per_domain(value: dict[str, Any]) -> dict[str, Any]:
    """One value per cache id (digits): the dict's schema says so with ``propertyNames``."""
    return {"type": "object", "propertyNames": {"pattern": DOMAIN_PATTERN}, **value}


DomainId = Annotated[str, Field(pattern=DOMAIN_PATTERN)]
MaskMap = Annotated[
    dict[DomainId, Mask],
    WithJsonSchema(
        _per_domain(
            {"additionalProperties": {"type": "string", "pattern": MASK_PATTERN, "maxLength": 64}}
        )
    ),
]
PercentMap = Annotated[
    dict[DomainId, Percent],
    WithJsonSchema(_per_domain({"additionalProperties": {"type": "integer", "minimum": 0}})),
]


class _Strict(BaseModel):
    # strict: a JSON 0 is not false, "50" is not 50 (JsonInt still takes 50.0, JSON's integer).
    model_config = ConfigDict(extra="forbid", strict=True)


def parse_cpus(value: str, what: str = "cpus") -> tuple[int, ...]:
    """The CPUs of ``value`` (a :data:`CPU_LIST_PATTERN` list, the empty one a class that
    claims no CPU), sorted and unique. What the pattern cannot say (a range written
    backwards, a CPU beyond any host's) is a :class:`CatUnprocessable`."""
    try:
        return parse_cpu_list(value)
    except CpuListError as exc:
        kind = CatUnprocessable if exc.unprocessable else CatInputError
        raise kind(f"{what}: {exc}") from None


class CosSpec(_Strict):
    """One class of service (a resctrl control group)."""

    name: CosName
    l3: Mask | MaskMap | None = Field(default=None, description="L3 CBM (hex), all or per cache id")
    l2: Mask | MaskMap | None = Field(default=None, description="L2 CBM (hex)")
    mb: Percent | PercentMap | None = Field(
        default=None, description="MBA percentage (the host says its range), all or per domain"
    )
    cpus: CpuList | None = Field(
        default=None,
        description="CPU-based assignment: these CPUs' default-group tasks use this class "
        "(and instances naming the class are pinned inside them)",
    )
    exclusive: bool = Field(default=False, description="resctrl mode 'exclusive': no overlap")


class LayoutRequest(_Strict):
    """Several classes applied all-or-none."""

    classes: list[CosSpec] = Field(min_length=1, max_length=64)
    replace: bool = Field(
        default=False, description="also delete the classes declared before and not named here"
    )


class PresetRequest(_Strict):
    """One of the seed's CoS models laid on this host's cache.

    The role names every model may have are in the schema (``propertyNames``); a role the
    chosen model has not (``target2`` of 4-4-4) is a 422, the path naming the model. ``rest``
    is the default group: it may only be named ``default`` and has no CPU list of its own
    (its CPUs are those no class claims)."""

    resource: Literal["L3", "L2"] = "L3"
    names: dict[str, CosName] = Field(
        default_factory=dict,
        description="class name per role (noisy, target, target2; 'rest' is the default group)",
        json_schema_extra={
            "propertyNames": {"enum": list(ROLES)},
            "properties": {REST_ROLE: {"const": DEFAULT_GROUP}},
        },
    )
    cpus: dict[str, CpuList] = Field(
        default_factory=dict,
        description="CPU list per role (not 'rest': the default group has the CPUs no class "
        "claims)",
        json_schema_extra={"propertyNames": {"enum": [r for r in ROLES if r != REST_ROLE]}},
    )
    replace: bool = Field(
        default=False, description="also delete the classes declared before and not in the model"
    )

    @field_validator("names")
    @classmethod
    def _names(cls, value: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(value) - set(ROLES))
        if unknown:
            raise ValueError(f"no model has the role(s) {', '.join(unknown)}")
        if value.get(REST_ROLE, DEFAULT_GROUP) != DEFAULT_GROUP:
            raise ValueError("the 'rest' role is the default group (everything else)")
        return value

    @field_validator("cpus")
    @classmethod
    def _cpus(cls, value: dict[str, str]) -> dict[str, str]:
        if REST_ROLE in value:
            raise ValueError("the 'rest' role is the default group: its CPUs are no class's")
        unknown = sorted(set(value) - set(ROLES))
        if unknown:
            raise ValueError(f"no model has the role(s) {', '.join(unknown)}")
        return value


class AssignRequest(_Strict):
    instance: InstanceName


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
