"""``fluidedge demo --mec``'s pure parts: the platform network it picks, the example apps'
descriptors it deploys, and how it reads the consumer's report."""

from __future__ import annotations

import ipaddress
import json

import pytest

from fluidedge.demo import mec
from fluidedge.demo.model import DEMO_SERVICE_IP, Leftovers
from fluidedge.mec.descriptor import AppDescriptor
from fluidedge.mec.models import TrafficRule


def test_the_platform_network_avoids_the_hosts_networks_and_differs_by_prefix() -> None:
    first = mec.platform_net("demo", [], 8480)
    assert first.subnet.subnet_of(mec.PLATFORM_SUPERNET)
    assert first.subnet.prefixlen == 24
    assert first.address == f"{first.subnet[1]}/24"
    assert (first.network, first.bridge) == ("mec-demo", "demo-mp")
    # The subnet some host address is in is skipped.
    taken = mec.platform_net("demo", [ipaddress.IPv4Network(f"{first.subnet[9]}/32")], 1)
    assert taken.subnet != first.subnet
    assert not taken.subnet.overlaps(first.subnet)
    assert mec.platform_net("other7", [], 8480).subnet != first.subnet
    # A covering route leaves nothing free.
    with pytest.raises(ValueError, match="no free /24"):
        mec.platform_net("demo", [ipaddress.IPv4Network("10.0.0.0/8")], 1)


def test_names_follow_the_instance_and_interface_rules() -> None:
    net = mec.platform_net("Very_Long-Prefix", [], 1)
    assert net.network == "mec-verylong-prefix"
    assert len(net.bridge) <= 15


def test_host_networks_come_from_ip_json() -> None:
    text = json.dumps([
        {"ifname": "lo", "addr_info": [{"family": "inet", "local": "127.0.0.1", "prefixlen": 8}]},
        {"ifname": "eth0", "addr_info": [
            {"family": "inet", "local": "10.236.4.7", "prefixlen": 24},
            {"family": "inet6", "local": "fe80::1", "prefixlen": 64},
        ]},
    ])  # fmt: skip
    assert mec.host_networks(text) == [
        ipaddress.IPv4Network("127.0.0.0/8"),
        ipaddress.IPv4Network("10.236.4.0/24"),
    ]


def test_free_hosts_skip_the_taken_ones() -> None:
    got = mec.free_hosts("198.19.0.0/24", ["198.19.0.20", "198.19.0.1"], 2, start=20)
    assert got == ["198.19.0.21/24", "198.19.0.22/24"]
    with pytest.raises(ValueError, match="fewer than 3"):
        mec.free_hosts("198.19.0.0/29", [], 3, start=5)


def test_the_descriptors_are_the_examples_with_a_gateway_and_the_producers_rules() -> None:
    docs = mec.descriptors(
        {"producer": "198.19.0.20/24", "consumer": "198.19.0.21/24"}, "198.19.0.1"
    )
    for role, doc in docs.items():
        parsed = AppDescriptor.model_validate(doc)
        assert parsed.deploy is not None
        assert parsed.deploy.template == f"mec-{role}"
        assert parsed.deploy.data.gateway == "198.19.0.1"
        assert parsed.deploy.env == {"SER_NAME": mec.SERVICE}
    assert docs["consumer"].get("trafficRules") is None
    parsed_producer = AppDescriptor.model_validate(docs["producer"])
    (rule,) = docs["producer"]["trafficRules"]
    parsed_rule = TrafficRule.model_validate(rule)
    assert parsed_rule.traffic_rule_id == mec.RULE_ID
    assert rule["trafficFilter"] == [{"dstAddress": [f"{DEMO_SERVICE_IP}/32"]}]
    assert rule["action"] == "FORWARD_DECAPSULATED"
    # and the DNS rule naming the service address, which the whole descriptor accepts
    assert docs["consumer"].get("dnsRules") is None
    assert [(r.domain_name, r.ip_address) for r in parsed_producer.dns_rules] == [
        (mec.DNS_NAME, DEMO_SERVICE_IP)
    ]


def test_the_consumers_calls_page_is_parsed_and_reached_means_the_producers_answer() -> None:
    calls = mec.parse_calls("calls 7 failed 1 last producer 1234-ab\n")
    assert (calls.ok, calls.failed, calls.last) == (7, 1, "producer 1234-ab")
    assert mec.parse_calls("calls 3 failed 2 last \n").last == ""
    assert mec.parse_calls("404 Not Found") == mec.Calls()
    demo = mec.DemoMec(mec.platform_net("demo", [], 1))
    assert not demo.reached  # nothing deployed
    demo.apps["producer"] = {"appInstanceId": "1234-ab"}
    demo.page = "consumer: looking for greeting"
    assert not demo.reached
    demo.page = "consumer got: producer 1234-ab"
    assert demo.reached


def test_host_leftovers_make_the_teardown_unclean() -> None:
    found = Leftovers(host_checked=["bridge demo-mp"])
    assert found.clean
    found.host = ["bridge demo-mp"]
    assert not found.clean
