"""The ME platform's pure policy: scoping, discovery filters, subscription filters, change types,
and what a traffic rule becomes in the TOF."""

from __future__ import annotations

from typing import Any

import pytest

from fluidedge.mec import policy, tokens
from fluidedge.mec.errors import MecForbidden, MecInvalid, MecUnprocessable, MecUnsupported
from fluidedge.mec.models import FilteringCriteria, LocalityType, ServiceInfo, TrafficRule
from fluidedge.mec.policy import ADMIN, Caller, ServiceQuery, TofTarget


def service(name: str = "svc", **extra: Any) -> ServiceInfo:
    doc = {
        "serName": name,
        "version": "1",
        "state": "ACTIVE",
        "serializer": "JSON",
        "transportInfo": {
            "id": "t", "name": "REST", "type": "REST_HTTP", "protocol": "HTTP", "version": "1.1",
            "endpoint": {"uris": ["http://10.0.3.1/"]}, "security": {},
        },
        **extra,
    }  # fmt: skip
    return policy.effective(ServiceInfo.model_validate(doc))


def rule(**extra: Any) -> TrafficRule:
    doc = {
        "trafficRuleId": "r1", "filterType": "FLOW", "priority": 1,
        "trafficFilter": [{"dstAddress": ["198.18.0.5/32"]}],
        "action": "FORWARD_DECAPSULATED", "state": "ACTIVE", **extra,
    }  # fmt: skip
    return TrafficRule.model_validate(doc)


def test_an_app_token_acts_only_for_its_own_app_instance() -> None:
    policy.check_acts_for(ADMIN, "a")
    policy.check_acts_for(Caller("a"), "a")
    with pytest.raises(MecForbidden, match="belongs to app instance a, not b"):
        policy.check_acts_for(Caller("a"), "b")
    assert MecForbidden.http_status == 403


def test_effective_fills_the_platforms_defaults_and_keeps_given_values() -> None:
    info = service()
    assert info.scope_of_locality is not None
    assert info.scope_of_locality.value == "MEC_HOST"
    assert info.consumed_local_only is True
    assert info.is_local is True
    given = service(scopeOfLocality="ZONE", consumedLocalOnly=False)
    assert given.scope_of_locality is not None
    assert given.scope_of_locality.value == "ZONE"
    assert given.consumed_local_only is False


def test_discovery_filters_by_each_query_parameter() -> None:
    cat = {"href": "h", "id": "rni", "name": "RNI", "version": "1"}
    a = service("a").model_copy(update={"ser_instance_id": "1"})
    b = service("b", serCategory=cat).model_copy(update={"ser_instance_id": "2"})
    c = service("c", scopeOfLocality="ZONE", consumedLocalOnly=False).model_copy(
        update={"ser_instance_id": "3"}
    )
    every = [a, b, c]

    def names(query: ServiceQuery) -> list[str]:
        return [s.ser_name for s in policy.discover(every, query)]

    assert names(ServiceQuery()) == ["a", "b", "c"]
    assert names(ServiceQuery(ser_instance_id=("1", "3"))) == ["a", "c"]
    assert names(ServiceQuery(ser_name=("b",))) == ["b"]
    assert names(ServiceQuery(ser_category_id="rni")) == ["b"]
    assert names(ServiceQuery(consumed_local_only=False)) == ["c"]
    assert names(ServiceQuery(scope_of_locality=LocalityType.MEC_HOST)) == ["a", "b"]
    assert names(ServiceQuery(scope_of_locality=LocalityType.ZONE)) == ["c"]
    assert names(ServiceQuery(is_local=True)) == ["a", "b", "c"]
    assert names(ServiceQuery(is_local=False)) == []


def test_discovery_refuses_two_of_the_exclusive_filters() -> None:
    """MEC 011's rule across parameters stays a 400 (MecInvalid); a parameter given with an
    empty value counts as given."""
    with pytest.raises(MecInvalid, match="only one of") as refused:
        policy.discover([], ServiceQuery(ser_name=("a",), ser_category_id="x"))
    assert refused.value.http_status == 400
    with pytest.raises(MecInvalid, match="got ser_instance_id, ser_category_id"):
        policy.discover([], ServiceQuery(ser_instance_id=("",), ser_category_id=""))
    assert policy.discover([], ServiceQuery(ser_category_id="")) == []


