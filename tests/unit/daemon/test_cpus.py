"""``fluidedge.core.cpus``: one strict reader of the kernel's CPU-list syntax for every caller
(CAT's API, the ``[instances] cpus`` configuration, ``/sys/devices/system/cpu/online``)."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fluidedge.core.cpus import (
    CPU_LIST_PATTERN,
    MAX_CPU,
    CpuListError,
    cpu_list_text,
    parse_cpu_list,
)


@pytest.mark.parametrize(
    ("text", "cpus"),
    [
        ("0-3,6\n", (0, 1, 2, 3, 6)),  # as the kernel's files end
        ("", ()),
        ("\n", ()),
        ("5", (5,)),
        ("2,1,1-2", (1, 2)),
        ("0-0", (0,)),
        (f"{MAX_CPU}", (MAX_CPU,)),
    ],
)
def test_lists_are_read_sorted_and_unique(text: str, cpus: tuple[int, ...]) -> None:
    assert parse_cpu_list(text) == cpus


@pytest.mark.parametrize(
    ("text", "why", "unprocessable"),
    [
        ("3-1", "runs backwards", True),
        (f"{MAX_CPU + 1}", "beyond any host's", True),
        ("0-999999999999", "beyond any host's", True),  # refused before it is expanded
        ("9" * 5000, "beyond any host's", True),  # past int()'s own digit limit
        ("1,", "invalid CPU list", False),
        ("1,,2", "invalid CPU list", False),
        ("-1", "invalid CPU list", False),
        ("0x3", "invalid CPU list", False),
        ("\u0661\u0662", "invalid CPU list", False),  # int() reads Arabic-Indic digits as 12
        ("\u00b2", "invalid CPU list", False),  # isdigit() admits it, int() refuses it
        ("1 -2", "invalid CPU list", False),
    ],
)
def test_refusals_say_why_and_which_kind(text: str, why: str, unprocessable: bool) -> None:
    with pytest.raises(CpuListError, match=why) as caught:
        parse_cpu_list(text)
    assert caught.value.unprocessable is unprocessable


def _judged(text: str) -> tuple[tuple[int, ...] | None, bool]:
    """(the CPUs read, or None when refused; whether it was refused as malformed)."""
    try:
        return parse_cpu_list(text), False
    except CpuListError as exc:
        return None, not exc.unprocessable


@given(st.from_regex(CPU_LIST_PATTERN, fullmatch=True))
def test_what_the_pattern_takes_is_read_or_unprocessable(text: str) -> None:
    """A list the pattern (the schema) takes is never refused as malformed: a 400 a schema
    does not announce. What is read round-trips through the kernel's syntax."""
    cpus, malformed = _judged(text)
    assert not malformed
    if cpus is not None:
        assert all(0 <= cpu <= MAX_CPU for cpu in cpus)
        assert parse_cpu_list(cpu_list_text(cpus)) == cpus


@given(st.text(max_size=20))
def test_any_text_is_read_or_refused_with_the_error(text: str) -> None:
    cpus, malformed = _judged(text)
    assert not (malformed and re.fullmatch(CPU_LIST_PATTERN, text.strip()))
    if cpus is not None:
        assert cpus == tuple(sorted(set(cpus)))


def test_written_sorted() -> None:
    assert cpu_list_text((3, 1)) == "1,3"
    assert cpu_list_text(()) == ""
