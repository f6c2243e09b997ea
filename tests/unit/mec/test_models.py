"""Mp1's models against the schema they serve: every pattern matches only what the code then
accepts (a schema-valid request is never refused for that member), integers are JSON
integers (an integral number included, never a boolean), unknown members are ignored whatever
their value, and ``endpoint`` is the documents' ``oneOf``."""

from __future__ import annotations

import ipaddress
import re
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from fluidedge.mec.descriptor import IPV4_ADDRESS, IPV4_INTERFACE, AppDescriptor
from fluidedge.mec.models import (
    CALLBACK,
    DNS_NAME,
    IP_ADDRESS,
    AppReadyConfirmation,
    DnsRule,
    IpAddressType,
    RuleState,
    SerAvailabilityNotificationSubscription,
    ServiceInfo,
    TrafficFilter,
    TrafficRule,
    TransportInfo,
    check_dns_rule,
)

SLOW = settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])


def dns_rule(**extra: Any) -> dict[str, Any]:
    return {
        "dnsRuleId": "d1", "domainName": "app.example", "ipAddressType": "IP_V4",
        "ipAddress": "198.18.0.5", "state": "ACTIVE", **extra,
    }  # fmt: skip


def traffic_rule(**extra: Any) -> dict[str, Any]:
    return {
        "trafficRuleId": "r1", "filterType": "FLOW", "priority": 1,
        "trafficFilter": [{"dstAddress": ["198.18.0.5"]}],
        "action": "FORWARD_DECAPSULATED", "state": "ACTIVE", **extra,
    }  # fmt: skip


def transport(endpoint: Any) -> dict[str, Any]:
    return {
        "id": "t1", "name": "REST", "type": "REST_HTTP", "protocol": "HTTP", "version": "1.1",
        "endpoint": endpoint, "security": {},
    }  # fmt: skip


def subscription(callback: str) -> dict[str, Any]:
    return {
        "subscriptionType": "SerAvailabilityNotificationSubscription",
        "callbackReference": callback,
    }


@SLOW
@given(st.from_regex(IP_ADDRESS, fullmatch=True))
def test_what_the_address_pattern_matches_is_an_address(text: str) -> None:
    ipaddress.ip_address(text)
    kind = "IP_V4" if "." in text and ":" not in text else "IP_V6"
    rule = DnsRule.model_validate(dns_rule(ipAddress=text, ipAddressType=kind))
    assert check_dns_rule(rule) is None


@SLOW
@given(st.ip_addresses())
def test_every_address_in_its_usual_forms_matches_the_pattern(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address,
) -> None:
    for text in {str(address), address.exploded}:
        assert re.fullmatch(IP_ADDRESS, text), text


@SLOW
@given(st.from_regex(DNS_NAME, fullmatch=True).filter(lambda s: len(s) <= 253))
def test_what_the_name_pattern_matches_is_a_dns_name(name: str) -> None:
    rule = DnsRule.model_validate(dns_rule(domainName=name))
    assert check_dns_rule(rule) is None


@SLOW
@given(st.from_regex(CALLBACK, fullmatch=True).filter(lambda s: 8 <= len(s) <= 2048))
def test_what_the_callback_pattern_matches_is_a_callback_the_notifier_takes(url: str) -> None:
    sub = SerAvailabilityNotificationSubscription.model_validate(subscription(url))
    assert sub.callback_reference == url


@SLOW
@given(st.from_regex(IPV4_INTERFACE, fullmatch=True))
def test_what_the_interface_pattern_matches_is_an_ipv4_interface(text: str) -> None:
    assert ipaddress.ip_interface(text).version == 4
    assert re.fullmatch(IPV4_ADDRESS, text.split("/", maxsplit=1)[0])


@pytest.mark.parametrize(
    ("url", "ok"),
    [
        ("http://10.1.0.5:8080/notify", True),
        ("HTTPS://app.example/cb?x=1#f", True),
        ("http://user:pw@[2001:db8::1]:9/n", True),
        ("http://[::ffff:10.0.0.1]/", True),
        ("0" * 300, False),
        ("ftp://host/x", False),
        ("http://:80/x", False),
        ("http://user@/x", False),
        ("http://[1.2.3.4]/", False),  # a bracketed host is IPv6
        ("http://[::1/", False),
        ("http://a b/", False),
    ],
)
def test_a_callback_is_an_http_url_with_a_host(url: str, ok: bool) -> None:
    assert bool(re.fullmatch(CALLBACK, url)) is ok
    if ok:
        SerAvailabilityNotificationSubscription.model_validate(subscription(url))
    else:
        with pytest.raises(ValidationError, match="http:// or https:// URL with a host"):
            SerAvailabilityNotificationSubscription.model_validate(subscription(url))


