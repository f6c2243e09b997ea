"""``fluidedge app ...``: app instances on the ME platform and their Mp1 credentials.

Talks to a running daemon (its Unix socket or ``FLUIDEDGE_URL``; the token file or
``FLUIDEDGE_TOKEN``: see :mod:`fluidedge.core.client`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from fluidedge.core.cliparts import JsonOpt, call, print_table

COLUMNS = ["appInstanceId", "name", "tenant", "state", "dataAddress", "instance", "trafficRules",
           "dnsRules", "services"]  # fmt: skip


def _show(obj: Any, as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(obj, indent=2))
        return
    rows = obj if isinstance(obj, list) else [obj]
    print_table("apps", COLUMNS, [[str(r.get(c, "-") or "-") for c in COLUMNS] for r in rows])


def register(app: typer.Typer) -> None:
    apps = typer.Typer(help="App instances on the ME platform (Mp1, docs/me-platform.md).")
    app.add_typer(apps, name="app")

    @apps.command("ls")
    def ls(as_json: JsonOpt = False) -> None:
        """List app instances."""
        _show(call("GET", "/v1/apps"), as_json)

    @apps.command("show")
    def show(app_id: str, as_json: JsonOpt = False) -> None:
        """One app instance."""
        _show(call("GET", f"/v1/apps/{app_id}"), as_json)

    @apps.command("create")
    def create(
        descriptor: Annotated[
            Path, typer.Argument(help="The app descriptor, JSON (docs/me-platform.md).")
        ],
    ) -> None:
        """Create an app instance from a descriptor; print it with its Mp1 token (shown once)."""
        try:
            body = json.loads(descriptor.read_text())
        except (OSError, ValueError) as exc:
            raise typer.BadParameter(f"{descriptor}: {exc}") from None
        # a descriptor with deploy starts an instance (cold: seconds, more on a loaded host)
        typer.echo(json.dumps(call("POST", "/v1/apps", body, timeout=300), indent=2))

    @apps.command("rm")
    def rm(app_id: str) -> None:
        """Terminate an app instance (its termination subscribers are notified first)."""
        call("DELETE", f"/v1/apps/{app_id}", timeout=600)  # up to its graceful timeout
        typer.echo(f"deleted {app_id}")
