"""JSON-facing field types shared by the parts' API models.

JSON has one number type: ``5.0`` is an integer to JSON Schema, and pydantic's strict mode would
refuse it, so integer fields the API takes are :data:`JsonInt`.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BeforeValidator

__all__ = ["JsonInt", "integral"]


def integral(value: object) -> object:
    """A JSON number without a fractional part as the integer it is (``2147483646.0``),
    anything else as it came (for the strict check after it to judge)."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


JsonInt = Annotated[int, BeforeValidator(integral)]
