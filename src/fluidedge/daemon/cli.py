"""``fluidedge serve``, ``fluidedge state backup|restore|set-aside`` and
``fluidedge install-service``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help="Daemon TOML config (default: /etc/fluidedge/fluidedge.toml if it exists).",
    ),
]

SYSTEM_CONFIG = Path("/etc/fluidedge/fluidedge.toml")


def _config_path(config: Path | None) -> Path | None:
    if config is not None:
        return config
    return SYSTEM_CONFIG if SYSTEM_CONFIG.exists() else None


def _register_state(app: typer.Typer) -> None:
    state = typer.Typer(
        help="The daemon's store: online backup, offline restore, the rows set aside."
    )
    app.add_typer(state, name="state")

    @state.command("backup")
    def backup_command(
        file: Annotated[Path, typer.Argument(help="Backup file to write (mode 0600).")],
        config: ConfigOpt = None,
    ) -> None:
        """Copy the store into FILE (SQLite online backup; safe while the daemon runs)."""
        from fluidedge.core.config import load_config
        from fluidedge.core.store import backup

        daemon = load_config(_config_path(config))
        backup(daemon.store_path, file)
        typer.echo(f"backed up {daemon.store_path} to {file} ({file.stat().st_size} bytes)")

    @state.command("set-aside")
    def set_aside_command(
        config: ConfigOpt = None,
        as_json: Annotated[bool, typer.Option("--json", help="One JSON document.")] = False,
        drop: Annotated[
            list[int] | None,
            typer.Option(
                "--drop",
                min=1,
                help="Forget the row set aside with this id, through the running daemon "
                "(repeatable): its object is declared again, or gone.",
            ),
        ] = None,
    ) -> None:
        """The rows the daemon could not read back and set aside at a start (read-only; safe
        while the daemon runs). Declare each object again from what it held, then --drop it."""
        import json
        import sqlite3

        from fluidedge.core.config import load_config
        from fluidedge.core.rows import listing

        if drop:
            from fluidedge.core.cliparts import call

            for ident in drop:
                gone = call("DELETE", f"/v1/store/set-aside/{ident}")
                typer.echo(f"dropped #{ident}: table {gone['source']}, row {gone['key']}")
            return

        daemon = load_config(_config_path(config))
        if not daemon.store_path.exists():
            raise typer.BadParameter(f"no store at {daemon.store_path}", param_hint="--config")
        conn = sqlite3.connect(f"{daemon.store_path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            found = listing(conn)
        finally:
            conn.close()
        if as_json:
            typer.echo(json.dumps([vars(row) for row in found], indent=2))
            return
        if not found:
            typer.echo("no row set aside")
        for row in found:
            typer.echo(f"#{row.id} {row.at} table {row.source}, row {row.key}: {row.reason}")
            typer.echo(f"    {json.dumps(row.row, sort_keys=True)}")

    @state.command("restore")
    def restore_command(
        file: Annotated[Path, typer.Argument(help="A file written by `fluidedge state backup`.")],
        config: ConfigOpt = None,
    ) -> None:
        """With the daemon STOPPED: replace its store by FILE (the current one is kept aside)."""
        from fluidedge.core.config import load_config
        from fluidedge.core.lock import StateLock
        from fluidedge.core.store import restore

        daemon = load_config(_config_path(config))
        with StateLock(daemon.state_dir, "state restore"):
            moved = restore(file, daemon.store_path)
        typer.echo(f"restored {daemon.store_path} from {file}")
        for path in moved:
            typer.echo(f"previous store kept as {path}")
        typer.echo(
            "start the daemon: it serves the backup's state and re-adopts the instances it "
            "names; workloads started after the backup are kept and listed by "
            "`fluidedge pool orphans`"
        )


def register(app: typer.Typer) -> None:
    @app.command("serve")
    def serve_command(
        config: Annotated[
            Path | None, typer.Option("--config", "-c", help="Daemon TOML config.")
        ] = None,
        log_level: Annotated[str, typer.Option(help="Log level (uvicorn and fluidedge).")] = (
            "info"
        ),
        reset_store: Annotated[
            bool,
            typer.Option(
                "--reset-store",
                help="If the store is damaged or missing, start EMPTY on purpose (the damaged "
                "files are moved aside, not deleted). A healthy store is kept.",
            ),
        ] = False,
    ) -> None:
        """Run the fluidedge daemon (REST API, Swagger UI at /docs)."""
        from fluidedge.daemon.serve import serve

        serve(config, log_level=log_level, reset_store=reset_store)

    @app.command("kernel-modules")
    def kernel_modules_command(config: ConfigOpt = None) -> None:
        """Load the kernel modules the configured parts need (the unit runs it before the
        daemon, with the privilege the daemon's sandbox does not have)."""
        from fluidedge.core.config import load_config
        from fluidedge.daemon.modules import load, needed

        modules = needed(load_config(_config_path(config)))
        failed = load(modules)
        for module in modules:
            typer.echo(f"{module}: {'failed: ' + failed[module] if module in failed else 'loaded'}")
        if failed:
            raise typer.Exit(1)

    @app.command("install-service")
    def install_service_command(
        root: Annotated[
            Path, typer.Option(help="Install under this root (packaging, tests).")
        ] = Path("/"),
        overwrite_config: Annotated[
            bool, typer.Option(help="Replace an existing /etc/fluidedge/fluidedge.toml.")
        ] = False,
        print_unit: Annotated[
            bool, typer.Option("--print", help="Print the unit instead of installing it.")
        ] = False,
    ) -> None:
        """Install the systemd unit, a default config and the state directory."""
        import sys

        from fluidedge.daemon.service import ServicePaths, install, render_unit

        if print_unit:
            typer.echo(render_unit(sys.executable), nl=False)
            return
        for path in install(ServicePaths(root=root), overwrite_config=overwrite_config):
            typer.echo(f"wrote {path}")
        typer.echo("then: systemctl daemon-reload && systemctl enable --now fluidedge")

    _register_state(app)
