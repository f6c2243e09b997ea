"""``fluidedge.core.jsontypes``: the field pieces the parts' API models share, each judged as
the served schema states it."""

from __future__ import annotations

import re
from typing import Annotated

import pytest
from pydantic import BaseModel, Field, ValidationError

from fluidedge.core.jsontypes import JsonInt, bounds, distinct, matching, unreserved

_RULE, _SCHEMA = bounds(1, 255)
_PATTERN = r"^[a-z]+(-[a-z]+)*$"


class Body(BaseModel):
    name: Annotated[
        str,
        Field(json_schema_extra={"pattern": _PATTERN}),
        matching(_PATTERN, "a lowercase name (words joined by dashes)"),
        unreserved(("ports",), "{value!r} is reserved: GET /ports lists the ports"),
    ]
    number: Annotated[JsonInt, _RULE, _SCHEMA] | None = None
    tags: Annotated[list[str], distinct("tag")] = []


def test_the_schema_states_what_the_checks_hold() -> None:
    schema = Body.model_json_schema()["properties"]
    assert schema["name"]["pattern"] == _PATTERN
    number = next(s for s in schema["number"]["anyOf"] if s.get("type") == "integer")
    assert (number["minimum"], number["maximum"]) == (1, 255)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"name": "Two Words"}, "is not a lowercase name (words joined by dashes)"),
        ({"name": "a-"}, "is not a lowercase name"),
        ({"name": "ports"}, "'ports' is reserved: GET /ports lists the ports"),
        ({"name": "a", "number": 0}, "greater than or equal to 1"),
        ({"name": "a", "number": 2.5}, "int"),
        ({"name": "a", "tags": ["x", "x"]}, "a tag appears twice"),
    ],
)
def test_each_refusal_says_why(body: dict[str, object], reason: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(reason)):
        Body.model_validate(body)


def test_what_the_checks_take() -> None:
    body = Body.model_validate({"name": "two-words", "number": 255.0, "tags": ["x", "y"]})
    assert (body.name, body.number, body.tags) == ("two-words", 255, ["x", "y"])
