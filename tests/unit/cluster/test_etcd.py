"""The etcd JSON gateway codec and the cluster config's validation."""

from __future__ import annotations

import base64
import json

import pytest
from pydantic import ValidationError

from fluidedge.cluster.config import ClusterConfig
from fluidedge.cluster.etcd import decode_range, lease_alive, prefix_end, put_body, range_body


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def test_a_prefix_range_ends_after_the_last_byte_bumped() -> None:
    assert range_body("/fe/nodes/") == {"key": b64("/fe/nodes/"), "range_end": b64("/fe/nodes0")}
    assert base64.b64decode(prefix_end("a\xff")) == b"a\xc3\xc0"  # utf-8 bytes, last bumped
    assert base64.b64decode(prefix_end("")) == b"\0"


def test_put_and_range_round_trip() -> None:
    body = put_body("/k", {"b": 1, "a": [2]}, lease="42")
    assert body["lease"] == "42"
    answer = {
        "kvs": [
            {"key": body["key"], "value": body["value"]},
            {"key": b64("/bad"), "value": b64("not json")},
            {"key": b64("/list"), "value": b64(json.dumps([1]))},
        ]
    }
    assert decode_range(answer) == {"/k": {"a": [2], "b": 1}}
    assert decode_range({}) == {}


def test_an_expired_lease_has_no_ttl() -> None:
    assert lease_alive({"result": {"ID": "1", "TTL": "5"}})
    assert not lease_alive({"result": {"ID": "1"}})


def config(**more: object) -> ClusterConfig:
    base: dict[str, object] = {
        "etcd": "http://127.0.0.1:2379,http://10.0.0.2:2379",
        "node": "edge-1",
        "url": "http://10.0.0.1:8181",
        "token": "t" * 24,
    }
    return ClusterConfig.model_validate({**base, **more})


def test_config_validates_names_urls_and_timing() -> None:
    assert config().read_token() == "t" * 24
    for bad in (
        {"node": "Edge_1"},
        {"node": "a/../b"},
        {"url": "http://10.0.0.1:8181/v1"},
        {"etcd": "10.0.0.1:2379"},
        {"heartbeat": 3, "ttl": 5},
        {"token": None},
        {"token": "short"},
    ):
        with pytest.raises(ValidationError):
            config(**bad)


def test_the_token_from_a_file(tmp_path: object) -> None:
    from pathlib import Path

    path = Path(str(tmp_path)) / "token"
    path.write_text("s" * 20 + "\n")
    assert config(token=None, token_file=str(path)).read_token() == "s" * 20
    path.write_text("short")
    with pytest.raises(ValueError, match="shorter"):
        config(token=None, token_file=str(path)).read_token()