def test_subscription_criteria_are_anded_and_absent_criteria_match_all() -> None:
    info = service("a").model_copy(update={"ser_instance_id": "1"})
    assert policy.matches_criteria(None, info)
    assert policy.matches_criteria(FilteringCriteria(), info)
    assert policy.matches_criteria(FilteringCriteria(ser_names=["a"], is_local=True), info)
    assert not policy.matches_criteria(FilteringCriteria(ser_names=["a"], is_local=False), info)
    assert not policy.matches_criteria(FilteringCriteria(ser_instance_ids=["2"]), info)
    inactive = FilteringCriteria.model_validate({"states": ["INACTIVE"]})
    assert not policy.matches_criteria(inactive, info)


def test_change_types() -> None:
    a = service("a")
    assert policy.change_type(None, a) == "ADDED"
    assert policy.change_type(a, None) == "REMOVED"
    assert policy.change_type(a, a) is None
    down = a.model_copy(update={"state": "INACTIVE"})
    assert policy.change_type(a, down) == "STATE_CHANGED"
    assert policy.change_type(a, a.model_copy(update={"version": "2"})) == "ATTRIBUTES_CHANGED"


def test_a_forward_decapsulated_rule_becomes_one_tof_service_per_destination() -> None:
    two = rule(trafficFilter=[{"dstAddress": ["198.18.0.5", "198.18.0.6/32"]}])
    assert policy.tof_services(two, "10.0.2.10") == [
        TofTarget("198.18.0.5", "10.0.2.10"),
        TofTarget("198.18.0.6", "10.0.2.10"),
    ]
    explicit = rule(dstInterface={"interfaceType": "IP", "dstIpAddress": "10.0.2.99"})
    assert policy.tof_services(explicit, "10.0.2.10") == [TofTarget("198.18.0.5", "10.0.2.99")]
    assert policy.tof_services(rule(state="INACTIVE"), "10.0.2.10") == []
    assert policy.tof_services(rule(action="PASSTHROUGH"), "10.0.2.10") == []


def test_protocol_and_port_filters_become_classified_services() -> None:
    web = rule(
        priority=3,
        trafficFilter=[
            {"dstAddress": ["198.18.0.5"], "protocol": ["tcp"], "dstPort": ["80", "8000-8080"]},
            {"dstAddress": ["198.18.0.5"], "protocol": ["17"]},
        ],
    )
    assert policy.tof_services(web, "10.0.2.10") == [
        TofTarget("198.18.0.5", "10.0.2.10", True, (6,), ((80, 80), (8000, 8080)), 3, "offload"),
        TofTarget("198.18.0.5", "10.0.2.10", True, (17,), (), 3, "offload"),
    ]
    # A port-filtered PASSTHROUGH is an exception to another rule on the same address.
    ssh = rule(
        action="PASSTHROUGH", trafficFilter=[{"dstAddress": ["198.18.0.5"], "dstPort": ["22"]}]
    )
    assert policy.tof_services(ssh, None) == [
        TofTarget("198.18.0.5", "198.18.0.5", True, (), ((22, 22),), 1, "pass")
    ]


def test_source_filters_become_classified_services_of_those_ues_and_ports() -> None:
    some = rule(
        trafficFilter=[
            {
                "dstAddress": ["198.18.0.5"],
                "srcAddress": ["10.45.1.0/24", "10.45.0.7"],
                "srcPort": ["5000-5100"],
                "protocol": ["UDP"],
            }
        ]
    )
    assert policy.tof_services(some, "10.0.2.10") == [
        TofTarget(
            "198.18.0.5",
            "10.0.2.10",
            True,
            (17,),
            (),
            1,
            "offload",
            ("10.45.0.7/32", "10.45.1.0/24"),
            ((5000, 5100),),
        )
    ]
    # Same destination, other sources: two filters, two services (not "given twice").
    split = rule(
        trafficFilter=[
            {"dstAddress": ["198.18.0.5"], "srcAddress": ["10.45.1.0/24"]},
            {"dstAddress": ["198.18.0.5"], "srcAddress": ["10.45.2.0/24"]},
        ]
    )
    assert [t.sources for t in policy.tof_services(split, "10.0.2.10")] == [
        ("10.45.1.0/24",),
        ("10.45.2.0/24",),
    ]


