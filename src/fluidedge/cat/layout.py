"""Pure CAT policy: host capabilities, kernel-like validation, the seed's CoS models.

Everything here is a function of values read from resctrl's ``info/`` directory (the kernel's
``Documentation/arch/x86/resctrl.rst``), so it is tested without RDT hardware:

- ``info/<L3|L2>/{cbm_mask,min_cbm_bits,num_closids,shareable_bits,sparse_masks}``: a capacity
  bitmask (CBM) must be a hex value inside ``cbm_mask``, with at least ``min_cbm_bits`` bits
  set, and contiguous unless ``sparse_masks`` is 1. The messages are the kernel's own
  (``arch/x86/kernel/cpu/resctrl/ctrlmondata.c``: ``cbm_validate``), so a mask we refuse and a
  mask the kernel refuses read the same.
- ``info/MB/{min_bandwidth,bandwidth_gran}``: a percentage in ``[min_bandwidth, 100]``, which
  the kernel rounds *up* to a multiple of ``bandwidth_gran``; we round the same way and say so.
- ``num_closids``: the number of classes including the default (root) group, so a host with 4
  CLOSIDs takes 3 groups besides the root. With several resources the smallest count applies.
- ``shareable_bits``: ways that other agents (I/O, GPU) may also fill. A *shareable* class may
  use them (a note says so); an *exclusive* class may not, nor overlap any other class (the
  kernel answers "Overlaps with other group" / "Schemata overlaps").

The seed's models (§7.4 Table 5, §7.8 Table 8) are defined on 12 ways. :func:`preset` lays them
on the host's actual way count with the rounding stated in :data:`ROUNDING`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from fluidedge.cat.errors import CatConflict, CatInputError, CatUnprocessable
from fluidedge.core.fields import decimal

CACHE_RESOURCES = ("L3", "L2")
DEFAULT_GROUP = "default"  # the root group: every task and CPU no class claims


@dataclass(frozen=True)
class CacheInfo:
    """``info/L3`` or ``info/L2`` plus the cache ids seen in the root ``schemata``."""

    resource: str
    cbm_mask: int
    min_cbm_bits: int
    num_closids: int
    shareable_bits: int
    domains: tuple[int, ...]
    sparse_masks: bool = False

    @property
    def ways(self) -> int:
        return self.cbm_mask.bit_count()

    @property
    def low_bit(self) -> int:
        return (self.cbm_mask & -self.cbm_mask).bit_length() - 1


@dataclass(frozen=True)
class MbaInfo:
    """``info/MB``: memory bandwidth allocation, percentages per memory domain."""

    min_bandwidth: int
    bandwidth_gran: int
    num_closids: int
    domains: tuple[int, ...]
    max_bandwidth: int = 100


@dataclass(frozen=True)
class MonInfo:
    """``info/L3_MON``: cache monitoring (CMT) and memory bandwidth monitoring (MBM)."""

    features: tuple[str, ...]
    num_rmids: int


@dataclass(frozen=True)
class HostInfo:
    caches: Mapping[str, CacheInfo]
    mba: MbaInfo | None = None
    mon: MonInfo | None = None

    @property
    def num_closids(self) -> int:
        counts = [c.num_closids for c in self.caches.values()]
        if self.mba is not None:
            counts.append(self.mba.num_closids)
        return min(counts) if counts else 1

    def describe(self) -> dict[str, object]:
        out: dict[str, object] = {"num_closids": self.num_closids}
        for name, cache in self.caches.items():
            out[name] = {
                "cbm_mask": f"{cache.cbm_mask:x}",
                "ways": cache.ways,
                "min_cbm_bits": cache.min_cbm_bits,
                "num_closids": cache.num_closids,
                "shareable_bits": f"{cache.shareable_bits:x}",
                "sparse_masks": cache.sparse_masks,
                "cache_ids": list(cache.domains),
            }
        if self.mba is not None:
            out["MB"] = {
                "min_bandwidth": self.mba.min_bandwidth,
                "bandwidth_gran": self.mba.bandwidth_gran,
                "num_closids": self.mba.num_closids,
                "domains": list(self.mba.domains),
            }
        if self.mon is not None:
            out["L3_MON"] = {"features": list(self.mon.features), "num_rmids": self.mon.num_rmids}
        return out


# ---------------------------------------------------------------------------- masks


def parse_cbm(text: str, cache: CacheInfo) -> int:
    """A CBM as the kernel's ``cbm_validate`` accepts it, else an error with the kernel's
    message: :class:`CatInputError` (400) for text that is no hex number (the API's schema
    refuses it already), :class:`CatUnprocessable` (422) for a number this host's cache cannot
    take (``cbm_mask``, ``min_cbm_bits`` and contiguity are the host's)."""
    raw = text.strip()
    try:
        if not raw or raw.lower().startswith("0x"):
            raise ValueError(raw)
        value = int(raw, 16)
    except ValueError:
        raise CatInputError(f"Non-hex character in the mask {raw}") from None
    if (cache.min_cbm_bits > 0 and value == 0) or value & ~cache.cbm_mask:
        raise CatUnprocessable(
            f"Mask out of range ({cache.resource} mask {value:x}, cbm_mask {cache.cbm_mask:x})"
        )
    if value and not cache.sparse_masks:
        low = value & -value
        if (value + low) & value:  # adding the lowest set bit must clear the whole run
            raise CatUnprocessable(f"The mask {value:x} has non-consecutive 1-bits")
    if value.bit_count() < cache.min_cbm_bits:
        raise CatUnprocessable(f"Need at least {cache.min_cbm_bits} bits in the mask")
    return value


def parse_mb(value: int, mba: MbaInfo) -> int:
    """An MBA percentage, rounded up to ``bandwidth_gran`` as the kernel does; outside the host's
    ``[min_bandwidth, max_bandwidth]`` a :class:`CatUnprocessable` (the range is the host's)."""
    if not mba.min_bandwidth <= value <= mba.max_bandwidth:
        raise CatUnprocessable(
            f"MB value {value} out of range [{mba.min_bandwidth},{mba.max_bandwidth}]"
        )
    return min(mba.max_bandwidth, math.ceil(value / mba.bandwidth_gran) * mba.bandwidth_gran)


# ---------------------------------------------------------------------------- schemata text


def parse_schemata(text: str) -> dict[str, dict[int, str]]:
    """``schemata`` file text -> {resource: {domain id: value text}} (the kernel pads names)."""
    out: dict[str, dict[int, str]] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        name, sep, rest = line.partition(":")
        if not sep:
            raise CatInputError(f"schemata line {line!r}: missing ':'")
        domains: dict[int, str] = {}
        for item in rest.split(";"):
            dom, eq, val = item.strip().partition("=")
            if not eq or not dom.strip().isdigit():
                raise CatInputError(f"schemata line {line!r}: missing '=' or non-numeric domain")
            domains[int(dom)] = val.strip()
        out[name.strip()] = domains
    return out


def schemata_line(resource: str, values: Mapping[int, int], *, hex_values: bool) -> str:
    """One ``schemata`` line for a write: ``L3:0=ff0;1=ff0``."""
    items = [
        f"{dom}={val:x}" if hex_values else f"{dom}={val}" for dom, val in sorted(values.items())
    ]
    return f"{resource}:{';'.join(items)}\n"


# ---------------------------------------------------------------------------- classes and layouts


@dataclass(frozen=True)
class ClassPlan:
    """One class of service, validated against the host: what to write."""

    name: str
    cbm: Mapping[str, Mapping[int, int]]  # resource -> cache id -> mask
    mb: Mapping[int, int] = field(default_factory=dict)  # domain -> percent (after rounding)
    exclusive: bool = False
    cpus: tuple[int, ...] | None = None
    notes: tuple[str, ...] = ()

    def schemata_text(self) -> str:
        lines = [schemata_line(r, masks, hex_values=True) for r, masks in self.cbm.items()]
        if self.mb:
            lines.append(schemata_line("MB", self.mb, hex_values=False))
        return "".join(lines)


MaskSpec = str | Mapping[str, str] | None
MbSpec = int | Mapping[str, int] | None


def _per_domain(
    spec: str | int | Mapping[str, str] | Mapping[str, int], domains: Sequence[int], what: str
) -> dict[int, str | int]:
    if isinstance(spec, str | int):
        return dict.fromkeys(domains, spec)
    out: dict[int, str | int] = {}
    for key, value in spec.items():
        known = ", ".join(str(d) for d in domains)
        domain = decimal(str(key))
        if domain is None:  # the API's schema says ASCII digits
            raise CatInputError(f"{what}: cache/domain id {key!r} is not a number")
        if domain not in domains:  # a number, but not one of this host's
            raise CatUnprocessable(f"{what}: unknown cache/domain id {key!r} (host has {known})")
        out[domain] = value
    return out


def plan_class(
    host: HostInfo,
    name: str,
    *,
    l3: MaskSpec = None,
    l2: MaskSpec = None,
    mb: MbSpec = None,
    exclusive: bool = False,
    cpus: Sequence[int] | None = None,
) -> ClassPlan:
    """Validate one class's masks against ``host`` (with the kernel's reason: what only this
    host refuses, or what needs two fields to see, is a :class:`CatUnprocessable`, 422)."""
    cbm: dict[str, dict[int, int]] = {}
    notes: list[str] = []
    for resource, spec in (("L3", l3), ("L2", l2)):
        if spec is None:
            continue
        cache = host.caches.get(resource)
        if cache is None:
            raise CatUnprocessable(
                f"{name}: {resource}: Unknown or unsupported resource name '{resource}' "
                f"(host has: {', '.join(host.caches) or 'no cache allocation'})"
            )
        masks = {}
        for dom, text in _per_domain(spec, cache.domains, f"{name}.{resource.lower()}").items():
            try:
                masks[dom] = parse_cbm(str(text), cache)
            except CatInputError as exc:  # the same kind, named after the class and cache id
                raise type(exc)(f"{name}: {resource} cache id {dom}: {exc}") from None
            shared = masks[dom] & cache.shareable_bits
            if shared and exclusive:
                raise CatUnprocessable(
                    f"{name}: {resource} cache id {dom}: an exclusive class may not use "
                    f"shareable_bits {cache.shareable_bits:x} (mask {masks[dom]:x})"
                )
            if shared:
                notes.append(
                    f"{resource}:{dom} mask {masks[dom]:x} shares ways {shared:x} with other "
                    "agents (shareable_bits)"
                )
        cbm[resource] = masks
    percents: dict[int, int] = {}
    if mb is not None:
        if host.mba is None:
            raise CatUnprocessable(f"{name}: MB: the host has no memory bandwidth allocation")
        for dom, value in _per_domain(mb, host.mba.domains, f"{name}.mb").items():
            if isinstance(value, bool) or not isinstance(value, int):
                raise CatInputError(f"{name}: MB domain {dom}: want an integer percentage")
            percents[dom] = parse_mb(value, host.mba)
            if percents[dom] != value:
                notes.append(
                    f"MB:{dom} {value}% rounded up to {percents[dom]}% "
                    f"(bandwidth_gran {host.mba.bandwidth_gran})"
                )
    if not cbm and not percents and cpus is None:
        raise CatUnprocessable(f"{name}: a class needs at least one of l3, l2, mb or cpus")
    return ClassPlan(
        name=name,
        cbm=cbm,
        mb=percents,
        exclusive=exclusive,
        cpus=tuple(sorted(set(cpus))) if cpus is not None else None,
        notes=tuple(notes),
    )


def check_layout(
    host: HostInfo, plans: Sequence[ClassPlan], others: Sequence[ClassPlan] = ()
) -> None:
    """Cross-class rules of a whole layout, before anything is written.

    ``plans`` are the classes being applied, ``others`` the groups that stay as they are. 422
    (:class:`CatUnprocessable`) for a layout inconsistent in itself, 409 when it clashes with
    what exists.
    """
    names = [p.name for p in plans]
    if len(names) != len(set(names)):
        raise CatUnprocessable("layout: class names must be unique")
    groups = {p.name for p in plans if p.name != DEFAULT_GROUP} | {
        o.name for o in others if o.name != DEFAULT_GROUP
    }
    if len(groups) + 1 > host.num_closids:
        raise CatConflict(
            f"out of CLOSIDs: the layout needs {len(groups) + 1} (with the default group), "
            f"the host has num_closids={host.num_closids}"
        )
    cpu_owner: dict[int, str] = {}
    for plan in plans:
        for cpu in plan.cpus or ():
            if cpu in cpu_owner:
                raise CatUnprocessable(
                    f"layout: CPU {cpu} is in both {cpu_owner[cpu]} and {plan.name}"
                )
            cpu_owner[cpu] = plan.name
    everyone = list(plans) + [o for o in others if o.name not in names]
    for plan in everyone:
        for other in everyone:
            if other.name == plan.name or not (plan.exclusive or other.exclusive):
                continue
            for resource, masks in plan.cbm.items():
                for dom, mask in masks.items():
                    theirs = other.cbm.get(resource, {}).get(dom, 0)
                    if mask & theirs:
                        kind = CatUnprocessable if other in plans and plan in plans else CatConflict
                        raise kind(
                            f"{plan.name}: {resource}:{dom} mask {mask:x} overlaps "
                            f"{other.name}'s {theirs:x} and one of them is exclusive "
                            "(kernel: Overlaps with exclusive group)"
                        )


# ---------------------------------------------------------------------------- the seed's models

SEED_WAYS = 12
# Each model, from the highest ways to the lowest, as in the seed's tables (§7.4 Table 5,
# §7.8 Table 8). "rest" is "Everything Else": the default group here.
MODELS: dict[str, tuple[tuple[str, int], ...]] = {
    "11-1": (("noisy", 11), ("rest", 1)),
    "4-4-4": (("noisy", 4), ("target", 4), ("rest", 4)),
    "3-3-3-3": (("noisy", 3), ("target", 3), ("target2", 3), ("rest", 3)),
    "7-4-1": (("noisy", 7), ("rest", 4), ("target", 1)),
    "6-4-2": (("noisy", 6), ("rest", 4), ("target", 2)),
}
ROUNDING = (
    "ways scale as n*w/12 for a host with n ways; each class gets the floor, the ways left go "
    "one each to the largest remainders (ties: the class listed first in the model); a class "
    "below min_cbm_bits is raised to it, taking ways from the largest class"
)


def scale_ways(shares: Sequence[int], ways: int, min_bits: int) -> list[int]:
    """Lay ``shares`` (out of :data:`SEED_WAYS`... or any total) on ``ways`` ways (see
    :data:`ROUNDING`)."""
    total = sum(shares)
    floor_min = max(1, min_bits)
    if ways < floor_min * len(shares):
        raise CatConflict(
            f"the host's {ways} ways cannot hold {len(shares)} classes of at least "
            f"{floor_min} way(s) each"
        )
    exact = [ways * s / total for s in shares]
    out = [math.floor(x) for x in exact]
    left = ways - sum(out)
    order = sorted(range(len(shares)), key=lambda i: (-(exact[i] - out[i]), i))
    for i in order[:left]:
        out[i] += 1
    for i in range(len(out)):
        while out[i] < floor_min:
            donor = max(range(len(out)), key=lambda j: (out[j], -j))
            out[donor] -= 1
            out[i] += 1
    return out


@dataclass(frozen=True)
class PresetClass:
    role: str
    ways: int
    mask: int


def preset(model: str, cache: CacheInfo) -> list[PresetClass]:
    """The seed's ``model`` laid on ``cache``'s ``cbm_mask``: contiguous, highest ways first."""
    spec = MODELS.get(model)
    if spec is None:
        raise CatInputError(f"unknown CoS model {model!r} (known: {', '.join(MODELS)})")
    ways = scale_ways([w for _, w in spec], cache.ways, cache.min_cbm_bits)
    out = []
    top = cache.low_bit + cache.ways
    for (role, _), count in zip(spec, ways, strict=True):
        mask = ((1 << count) - 1) << (top - count)
        out.append(PresetClass(role, count, mask))
        top -= count
    return out
