"""The one ``fluidedge`` command.

Each part contributes its sub-commands through a ``register(app)`` function in its own ``cli``
module, so this file only lists the parts.
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

import fluidedge
from fluidedge.errors import FluidedgeError

# Modules with a ``register(app: typer.Typer) -> None`` function, in --help order.
_PART_CLIS = (
    "fluidedge.demo",
    "fluidedge.daemon.cli",
    "fluidedge.codec.cli",
    "fluidedge.lab.cli",
    "fluidedge.tof.cli",
    "fluidedge.instances.cli",
    "fluidedge.secgroups.cli",
    "fluidedge.chains.cli",
    "fluidedge.mec.cli",
    "fluidedge.tenants.cli",
    "fluidedge.cat.cli",
    "fluidedge.measure.cli",
)

app = typer.Typer(
    name="fluidedge",
    help="Superfluid mobile-edge node: GTP-U traffic offloading and millisecond instances.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"fluidedge {fluidedge.__version__}")
        raise typer.Exit


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
    socket: Annotated[
        Path | None,
        typer.Option(
            "--socket",
            envvar="FLUIDEDGE_SOCKET",
            help="The daemon's Unix socket (default: <state dir>/api.sock when present).",
        ),
    ] = None,
    url: Annotated[
        str | None,
        typer.Option("--url", envvar="FLUIDEDGE_URL", help="The daemon's URL (TCP or HTTPS)."),
    ] = None,
    state_dir: Annotated[
        Path | None,
        typer.Option(
            "--state-dir",
            envvar="FLUIDEDGE_STATE_DIR",
            help="The daemon's state directory: its socket and token (default /var/lib/fluidedge).",
        ),
    ] = None,
) -> None:
    """fluidedge command line."""
    # The API clients of every part read these (fluidedge.core.client): set once, here.
    for name, value in (
        ("FLUIDEDGE_SOCKET", socket),
        ("FLUIDEDGE_URL", url),
        ("FLUIDEDGE_STATE_DIR", state_dir),
    ):
        if value is not None:
            os.environ[name] = str(value)


for _module in _PART_CLIS:
    importlib.import_module(_module).register(app)


def main() -> None:
    """Console entry point: fluidedge errors become one clear line and exit code 1."""
    try:
        app()
    except FluidedgeError as exc:
        typer.secho(f"fluidedge: {exc}", err=True, fg=typer.colors.RED)
        sys.exit(1)
