"""The CAT request models: what the schema states is what the code takes (pure)."""

from __future__ import annotations

import contextlib
import errno
import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from tests.fixtures.resctrl import SHAPES, FakeResctrl

from fluidedge.cat.errors import CatInputError, CatUnprocessable
from fluidedge.cat.fs import kernel_error
from fluidedge.cat.layout import parse_cbm
from fluidedge.cat.models import MASK_PATTERN, CosSpec, parse_cpus
from fluidedge.cat.persist import Tables
from fluidedge.core.cpus import CPU_LIST_PATTERN, MAX_CPU, parse_cpu_list
from fluidedge.core.store import Store

from .conftest import MakeManager
from .test_layout import _cache


@pytest.mark.parametrize(
    ("text", "cpus"),
    [("0-3,6", (0, 1, 2, 3, 6)), ("", ()), ("5", (5,)), ("2,1,1-2", (1, 2)), ("0-0", (0,))],
)
def test_parse_cpus(text: str, cpus: tuple[int, ...]) -> None:
    assert parse_cpus(text) == cpus


@pytest.mark.parametrize(
    ("text", "why"),
    [("3-1", "runs backwards"), (f"{MAX_CPU + 1}", "beyond"), ("0-999999999999", "beyond")],
)
def test_parse_cpus_refuses_what_no_pattern_can_say(text: str, why: str) -> None:
    with pytest.raises(CatUnprocessable, match=why) as caught:
        parse_cpus(text, "a.cpus")
    assert caught.value.http_status == 422
    assert str(caught.value).startswith("a.cpus: ")


@given(st.from_regex(CPU_LIST_PATTERN, fullmatch=True))
def test_every_cpu_list_the_schema_takes_is_read(text: str) -> None:
    """A string the pattern matches never makes the parser fail to read it (a 400 the schema
    does not announce); the only refusals left are the 422s, and what is read agrees with the
    placement's parser."""
    try:
        cpus = parse_cpus(text)
    except CatUnprocessable:
        return
    assert all(0 <= cpu <= MAX_CPU for cpu in cpus)
    assert cpus == parse_cpu_list(text)


@given(st.from_regex(MASK_PATTERN, fullmatch=True))
def test_every_mask_the_schema_takes_is_hex_to_the_kernel_checks(text: str) -> None:
    """Past the pattern, a mask is refused only for the host's reasons (422), never as text."""
    with contextlib.suppress(CatUnprocessable):
        parse_cbm(text, _cache(12, min_cbm_bits=2))


@pytest.mark.parametrize("value", ["Ø", " 1", "1,", "1-", "-1", "1 -2", "0x3", "\u0661"])
def test_cpu_lists_the_schema_refuses(value: str) -> None:
    assert not re.fullmatch(CPU_LIST_PATTERN, value)
    with pytest.raises(ValueError, match="cpus"):
        CosSpec.model_validate({"name": "a", "cpus": value})


def test_the_models_are_strict() -> None:
    """No coercion: 0 is not false, "50" not 50; 50.0 is JSON's integer 50."""
    assert CosSpec.model_validate({"name": "a", "mb": 50.0}).mb == 50
    for body in ({"name": "a", "exclusive": 0}, {"name": "a", "mb": "50"}, {"name": "a", "l3": 15}):
        with pytest.raises(ValueError, match="valid"):
            CosSpec.model_validate(body)


@pytest.mark.parametrize(
    ("code", "status"),
    [
        (errno.EINVAL, 422),
        (errno.ERANGE, 422),
        (errno.ESRCH, 422),
        (errno.ENOSPC, 409),
        (errno.EBUSY, 409),
        (errno.EIO, 500),
    ],
)
def test_the_kernels_refusals_are_422(tmp_path: Path, code: int, status: int) -> None:
    """A value our checks let through and the kernel refuses: well-formed, not for this host."""
    fs = FakeResctrl(tmp_path / "r", SHAPES["12w-16c-plain"])
    error = kernel_error(fs, "a/schemata", OSError(code, "no"))
    assert getattr(error, "http_status", None) == status
    assert isinstance(error, CatInputError) == (status == 422)


def test_classes_stored_by_the_lax_checks_still_load(
    tmp_path: Path, make_manager: MakeManager
) -> None:
    """A class declared when the checks were lax (spaces, '0, 1') is read the old way and
    written the strict way: a daemon start never fails on what it once accepted."""
    store = Store(tmp_path / "db.sqlite")
    tables = Tables(store)
    tables.put_class("a", {"name": "a", "l3": " f0 ", "cpus": "0, 1", "exclusive": False})
    tables.put_class("b", {"name": "b", "l3": {"0": "f00 "}, "cpus": None})
    tables.put_class("c", {"name": "c", "l3": "f", "colour": "red"})  # no longer reads at all
    manager = make_manager(FakeResctrl(tmp_path / "r", SHAPES["12w-16c-plain"]), store)
    assert manager.classes["a"].l3 == "f0"
    assert manager.classes["a"].cpus == "0,1"
    assert manager.classes["b"].l3 == {"0": "f00"}
    assert "c" not in manager.classes
    assert "'c'" in (manager.last_error or "")
