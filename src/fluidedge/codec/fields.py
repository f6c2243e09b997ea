"""Declarative header layouts: one table per fixed-size header, each field citing its spec.

A :class:`Layout` is the single source of truth for a header's wire format: its ``struct``
format is derived from the field table, it unpacks with a precise :class:`TruncatedError`, and it
renders itself as documentation (``fluidedge decode --layouts``). Variable parts (options,
extension chains, IEs) are decoded by hand next to the layout that introduces them.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass, field

from fluidedge.codec.errors import TruncatedError


@dataclass(frozen=True, slots=True)
class Field:
    """One fixed-size field: ``fmt`` is a ``struct`` code (network byte order is implied)."""

    name: str
    fmt: str
    spec: str
    doc: str = ""


@dataclass(frozen=True)
class Layout:
    """A fixed-size header described by its fields."""

    name: str
    spec: str
    fields: tuple[Field, ...]
    struct: struct.Struct = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        fmt = "!" + "".join(f.fmt for f in self.fields)
        object.__setattr__(self, "struct", struct.Struct(fmt))

    @property
    def size(self) -> int:
        return self.struct.size

    def unpack(self, buf: bytes | bytearray | memoryview, offset: int = 0) -> tuple[int, ...]:
        """Unpack the header at ``offset`` or raise :class:`TruncatedError` naming it."""
        if len(buf) - offset < self.struct.size:
            raise TruncatedError(
                self.name,
                offset,
                f"need {self.struct.size} bytes, have {max(len(buf) - offset, 0)}",
            )
        return self.struct.unpack_from(buf, offset)

    def pack(self, *values: int | bytes) -> bytes:
        return self.struct.pack(*values)

    def describe(self) -> Iterator[str]:
        """Human-readable rows: offset, size, name, spec reference."""
        offset = 0
        for f in self.fields:
            size = struct.calcsize("!" + f.fmt)
            yield f"{self.name:<20} +{offset:<3} {size:>2}B  {f.name:<24} {f.spec}  {f.doc}"
            offset += size
