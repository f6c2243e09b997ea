"""Pure controller decisions: token bucket, admission, addresses, idle transitions."""

from __future__ import annotations

import ipaddress
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fluidedge.instances.models import NAME_PATTERN as INSTANCE_NAME
from fluidedge.tof.models import NAME_PATTERN as TOF_NAME
from fluidedge.tof.superfluid import policy
from fluidedge.tof.superfluid.model import OnDemand


def spec(**kw: object) -> OnDemand:
    base: dict[str, object] = {
        "template": "edge",
        "policy": "per-ue",
        "max_instances": 3,
        "idle_pause": 2.0,
        "idle_delete": 5.0,
        "address_pool": "198.19.0.64/30",
    }
    base.update(kw)
    return OnDemand(**base)  # type: ignore[arg-type]


def test_token_bucket_burst_then_rate() -> None:
    bucket = policy.TokenBucket(rate=10.0, burst=2)
    assert bucket.take(0.0) == 0.0
    assert bucket.take(0.0) == 0.0
    assert bucket.take(0.0) == pytest.approx(0.1)  # reserved: the third one in 100 ms
    bucket.give_back()
    assert bucket.take(0.2) == 0.0


def test_admission_bound_per_policy() -> None:
    assert policy.admit(spec(), 2) is None
    assert policy.admit(spec(), 3) == "max_instances"
    assert policy.admit(spec(policy="shared"), 1) == "max_instances"


def test_addresses_skip_used_and_run_out() -> None:
    s = spec()
    assert policy.pick_address(s, []) == "198.19.0.65"
    assert policy.pick_address(s, ["198.19.0.65"]) == "198.19.0.66"
    assert policy.pick_address(s, ["198.19.0.65", "198.19.0.66"]) is None


@given(
    st.sampled_from(["198.19.0.0", "10.1.2.0", "2001:db8::", "fd00:1::"]),
    st.integers(min_value=0, max_value=8),
    st.data(),
)
def test_pool_hosts_are_the_networks_hosts_without_the_gateway(
    base: str, host_bits: int, data: st.DataObject
) -> None:
    v6 = ":" in base
    network = ipaddress.ip_network(f"{base}/{(128 if v6 else 32) - host_bits}")
    every = list(network) if network.num_addresses <= 2 else list(network.hosts())
    gateway = data.draw(st.sampled_from([None, *map(str, every)]))
    s = spec(address_pool=str(network), gateway=gateway)
    assert list(s.pool_hosts()) == [str(a) for a in every if str(a) != gateway]


def test_a_large_pool_is_walked_only_as_far_as_the_first_free_address() -> None:
    """A /8 has 16.7 million hosts: listing them would take tens of seconds and gigabytes
    on every first packet; the pick looks at the used ones and one more."""
    s = spec(address_pool="10.0.0.0/8", gateway="10.0.0.1")
    assert policy.pick_address(s, ["10.0.0.2", "10.0.0.3"]) == "10.0.0.4"
    assert policy.pick_address(s, []) == "10.0.0.2"


def test_idle_actions() -> None:
    s = spec()
    assert policy.idle_action(s, "ready", 10.0, None, 11.9) is None
    assert policy.idle_action(s, "ready", 10.0, None, 12.0) == policy.PAUSE
    assert policy.idle_action(s, "paused", 10.0, 12.0, 16.9) is None
    assert policy.idle_action(s, "paused", 10.0, 12.0, 17.0) == policy.DELETE
    assert policy.idle_action(s, "pending", 0.0, None, 100.0) is None


def test_instances_invalidated_only_by_what_they_are() -> None:
    assert not policy.needs_new_instances(spec(), spec(idle_pause=9.0, max_instances=9))
    assert policy.needs_new_instances(spec(), spec(template="other"))
    assert policy.needs_new_instances(spec(), None)
    assert not policy.needs_new_instances(None, spec())


def test_token_bucket_grants_never_exceed_burst_plus_rate() -> None:
    import random

    rng = random.Random(7)
    bucket = policy.TokenBucket(rate=10.0, burst=3)
    now, grants = 0.0, []
    for _ in range(300):
        now += rng.choice([0.0, 0.0, 0.01, 0.05, 0.3, 1.0])
        grants.append(now + bucket.take(now))
    grants.sort()
    for i in range(len(grants)):
        for j in range(i + 3, min(len(grants), i + 40)):
            assert grants[j] - grants[i] >= (j - i + 1 - 3) / 10.0 - 1e-9


@given(
    service=st.from_regex(TOF_NAME, fullmatch=True),
    prefix=st.sampled_from(["", "acme-", "t1234567-"]),
)
def test_instance_names_are_valid_for_every_service_name(service: str, prefix: str) -> None:
    """A TOF service's name allows what an instance's does not; every one maps to a valid
    instance name that keeps the tenant prefix and the random suffix whole."""
    name = policy.instance_name(service, "0a1b2c3d", prefix)
    assert re.fullmatch(INSTANCE_NAME, name), name
    assert name.startswith(prefix)
    assert name.endswith("-0a1b2c3d")


def test_instance_names_read_like_their_service() -> None:
    assert policy.instance_name("web", "0a1b2c3d") == "web-0a1b2c3d"
    assert policy.instance_name("Video_Cache.v2", "0a1b2c3d") == "video-cache-v2-0a1b2c3d"
    assert policy.instance_name("5g-edge", "0a1b2c3d") == "s-5g-edge-0a1b2c3d"
    assert policy.instance_name("5g-edge", "0a1b2c3d", "acme-") == "acme-5g-edge-0a1b2c3d"
    assert policy.instance_name("___", "0a1b2c3d") == "svc-0a1b2c3d"
    assert len(policy.instance_name("a" * 63, "0a1b2c3d", "t1234567-")) == 32