def test_drop_and_duplicate_become_classified_services_of_any_packet() -> None:
    drop = policy.tof_services(rule(action="DROP"), None)
    assert drop == [TofTarget("198.18.0.5", "198.18.0.5", True, (), (), 1, "drop")]
    copy = policy.tof_services(rule(action="DUPLICATE_DECAPSULATED"), "10.0.2.10")
    assert copy == [TofTarget("198.18.0.5", "10.0.2.10", True, (), (), 1, "duplicate")]
    for action, tof_action in (
        ("FORWARD_ENCAPSULATED", "forward_encapsulated"),
        ("DUPLICATE_ENCAPSULATED", "duplicate_encapsulated"),
    ):
        encapsulated = policy.tof_services(rule(action=action), "10.0.2.10")
        assert encapsulated == [TofTarget("198.18.0.5", "10.0.2.10", True, (), (), 1, tof_action)]
        with pytest.raises(MecUnprocessable, match="no destination"):  # they deliver: to whom?
            policy.tof_services(rule(action=action), None)


@pytest.mark.parametrize(
    ("extra", "reason"),
    [
        ({"trafficFilter": [{"dstAddress": ["198.18.0.0/24"]}]}, r"only single IPv4"),
        ({"trafficFilter": [{"dstAddress": ["198.18.0.5"], "qCI": 9}]}, "qCI"),
        ({"trafficFilter": [{"dstAddress": ["198.18.0.5"], "token": ["t"]}]}, "token"),
        (
            {"trafficFilter": [{"dstAddress": ["198.18.0.5"], "srcTunnelAddress": ["1.1.1.1"]}]},
            "srcTunnelAddress",
        ),
        ({"trafficFilter": [{"srcAddress": ["10.0.0.0/8"]}]}, "without dstAddress"),
        (
            {"trafficFilter": [{"dstAddress": ["198.18.0.5"], "srcAddress": ["2001:db8::/32"]}]},
            "only IPv4",
        ),
        ({"trafficFilter": [{"dstPort": ["80"]}]}, "without dstAddress"),
        ({"trafficFilter": []}, "trafficFilter is empty"),
        ({"dstInterface": {"interfaceType": "MAC"}}, "type MAC"),
    ],
)
def test_what_the_tof_cannot_express_is_refused_with_the_reason(
    extra: dict[str, Any], reason: str
) -> None:
    with pytest.raises(MecUnsupported, match=reason) as refused:
        policy.tof_services(rule(**extra), "10.0.2.10")
    assert refused.value.http_status == 422
    # An INACTIVE rule is not translated: it is kept as given.
    assert policy.tof_services(rule(**{**extra, "state": "INACTIVE"}), "10.0.2.10") == []


@pytest.mark.parametrize(
    ("flt", "reason"),
    [
        ({"protocol": ["GRE"]}, "protocol 'GRE'"),
        ({"protocol": ["256"]}, "protocol '256'"),
        ({"dstPort": ["http"]}, "dstPort 'http'"),
        ({"dstPort": ["90-80"]}, "dstPort '90-80'"),
        ({"dstPort": ["65536"]}, "dstPort '65536'"),
        ({"protocol": ["ICMP"], "dstPort": ["80"]}, "protocols with ports"),
        ({"protocol": ["ICMP"], "srcPort": ["80"]}, "protocols with ports"),
        ({"srcPort": ["1-"]}, "srcPort '1-'"),
        ({"srcAddress": ["10.45.0.1/16"]}, "srcAddress '10.45.0.1/16'"),
        ({"srcAddress": ["ue"]}, "srcAddress 'ue'"),
        ({"protocol": ["\u00b2"]}, "protocol '\u00b2'"),  # isdigit(), yet no int(): not a 500
        ({"dstPort": ["\u0668\u0660"]}, "dstPort '\u0668\u0660'"),  # int() would read 80
        ({"dstPort": ["1-\u00b2"]}, "dstPort '1-\u00b2'"),
    ],
)
def test_a_malformed_protocol_or_port_is_unprocessable(flt: dict[str, Any], reason: str) -> None:
    """The filters' strings are free text in the documents and only an ACTIVE rule must
    translate: what does not is a 422 (MecUnprocessable), not a schema error."""
    bad = rule(trafficFilter=[{"dstAddress": ["198.18.0.5"], **flt}])
    with pytest.raises(MecUnprocessable, match=reason) as refused:
        policy.tof_services(bad, "10.0.2.10")
    assert refused.value.http_status == 422


