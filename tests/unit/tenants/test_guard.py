"""The bearer-token guard with tenant tokens: who a header is, and where a tenant token may go."""

from __future__ import annotations

import pytest

from fluidedge.core.auth import Presented, TokenGuard

ADMIN_TOKEN = "admin-token-" + "x" * 20
TENANTS = {"fet_0123456789ab.secret": "acme"}


def _guard() -> TokenGuard:
    return TokenGuard(ADMIN_TOKEN, open_reads=True, tenant_resolver=TENANTS.get)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, (Presented.NONE, None)),
        (f"Bearer {ADMIN_TOKEN}".encode(), (Presented.TOKEN, None)),
        (b"Bearer fet_0123456789ab.secret", (Presented.TENANT, "acme")),
        (b"bearer   fet_0123456789ab.secret ", (Presented.TENANT, "acme")),
        (b"Bearer fet_0123456789ab.wrong", (Presented.INVALID, None)),
        (b"Basic fet_0123456789ab.secret", (Presented.INVALID, None)),
        (b"Bearer \xff\xfe", (Presented.INVALID, None)),
    ],
)
def test_identify(header: bytes | None, expected: tuple[Presented, str | None]) -> None:
    assert _guard().identify(header) == expected


def test_without_a_resolver_a_tenant_token_is_invalid() -> None:
    guard = TokenGuard(ADMIN_TOKEN, open_reads=True)
    assert guard.identify(b"Bearer fet_0123456789ab.secret") == (Presented.INVALID, None)


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("GET", "/v1/instances", True),
        ("POST", "/v1/instances/acme-a/pause", True),
        ("DELETE", "/v1/templates/acme-t", True),
        ("POST", "/v1/networks", True),
        ("GET", "/v1/security-groups/acme-g", True),
        ("GET", "/v1/whoami", True),
        ("GET", "/healthz", True),
        ("GET", "/openapi.json", True),
        ("GET", "/docs", True),
        ("POST", "/openapi.json", False),
        ("GET", "/v1/instancesx", False),
        ("GET", "/v1/tenants", False),
        ("POST", "/v1/tenants/acme/tokens", False),
        ("GET", "/v1/pools", False),
        ("DELETE", "/v1/orphans", False),
        ("GET", "/v1/stats", False),
        ("GET", "/metrics", False),
        ("POST", "/service", False),
        ("GET", "/v1/cat/classes", False),
        ("GET", "/ui/", False),
    ],
)
def test_tenant_routes(method: str, path: str, allowed: bool) -> None:
    assert TokenGuard.tenant_may(method, path) is allowed