def test_the_served_schema_carries_the_patterns_the_models_check() -> None:
    dns = DnsRule.model_json_schema()["properties"]
    assert dns["domainName"]["pattern"] == DNS_NAME
    assert dns["ipAddress"]["pattern"] == IP_ADDRESS
    assert dns["ttl"] == {
        "default": None, "maximum": 2147483647, "minimum": 0, "title": "Ttl", "type": "integer",
    }  # fmt: skip
    sub = SerAvailabilityNotificationSubscription.model_json_schema()
    assert sub["properties"]["callbackReference"]["pattern"] == CALLBACK
    service = ServiceInfo.model_json_schema()["properties"]["serInstanceId"]
    assert service["readOnly"] is True  # MEC 011: absent in a registration
    endpoint = TransportInfo.model_json_schema()["properties"]["endpoint"]
    assert [b["$ref"].rsplit("/", 1)[1] for b in endpoint["oneOf"]] == [
        "EndPointUris", "EndPointAddresses", "EndPointAlternative",
    ]  # fmt: skip
    app = AppDescriptor.model_json_schema()
    assert app["properties"]["gracefulTimeout"]["type"] == "number"
    data = app["$defs"]["DataInterface"]["properties"]
    assert data["address"]["pattern"] == IPV4_INTERFACE
    assert data["gateway"]["anyOf"][0]["pattern"] == IPV4_ADDRESS


@pytest.mark.parametrize(
    ("model", "doc", "member"),
    [
        (DnsRule, dns_rule(), "ttl"),
        (TrafficRule, traffic_rule(), "priority"),
        (TrafficFilter, {"dstAddress": ["198.18.0.5"]}, "qCI"),
    ],
)
def test_an_integer_member_takes_integral_numbers_and_never_booleans(
    model: type[Any], doc: dict[str, Any], member: str
) -> None:
    assert model.model_validate({**doc, member: 200.0}).wire()[member] == 200  # JSON: integer
    assert model.model_validate({**doc, member: 200}).wire()[member] == 200
    for bad in (True, False, 1.5, "200"):
        with pytest.raises(ValidationError, match="valid integer"):
            model.model_validate({**doc, member: bad})


def test_ttl_past_its_bounds_is_refused_even_as_an_integral_number() -> None:
    assert DnsRule.model_validate(dns_rule(ttl=2147483646.0)).ttl == 2147483646
    with pytest.raises(ValidationError, match="less than or equal to 2147483647"):
        DnsRule.model_validate(dns_rule(ttl=2147483648.0))


def test_unknown_members_are_ignored_whatever_their_value_and_known_ones_never_null() -> None:
    assert AppReadyConfirmation.model_validate({"__main__": None, "indication": "READY"})
    flt = {"dstAddress": ["198.18.0.5"], "8\u00bfG": None, "": [None]}
    parsed = TrafficRule.model_validate(traffic_rule(trafficFilter=[flt], _=None))
    assert parsed.wire() == traffic_rule()
    with pytest.raises(ValidationError, match="ttl: null is not allowed"):
        DnsRule.model_validate(dns_rule(ttl=None))
    with pytest.raises(ValidationError, match="qCI: null is not allowed"):
        TrafficFilter.model_validate({"qCI": None})  # a known member by its wire name...
    with pytest.raises(ValidationError, match="q_ci: null is not allowed"):
        TrafficFilter.model_validate({"q_ci": None})  # ...or its Python one (populate_by_name)


def test_endpoint_is_exactly_one_of_its_forms() -> None:
    uris = ["http://10.0.3.1/"]
    # One form valid, the other members not that form: oneOf holds (the schema's and ours).
    for endpoint in (
        {"uris": uris, "addresses": "not a list"},
        {"uris": uris, "alternative": None},
        {"uris": uris, "addresses": None},
    ):
        parsed = TransportInfo.model_validate(transport(endpoint))
        assert parsed.wire()["endpoint"] == {"uris": uris}
    # Two forms valid at once: none of them.
    for endpoint in (
        {"uris": uris, "addresses": []},
        {"uris": uris, "alternative": {}},
    ):
        with pytest.raises(ValidationError, match="exactly one of uris, addresses"):
            TransportInfo.model_validate(transport(endpoint))
    with pytest.raises(ValidationError):
        TransportInfo.model_validate(transport({"other": 1}))


def test_check_dns_rule_is_left_with_the_address_type() -> None:
    rule = DnsRule.model_validate(dns_rule(ipAddressType="IP_V6"))
    assert check_dns_rule(rule) == "dnsRule d1: ipAddress is IPv4, ipAddressType IPv6"
    built = DnsRule.model_construct(
        dns_rule_id="d1", domain_name="app.example", ip_address_type=IpAddressType.IP_V4,
        ip_address="::1", state=RuleState.ACTIVE,
    )  # fmt: skip
    assert check_dns_rule(built) == "dnsRule d1: ipAddress is IPv6, ipAddressType IPv4"