def test_a_rule_without_any_destination_or_with_a_bad_address_is_unprocessable() -> None:
    with pytest.raises(MecUnprocessable, match="no destination"):
        policy.tof_services(rule(), None)
    with pytest.raises(MecUnprocessable, match="not an address"):
        policy.tof_services(rule(trafficFilter=[{"dstAddress": ["nope"]}]), "10.0.2.10")
    with pytest.raises(MecUnprocessable, match="given twice"):
        policy.tof_services(rule(trafficFilter=[{"dstAddress": ["1.2.3.4", "1.2.3.4"]}]), "1.1.1.1")


def test_tof_service_names_fit_the_tofs_name_pattern() -> None:
    import re

    from fluidedge.tof.models import NAME_PATTERN

    name = policy.tof_service_name("9f1c7c2e-7c55-4a43-9c55-7d1f5c1b2a3e", "rule:with/odd chars", 3)
    assert re.match(NAME_PATTERN, name), name
    assert name != policy.tof_service_name("9f1c7c2e-7c55-4a43-9c55-7d1f5c1b2a3e", "other", 3)


def test_app_tokens_are_checked_against_their_hash() -> None:
    token_id, token, stored = tokens.new_token()
    parsed = tokens.parse(token)
    assert parsed is not None
    assert parsed[0] == token_id
    assert tokens.matches(parsed[1], stored)
    assert not tokens.matches(parsed[1][:-1] + "x", stored)
    assert token.split(".")[1] not in stored
    assert tokens.parse("fet_" + token[4:]) is None


def test_models_refuse_what_the_documents_do_not_allow() -> None:
    from pydantic import ValidationError

    good = service().wire()
    for change, reason in [
        ({"serCategory": None}, "null is not allowed"),
        ({"isLocal": 1}, "valid boolean"),
        (
            {"transportInfo": {**good["transportInfo"], "endpoint": {"uris": [], "addresses": []}}},
            "exactly one of uris, addresses or alternative",
        ),
    ]:
        with pytest.raises(ValidationError, match=reason):
            ServiceInfo.model_validate({**good, **change})
    with pytest.raises(ValidationError, match="valid integer"):
        rule(priority="1")
    # Absent optionals stay absent on the wire; the spec's names are used.
    assert "serCategory" not in good
    assert good["transportInfo"]["endpoint"] == {"uris": ["http://10.0.3.1/"]}


def test_the_request_limiter_is_a_token_bucket_per_app() -> None:
    limiter = policy.RequestLimiter(rate=2.0, burst=3)
    assert [limiter.wait("a", 10.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.wait("a", 10.0) == pytest.approx(0.5)  # one token at 2/s
    assert limiter.wait("b", 10.0) == 0.0  # another app has its own bucket
    assert limiter.wait("a", 10.5) == 0.0  # refilled
    assert limiter.wait("a", 100.0) == 0.0  # capped at the burst...
    assert [limiter.wait("a", 100.0) for _ in range(3)][-1] > 0  # ...so the 4th at once waits
    limiter.forget("a")
    assert limiter.wait("a", 100.0) == 0.0
    assert policy.RequestLimiter(rate=0.0, burst=1).wait("a", 0.0) == 0.0  # no limit
