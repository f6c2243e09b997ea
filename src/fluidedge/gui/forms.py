"""Forms to API request bodies, and API errors back to the form's fields (pure functions).

A submitted form is turned into the very JSON body the REST API takes, validated with the API's
request model, so a wrong value shows the API's own reason. :func:`field_errors` places each
pydantic error at the field it names (its ``loc``); errors of the whole body (a model validator,
e.g. "serviceIP and applicationIP must differ") and the parts' domain errors (409 conflicts...)
go to the field the message names first, else above the form.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import parse_qs

from pydantic import ValidationError

from fluidedge.gui.errors import GuiInputError

FORM_LIMIT = 256 * 1024
FORM = "__form__"  # errors that belong to no field


def parse_form(body: bytes, content_type: str) -> dict[str, list[str]]:
    """An ``application/x-www-form-urlencoded`` body as {name: [values]}."""
    if (
        content_type.split(";", maxsplit=1)[0].strip().lower()
        != "application/x-www-form-urlencoded"
    ):
        raise GuiInputError("form: expected application/x-www-form-urlencoded")
    if len(body) > FORM_LIMIT:
        raise GuiInputError("form: too large")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise GuiInputError("form: not UTF-8") from None
    return parse_qs(text, keep_blank_values=True, max_num_fields=2000)


def one(form: Mapping[str, list[str]], name: str, default: str = "") -> str:
    values = form.get(name)
    return values[-1] if values else default


def lines(text: str) -> list[str]:
    """Non-empty lines of a textarea, stripped."""
    return [line.strip() for line in text.splitlines() if line.strip()]


def pairs(text: str, sep: str = "=") -> dict[str, str]:
    """``KEY=VALUE`` lines as a dict; GuiInputError for a line without ``sep``."""
    out: dict[str, str] = {}
    for line in lines(text):
        key, found, value = line.partition(sep)
        if not found:
            raise GuiInputError(f"{line!r}: expected KEY{sep}VALUE")
        out[key.strip()] = value.strip()
    return out


def _place(message: str, fields: Iterable[str]) -> str:
    for name in fields:
        if re.search(rf"(?<![\w.]){re.escape(name)}(?![\w])", message):
            return name
    if "named" in message and "name" in fields:
        return "name"
    return FORM


def field_errors(exc: ValidationError, fields: Sequence[str]) -> dict[str, str]:
    """{field path: reason} for a request model's ValidationError; the reason is the message
    the API's 400 gives for the same field (``<field>: <reason>``)."""
    out: dict[str, str] = {}
    for error in exc.errors():
        where = ".".join(str(p) for p in error.get("loc", ()))
        message = str(error.get("msg", "invalid"))
        key = where if where else _place(message, fields)
        key = key if key in fields else _nearest(key, fields)
        out[key] = f"{out[key]}; {message}" if key in out else message
    return out


def _nearest(where: str, fields: Sequence[str]) -> str:
    """A nested location (``resources.cpus``, ``interfaces.eth0.addresses.0``) -> the longest
    form field it starts with."""
    best = FORM
    for name in fields:
        if (where == name or where.startswith(name + ".")) and (
            best == FORM or len(name) > len(best)
        ):
            best = name
    return best


def domain_error(message: str, fields: Sequence[str]) -> dict[str, str]:
    return {_place(message, fields): message}


def number(text: str) -> int | float | str:
    """A numeric field's text as the JSON number the API takes (the request models are strict:
    ``"8080"`` is not an integer there); text that is not a number is passed on unchanged, so
    the model's own reason is shown."""
    text = text.strip()
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            continue
    return text


def drop_empty(data: dict[str, Any]) -> dict[str, Any]:
    """Leave out optional fields the form left blank (the API's defaults then apply)."""
    return {k: v for k, v in data.items() if v not in ("", None, [], {})}
