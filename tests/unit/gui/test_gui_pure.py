"""The GUI's pure parts: tunnel search and paging, forms to API bodies and errors back to
fields, sessions and CSRF secrets, scope, the breakdown chart's geometry."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from fluidedge.gui import charts
from fluidedge.gui.errors import GuiInputError
from fluidedge.gui.forms import FORM, domain_error, field_errors, number, pairs, parse_form
from fluidedge.gui.query import clamp, numbered_page, page_number, parse_search
from fluidedge.gui.scope import visible
from fluidedge.gui.session import Authenticator, Principal, Sessions, same_secret
from fluidedge.instances.models import InstanceRequest
from fluidedge.tof.models import NewServiceModel
from fluidedge.tof.pipeline import Bearer

A = Bearer(enb=bytes([198, 18, 0, 11]), sgw=bytes([198, 18, 0, 21]), ue=bytes([10, 0, 1, 7]))
A.ul_teid, A.dl_teid = 0x1F, 4097
B = Bearer(enb=bytes([198, 18, 0, 12]), sgw=bytes([198, 18, 0, 21]), ue=bytes([10, 0, 2, 9]))
B.ul_teid, B.dl_teid = 7, 8


@pytest.mark.parametrize(
    ("term", "a", "b"),
    [
        ("10.0.1.7", True, False),  # the UE
        ("198.18.0.12", False, True),  # the eNB
        ("198.18.0.21", True, True),  # the SGW of both
        ("10.0.1.0/24", True, False),
        ("10.0.0.0/16", True, True),
        ("0x1f", True, False),
        ("4097", True, False),
        ("8", False, True),
        ("2001:db8::1", False, False),  # another family never matches
        ("2001:db8::/32", False, False),
    ],
)
def test_search_matches_addresses_prefixes_and_teids(term: str, a: bool, b: bool) -> None:
    keep = parse_search(term)
    assert keep is not None
    assert (keep(A), keep(B)) == (a, b)


@pytest.mark.parametrize("term", ["abc", "10.0.0.0/33", "99999999999", "0xZZ", "x" * 65])
def test_bad_searches_say_why(term: str) -> None:
    with pytest.raises(GuiInputError, match="search"):
        parse_search(term)


def test_empty_search_keeps_everything() -> None:
    assert parse_search("  ") is None


def test_paging_clamps_to_the_last_page() -> None:
    assert page_number(None) == 1
    assert page_number("3") == 3
    for bad in ("0", "-1", "x", "1" * 10, "\u00b2", "\u0661\u0662", " 1"):
        with pytest.raises(GuiInputError):
            page_number(bad)
    paging = clamp(9, 50, 120)
    assert (paging.page, paging.pages, paging.offset, paging.first_row, paging.last_row) == (
        3,
        3,
        100,
        101,
        120,
    )
    empty = clamp(1, 50, 0)
    assert (empty.pages, empty.first_row, empty.last_row) == (1, 0, 0)


def test_form_parsing_is_strict() -> None:
    data = parse_form(b"a=1&b=x+y&b=z&c=", "application/x-www-form-urlencoded; charset=utf-8")
    assert data == {"a": ["1"], "b": ["x y", "z"], "c": [""]}
    with pytest.raises(GuiInputError, match="urlencoded"):
        parse_form(b"{}", "application/json")
    with pytest.raises(GuiInputError, match="UTF-8"):
        parse_form(b"a=%ff\xff", "application/x-www-form-urlencoded")
    assert pairs("A=1\n\n B = two \n") == {"A": "1", "B": "two"}
    with pytest.raises(GuiInputError, match="KEY=VALUE"):
        pairs("novalue")


def test_validation_errors_land_at_their_fields_with_the_api_text() -> None:
    fields = ("name", "serviceIP", "applicationIP")
    with pytest.raises(ValidationError) as exc:
        NewServiceModel.model_validate({"name": "ok", "serviceIP": "1.2.3", "applicationIP": "x"})
    errors = field_errors(exc.value, fields)
    assert set(errors) == {"serviceIP", "applicationIP"}
    assert "1.2.3" in errors["serviceIP"]
    # A model-level error names its field in the message: placed there, else above the form.
    assert domain_error("serviceIP 1.1.1.1 is already used by service 'a'", fields) == {
        "serviceIP": "serviceIP 1.1.1.1 is already used by service 'a'"
    }
    assert set(domain_error("a service named 'a' already exists", fields)) == {"name"}
    assert set(domain_error("the data plane failed", fields)) == {FORM}


def test_nested_errors_land_at_the_nearest_form_field() -> None:
    fields = ["name", "interfaces.eth0.addresses", "interfaces.eth0.gateway", "resources.cpus"]
    with pytest.raises(ValidationError) as exc:
        InstanceRequest.model_validate(
            {
                "name": "Bad Name",
                "template": "t",
                "interfaces": {"eth0": {"addresses": ["10.0.0.1"]}},
                "resources": {"cpus": "-1"},
            }
        )
    errors = field_errors(exc.value, fields)
    assert set(errors) == {"name", "interfaces.eth0.addresses", "resources.cpus"}
    assert "prefix length" in errors["interfaces.eth0.addresses"]


def test_sessions_expire_when_idle_and_on_logout() -> None:
    clock = [100.0]
    sessions = Sessions(idle_s=60, now=lambda: clock[0])
    session = sessions.create(Principal("operator"))
    assert session.sid != session.csrf
    assert len(session.sid) >= 40
    clock[0] += 59
    assert sessions.get(session.sid) is session  # and this use refreshes it
    clock[0] += 59
    assert sessions.get(session.sid) is session
    clock[0] += 59
    assert sessions.get(session.sid, touch=False) is session  # a live stream's check...
    clock[0] += 2
    assert sessions.get(session.sid) is None  # ...does not keep the session alive
    other = sessions.create(Principal("operator"))
    sessions.drop(other.sid)
    assert sessions.get(other.sid) is None
    assert sessions.get(None) is None
    assert sessions.get("") is None


def test_flashes_are_shown_once() -> None:
    session = Sessions(idle_s=60).create(Principal("operator"))
    session.flash("done")
    assert session.take_flashes() == [("ok", "done")]
    assert session.take_flashes() == []


def test_only_the_daemon_token_logs_in() -> None:
    auth = Authenticator("s" * 32)
    assert auth.principal("s" * 32) == Principal("operator")
    assert auth.principal(" " + "s" * 32 + "\n") == Principal("operator")
    assert auth.principal("s" * 31) is None
    assert auth.principal("") is None
    assert not same_secret("", "")
    assert same_secret("abc", "abc")


def test_scope_operator_sees_all_tenant_sees_its_labels() -> None:
    operator, tenant = Principal("operator"), Principal("acme", tenant="acme")
    assert visible(operator, None)
    assert visible(operator, {"tenant": "other"})
    assert visible(tenant, {"tenant": "acme"})
    assert not visible(tenant, {"tenant": "other"})
    assert not visible(tenant, None)


def test_breakdown_geometry_is_proportional_and_stacked() -> None:
    timing = {"accept": 1.0, "shell": 3.0, "ready": 4.0, "total": 8.0}
    chart = charts.breakdown(timing)
    widths = {bar.label: bar.width for bar in chart.bars}
    assert widths["ready"] == pytest.approx(chart.scale_w * 0.5)
    assert widths["shell"] == pytest.approx(3 * widths["accept"])
    assert widths["placement"] == 0
    # Stacked: each phase starts where the previous one ended; all of them fill the scale.
    ends = [bar.x + bar.width for bar in chart.stacked]
    assert all(b.x == pytest.approx(e) for b, e in zip(chart.stacked[1:], ends, strict=False))
    assert ends[-1] == pytest.approx(chart.label_w + chart.scale_w)
    assert [bar.label for bar in chart.bars] == list(charts.PHASES)
    assert chart.total_ms == 8.0


def test_numeric_fields_become_json_numbers() -> None:
    assert number(" 8080 ") == 8080
    assert number("0.25") == 0.25
    assert number("8k") == "8k"  # left for the model to refuse with its own reason


def test_numbered_page_fetches_the_last_page_when_asked_past_the_end() -> None:
    rows = list(range(120))
    asked: list[tuple[int, int]] = []

    def fetch(offset: int, size: int) -> tuple[int, list[int]]:
        asked.append((offset, size))
        return len(rows), rows[offset : offset + size]

    paging, page = numbered_page(fetch, 2, 50)
    assert (paging.page, page[0], len(page), asked) == (2, 50, 50, [(50, 50)])
    asked.clear()
    paging, page = numbered_page(fetch, 9, 50)
    assert (paging.page, page, asked) == (3, rows[100:], [(400, 50), (100, 50)])
