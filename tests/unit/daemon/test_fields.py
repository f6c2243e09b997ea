"""``fluidedge.core.fields``: untrusted digits are ASCII digits (``²`` and ``١٢`` are not)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fluidedge.core.fields import FieldChecks, decimal


class Refused(Exception):
    pass


def test_decimal_takes_ascii_digits_only() -> None:
    assert decimal("0") == 0
    assert decimal("255", 3) == 255
    assert decimal("007") == 7
    for text in ("", "-1", "+1", " 1", "1 ", "1_0", "\u00b2", "\u0661\u0662", "1.0", "1234", "x"):
        assert decimal(text, 3) is None, text


@given(st.text(max_size=12))
def test_decimal_never_raises_and_agrees_with_int_on_ascii(text: str) -> None:
    value = decimal(text, 12)
    if value is not None:
        assert text.isascii()
        assert int(text) == value


def test_protocol_number_in_other_scripts_is_refused_not_a_crash() -> None:
    checks = FieldChecks(Refused)
    assert checks.protocol("17", "IPv4") == 17
    for text in ("\u00b2", "\u0661\u0667", "2\u00b2"):
        with pytest.raises(Refused, match="protocol"):
            checks.protocol(text, "IPv4")
