"""JSON-facing field types shared by the parts' API models.

JSON has one number type: ``5.0`` is an integer to JSON Schema, and pydantic's strict mode would
refuse it, so integer fields the API takes are :data:`JsonInt`.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field, WithJsonSchema

__all__ = ["JsonInt", "bounds", "distinct", "integral", "matching", "unreserved"]


def integral(value: object) -> object:
    """A JSON number without a fractional part as the integer it is (``2147483646.0``),
    anything else as it came (for the strict check after it to judge)."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


JsonInt = Annotated[int, BeforeValidator(integral)]


def bounds(low: int, high: int) -> tuple[Any, Any]:
    """The metadata of a :data:`JsonInt` in ``[low, high]`` (``rule, schema = bounds(0, 255)``,
    then ``Annotated[JsonInt, rule, schema]``), its schema stated explicitly: with the
    before-validator pydantic leaves the bounds out of the schema where the type sits in a
    union (``... | None``), and a schema without them lets a generated ``-1`` through the
    document to a 400."""
    return Field(ge=low, le=high), WithJsonSchema(
        {"type": "integer", "minimum": low, "maximum": high}
    )


def distinct(noun: str) -> AfterValidator:
    """A list's validator refusing a repeated item (``a {noun} appears twice``): the rule its
    schema states as ``uniqueItems``, which pydantic does not check."""

    def check(items: list[Any]) -> list[Any]:
        if len(set(items)) != len(items):
            raise ValueError(f"a {noun} appears twice")
        return items

    return AfterValidator(check)


def unreserved(reserved: Collection[str], message: str) -> AfterValidator:
    """A name's validator refusing the ``reserved`` ones with ``message`` formatted with
    ``value`` (``"{value!r} is reserved: ..."``): ids a collection path beside ``/…/{id}``
    would shadow, names the kernel keeps for itself."""

    def check(value: str) -> str:
        if value in reserved:
            raise ValueError(message.format(value=value))
        return value

    return AfterValidator(check)


def matching(pattern: str, what: str) -> AfterValidator:
    """The check of a string field whose schema states ``pattern`` (next to it, as
    ``json_schema_extra={"pattern": ...}``): Python's ``re``, as schemathesis and the
    documents' readers apply it, with ``what`` as the reason (``is not {what}``) rather than
    a pattern that can run to thousands of characters."""
    compiled = re.compile(pattern)

    def check(value: str) -> str:
        if compiled.fullmatch(value) is None:
            raise ValueError(f"is not {what}")
        return value

    return AfterValidator(check)
