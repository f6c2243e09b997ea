"""``fluidedge tenant ...``: tenants and their tokens (admin token), and ``fluidedge whoami``.

They talk to a running daemon like every API command (:mod:`fluidedge.core.client`: its Unix
socket or ``FLUIDEDGE_URL``, the token from ``FLUIDEDGE_TOKEN`` or the state directory's token
file). ``tenant token create`` prints the new token once: the daemon keeps only its hash.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from fluidedge.core.cliparts import JsonOpt, call, print_table


def _quota(
    instances: int | None,
    cpus: float | None,
    memory_mb: int | None,
    pids: int | None,
    caps: list[str] | None,
) -> dict[str, Any]:
    given = {"instances": instances, "cpus": cpus, "memory_mb": memory_mb, "pids": pids}
    quota: dict[str, Any] = {k: v for k, v in given.items() if v is not None}
    if caps is not None:
        quota["capabilities"] = caps
    return quota


Instances = Annotated[int | None, typer.Option(help="Quota: instances at once.")]
Cpus = Annotated[float | None, typer.Option(help="Quota: sum of CPU caps.")]
MemoryMb = Annotated[int | None, typer.Option(help="Quota: sum of memory limits (MiB).")]
Pids = Annotated[int | None, typer.Option(help="Quota: sum of pids limits.")]
Caps = Annotated[
    list[str] | None, typer.Option("--cap", help="Quota: allowed capability (repeatable).")
]


def register(app: typer.Typer) -> None:
    """Add ``tenant`` (with ``tenant token``) and ``whoami`` to the root app."""
    tenant = typer.Typer(help="Tenants: owners of instances, templates and networks (admin).")
    token = typer.Typer(help="A tenant's API tokens (shown once at creation, stored hashed).")
    tenant.add_typer(token, name="token")
    app.add_typer(tenant, name="tenant")

    @tenant.command("create")
    def create_command(  # noqa: PLR0917 (typer maps parameters to options)
        name: Annotated[str, typer.Argument(help="Tenant name (a-z0-9, <= 8 chars).")],
        description: Annotated[str, typer.Option(help="Free text.")] = "",
        instances: Instances = None,
        cpus: Cpus = None,
        memory_mb: MemoryMb = None,
        pids: Pids = None,
        cap: Caps = None,
    ) -> None:
        """Create a tenant (quota: the daemon's default, with the options given)."""
        body: dict[str, Any] = {"name": name, "description": description}
        quota = _quota(instances, cpus, memory_mb, pids, cap)
        if quota:
            body["quota"] = quota
        view = call("POST", "/v1/tenants", body)
        typer.echo(json.dumps(view, indent=2))

    @tenant.command("ls")
    def ls_command(as_json: JsonOpt = False) -> None:
        """List tenants with their quota and usage."""
        rows = call("GET", "/v1/tenants")
        if as_json:
            typer.echo(json.dumps(rows, indent=2))
            return
        print_table(
            "tenants",
            ["name", "tokens", "instances", "cpus", "memory MiB", "pids"],
            [
                [
                    r["name"],
                    str(r["tokens"]),
                    f"{r['usage']['instances']}/{r['quota']['instances']}",
                    f"{r['usage']['cpus']:g}/{r['quota']['cpus']:g}",
                    f"{r['usage']['memory_mb']}/{r['quota']['memory_mb']}",
                    f"{r['usage']['pids']}/{r['quota']['pids']}",
                ]
                for r in rows
            ],
        )

    @tenant.command("show")
    def show_command(name: str) -> None:
        """Show a tenant: quota, usage and what it owns (JSON)."""
        typer.echo(json.dumps(call("GET", f"/v1/tenants/{name}"), indent=2))

    @tenant.command("quota")
    def quota_command(  # noqa: PLR0917
        name: str,
        instances: Instances = None,
        cpus: Cpus = None,
        memory_mb: MemoryMb = None,
        pids: Pids = None,
        cap: Caps = None,
    ) -> None:
        """Change a tenant's quota (fields not given keep their value)."""
        current = call("GET", f"/v1/tenants/{name}")["quota"]
        current.update(_quota(instances, cpus, memory_mb, pids, cap))
        view = call("PATCH", f"/v1/tenants/{name}", {"quota": current})
        typer.echo(json.dumps(view["quota"], indent=2))

    @tenant.command("rm")
    def rm_command(name: str) -> None:
        """Delete a tenant that owns nothing any more (its tokens are revoked)."""
        call("DELETE", f"/v1/tenants/{name}")
        typer.echo(f"deleted {name}")

    @token.command("create")
    def token_create(
        name: Annotated[str, typer.Argument(help="Tenant.")],
        description: Annotated[str, typer.Option(help="Free text.")] = "",
    ) -> None:
        """Create a token for tenant NAME and print it (the only time it is shown)."""
        created = call("POST", f"/v1/tenants/{name}/tokens", {"description": description})
        typer.echo(created["token"])
        typer.echo(f"token id {created['id']} for tenant {name}", err=True)

    @token.command("ls")
    def token_ls(name: str, as_json: JsonOpt = False) -> None:
        """List tenant NAME's tokens (ids, never the tokens)."""
        rows = call("GET", f"/v1/tenants/{name}/tokens")
        if as_json:
            typer.echo(json.dumps(rows, indent=2))
            return
        print_table(
            f"tokens of {name}",
            ["id", "description", "created"],
            [[r["id"], r["description"], f"{r['created_at']:.0f}"] for r in rows],
        )

    @token.command("rm")
    def token_rm(name: str, token_id: str) -> None:
        """Revoke a token of tenant NAME."""
        call("DELETE", f"/v1/tenants/{name}/tokens/{token_id}")
        typer.echo(f"revoked {token_id}")

    @app.command("whoami")
    def whoami_command() -> None:
        """Who the daemon takes this client's token for (admin, tenant or anonymous)."""
        typer.echo(json.dumps(call("GET", "/v1/whoami"), indent=2))
