"""What the parts' CLI commands share: the ``--json`` option, one call to the running daemon,
and a rich table.

The commands talk to a daemon like every API client (:mod:`fluidedge.core.client`: its Unix
socket or ``FLUIDEDGE_URL``, the token from ``FLUIDEDGE_TOKEN`` or the state directory's file).
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

__all__ = ["JsonOpt", "call", "print_table"]

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def call(method: str, path: str, body: Any = None, *, timeout: float = 30.0) -> Any:
    """One request to the running daemon; its answer decoded (a ClientError on failure)."""
    from fluidedge.core.client import Client  # noqa: PLC0415 (httpx only when called)

    client = Client(timeout=timeout)
    try:
        return client.request(method, path, body)
    finally:
        client.close()


def print_table(title: str, columns: list[str], rows: list[list[str]]) -> None:
    from rich.console import Console  # noqa: PLC0415 (rich only when printing)
    from rich.table import Table  # noqa: PLC0415

    table = Table(*columns, title=title)
    for row in rows:
        table.add_row(*row)
    Console().print(table)
