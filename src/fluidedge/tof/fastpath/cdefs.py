"""Read the enums, structs and map sizes of ``fastpath.bpf.c``: one source for the layout.

WHY parse instead of mirror: the program and the agent must agree on every index and byte
offset. :mod:`~fluidedge.tof.fastpath.layout` takes the config/stat/reason indexes from the C
enums here, and the unit tests check each Python ``struct`` format against the C struct's
field offsets computed with C's alignment rules, so an edit on one side that the other does
not follow fails a test instead of corrupting a map. The C file keeps one declaration per
enum/struct and plain field types (its header comment says so); that is all this reads.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from functools import cache

from fluidedge.tof.errors import DataPlaneError
from fluidedge.tof.fastpath import build

# C scalar types the program's structs use: (size, alignment).
C_TYPES: dict[str, tuple[int, int]] = {
    "__u8": (1, 1),
    "__u16": (2, 2),
    "__u32": (4, 4),
    "__u64": (8, 8),
    "__be32": (4, 4),
    "struct bpf_spin_lock": (4, 4),
}


class LayoutError(DataPlaneError):
    """The C source does not have a declaration this module expects."""


@dataclass(frozen=True, slots=True)
class Field:
    name: str
    offset: int
    size: int


def _strip_comments(text: str) -> str:
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    return re.sub(r"//[^\n]*", " ", text)


@cache
def _source() -> str:
    return _strip_comments(build.source().decode())


def enum(name: str, text: str | None = None) -> dict[str, int]:
    """Members of ``enum name { ... };`` with their values (C numbering rules)."""
    src = _source() if text is None else _strip_comments(text)
    m = re.search(rf"enum\s+{name}\s*\{{(.*?)\}}\s*;", src, re.S)
    if m is None:
        raise LayoutError(f"fastpath.bpf.c has no enum {name}")
    out: dict[str, int] = {}
    value = 0
    for item in (i.strip() for i in m.group(1).split(",")):
        if not item:
            continue
        ident, _, expr = (p.strip() for p in item.partition("="))
        if expr:
            value = int(expr, 0)
        out[ident] = value
        value += 1
    return out


def struct_fields(name: str, text: str | None = None) -> tuple[int, list[Field]]:
    """Size and fields (offset, size) of ``struct name { ... };`` laid out as C does."""
    src = _source() if text is None else _strip_comments(text)
    m = re.search(rf"struct\s+{name}\s*\{{(.*?)\}}\s*;", src, re.S)
    if m is None:
        raise LayoutError(f"fastpath.bpf.c has no struct {name}")
    fields: list[Field] = []
    offset = 0
    align_max = 1
    for decl in (d.strip() for d in m.group(1).split(";")):
        if not decl:
            continue
        dm = re.fullmatch(r"((?:struct\s+)?\w+)\s+(.+)", decl)
        if dm is None or dm.group(1) not in C_TYPES:
            raise LayoutError(f"struct {name}: cannot read field {decl!r}")
        size, align = C_TYPES[dm.group(1)]
        for declarator in (d.strip() for d in dm.group(2).split(",")):
            am = re.fullmatch(r"(\w+)(?:\[(\d+)\])?", declarator)
            if am is None:
                raise LayoutError(f"struct {name}: cannot read field {declarator!r}")
            count = int(am.group(2)) if am.group(2) else 1
            offset = (offset + align - 1) // align * align
            fields.append(Field(am.group(1), offset, size * count))
            offset += size * count
            align_max = max(align_max, align)
    total = (offset + align_max - 1) // align_max * align_max
    return total, fields


def map_max_entries(name: str, text: str | None = None) -> int:
    """The compiled-in ``max_entries`` of map ``name`` (the agent may resize it before load)."""
    src = _source() if text is None else _strip_comments(text)
    m = re.search(rf"__uint\(max_entries,\s*(\w+)\);[^}}]*\}}\s*{name}\s+SEC", src)
    if m is None:
        raise LayoutError(f"fastpath.bpf.c has no map {name}")
    return int(m.group(1), 0) if m.group(1)[0].isdigit() else enum_value(m.group(1), src)


def enum_value(ident: str, src: str) -> int:
    for m in re.finditer(r"enum\s+(\w+)\s*\{", src):
        values = enum(m.group(1), src)
        if ident in values:
            return values[ident]
    raise LayoutError(f"fastpath.bpf.c has no enum member {ident}")


def python_fields(fmt: struct.Struct) -> tuple[int, list[Field]]:
    """Size and fields of a ``=``-format Struct, in the same terms as :func:`struct_fields`
    (a run of ``x`` pad bytes is one field, as a C ``pad`` member is)."""
    spec = fmt.format
    if not spec.startswith("="):
        raise LayoutError(f"struct format {spec!r} must use '=' (no implicit alignment)")
    fields: list[Field] = []
    offset = 0
    for count_text, code in re.findall(r"(\d*)([a-zA-Z?])", spec[1:]):
        count = int(count_text) if count_text else 1
        if code in "sx":
            fields.append(Field(code, offset, count))
            offset += count
            continue
        size = struct.calcsize("=" + code)
        for _ in range(count):
            fields.append(Field(code, offset, size))
            offset += size
    return fmt.size, fields
