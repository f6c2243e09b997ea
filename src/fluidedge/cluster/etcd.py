"""A small etcd v3 client over its JSON gateway (``/v3/...``, etcd 3.4+), with httpx.

The codec is pure (:func:`encode_key`, :func:`prefix_end`, :func:`decode_range`, the request
bodies); :class:`Etcd` sends them, trying the endpoints in turn when one cannot be reached
(an etcd member forwards to its leader by itself). Values are JSON objects.
"""

from __future__ import annotations

import base64
import json
import ssl
import threading
from typing import Any

import httpx

from fluidedge.cluster.errors import ClusterFailure

JsonObject = dict[str, Any]


def b64(raw: str | bytes) -> str:
    data = raw.encode() if isinstance(raw, str) else raw
    return base64.b64encode(data).decode()


def unb64(text: str) -> bytes:
    return base64.b64decode(text)


def prefix_end(prefix: str) -> str:
    """The ``range_end`` that makes a range of every key starting with ``prefix``."""
    data = bytearray(prefix.encode())
    for i in range(len(data) - 1, -1, -1):
        if data[i] < 0xFF:
            data[i] += 1
            return b64(bytes(data[: i + 1]))
    return b64(b"\0")  # every key


def put_body(key: str, value: JsonObject, lease: str | None = None) -> JsonObject:
    body: JsonObject = {"key": b64(key), "value": b64(json.dumps(value, sort_keys=True))}
    if lease is not None:
        body["lease"] = lease
    return body


def range_body(prefix: str) -> JsonObject:
    return {"key": b64(prefix), "range_end": prefix_end(prefix)}


def decode_range(answer: JsonObject) -> dict[str, JsonObject]:
    """``key -> value`` of a range answer (values that are not JSON objects are skipped)."""
    found: dict[str, JsonObject] = {}
    for kv in answer.get("kvs", []):
        key = unb64(kv["key"]).decode()
        try:
            value = json.loads(unb64(kv.get("value", "")))
        except ValueError:
            continue
        if isinstance(value, dict):
            found[key] = value
    return found


def decode_revisions(answer: JsonObject) -> dict[str, tuple[JsonObject, str]]:
    """``key -> (value, mod_revision)`` of a range answer (JSON objects only)."""
    found: dict[str, tuple[JsonObject, str]] = {}
    for kv in answer.get("kvs", []):
        try:
            value = json.loads(unb64(kv.get("value", "")))
        except ValueError:
            continue
        if isinstance(value, dict):
            found[unb64(kv["key"]).decode()] = (value, str(kv.get("mod_revision", "0")))
    return found


def swap_body(key: str, revision: str, value: JsonObject) -> JsonObject:
    """A transaction that puts ``value`` only if ``key`` is still at ``revision``."""
    return {
        "compare": [
            {"key": b64(key), "target": "MOD", "result": "EQUAL", "mod_revision": revision}
        ],
        "success": [{"request_put": put_body(key, value)}],
    }


def lease_alive(answer: JsonObject) -> bool:
    """Whether a keepalive answer says the lease still lives (an expired one has no TTL)."""
    result = answer.get("result", answer)
    return int(result.get("TTL", 0) or 0) > 0


class Etcd:
    """The calls the cluster part makes (blocking: call from threads)."""

    def __init__(
        self, endpoints: str, timeout: float = 3.0, verify: ssl.SSLContext | bool = True
    ) -> None:
        """``verify``: for ``https://`` endpoints, the context with the CA that signed the
        members' certificates and this node's client certificate (``True``: system CAs)."""
        self.endpoints = endpoints.split(",")
        self._current = 0
        self._lock = threading.Lock()
        self._http = httpx.Client(timeout=timeout, verify=verify)

    def close(self) -> None:
        self._http.close()

    def call(self, path: str, body: JsonObject) -> JsonObject:
        errors: list[str] = []
        for step in range(len(self.endpoints)):
            with self._lock:
                index = (self._current + step) % len(self.endpoints)
            url = self.endpoints[index]
            try:
                response = self._http.post(f"{url}/v3/{path}", json=body)
            except httpx.HTTPError as exc:
                errors.append(f"{url}: {exc}")
                continue
            with self._lock:
                self._current = index
            answer: JsonObject = response.json() if response.content else {}
            if response.status_code >= 400 or "error" in answer:
                raise ClusterFailure(f"etcd {path}: {answer.get('message', response.text)}")
            return answer
        raise ClusterFailure(f"etcd unreachable: {'; '.join(errors)}")

    def put(self, key: str, value: JsonObject, lease: str | None = None) -> None:
        self.call("kv/put", put_body(key, value, lease))

    def get_prefix(self, prefix: str) -> dict[str, JsonObject]:
        return decode_range(self.call("kv/range", range_body(prefix)))

    def get_revisions(self, prefix: str) -> dict[str, tuple[JsonObject, str]]:
        return decode_revisions(self.call("kv/range", range_body(prefix)))

    def swap(self, key: str, revision: str, value: JsonObject) -> bool:
        """Compare-and-swap: put ``value`` if ``key`` is still at ``revision``; whether it was."""
        return bool(self.call("kv/txn", swap_body(key, revision, value)).get("succeeded"))

    def delete(self, key: str) -> None:
        self.call("kv/deleterange", {"key": b64(key)})

    def grant(self, ttl: int) -> str:
        return str(self.call("lease/grant", {"TTL": ttl})["ID"])

    def keepalive(self, lease: str) -> bool:
        """Renew ``lease``; False if it had expired (it cannot be renewed then)."""
        return lease_alive(self.call("lease/keepalive", {"ID": lease}))

    def revoke(self, lease: str) -> None:
        self.call("lease/revoke", {"ID": lease})
