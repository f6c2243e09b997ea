"""``fluidedge cat ...``: classes of service of a running daemon (the ``[cat]`` part)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from fluidedge.core.cliparts import JsonOpt, call


def _classes(rows: list[dict[str, Any]], as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(
        "class",
        "schemata",
        "mode",
        "cpus",
        "tasks",
        "instances",
        "llc bytes",
        title="classes of service",
    )
    for row in rows:
        schemata = " ".join(
            f"{res}:" + ";".join(f"{d}={v}" for d, v in doms.items())
            for res, doms in row["schemata"].items()
        )
        llc = sum(
            v.get("llc_occupancy", 0)
            for v in row["monitoring"].values()
            if isinstance(v.get("llc_occupancy", 0), int)
        )
        table.add_row(
            row["name"],
            schemata,
            row["mode"],
            row["cpus"],
            str(row["tasks"]),
            ",".join(row["instances"]),
            str(llc) if row["monitoring"] else "-",
        )
    Console().print(table)


def register(app: typer.Typer) -> None:
    """Add ``cat`` to the root app."""
    cat = typer.Typer(help="Cache Allocation Technology: classes of service over resctrl.")
    app.add_typer(cat, name="cat")

    @cat.command("status")
    def status_command() -> None:
        """Whether this host supports CAT, what was checked, and its capabilities."""
        typer.echo(json.dumps(call("GET", "/v1/cat"), indent=2))

    @cat.command("ls")
    def ls_command(as_json: JsonOpt = False) -> None:
        """Classes of service as the kernel has them, with tasks and monitoring."""
        _classes(call("GET", "/v1/cat/classes"), as_json)

    @cat.command("create")
    def create_command(  # noqa: PLR0917 (typer maps parameters to options)
        name: Annotated[str, typer.Argument(help="Class name ('default': the root group).")],
        l3: Annotated[str | None, typer.Option(help="L3 capacity bitmask (hex).")] = None,
        l2: Annotated[str | None, typer.Option(help="L2 capacity bitmask (hex).")] = None,
        mb: Annotated[int | None, typer.Option(help="Memory bandwidth (percent).")] = None,
        cpus: Annotated[str | None, typer.Option(help="CPUs for the CPU-based mode.")] = None,
        exclusive: Annotated[bool, typer.Option(help="Mode 'exclusive'.")] = False,
        replace: Annotated[bool, typer.Option(help="Replace if it exists (PUT).")] = False,
        as_json: JsonOpt = False,
    ) -> None:
        """Create (or with --replace, change) a class of service."""
        body: dict[str, Any] = {"name": name, "exclusive": exclusive}
        for key, value in (("l3", l3), ("l2", l2), ("mb", mb), ("cpus", cpus)):
            if value is not None:
                body[key] = value
        if replace:
            _classes([call("PUT", f"/v1/cat/classes/{name}", body)], as_json)
        else:
            _classes([call("POST", "/v1/cat/classes", body)], as_json)

    @cat.command("rm")
    def rm_command(name: str) -> None:
        """Delete a class of service (409 while instances use it)."""
        call("DELETE", f"/v1/cat/classes/{name}")

    @cat.command("preset")
    def preset_command(
        model: Annotated[str, typer.Argument(help="11-1, 4-4-4, 3-3-3-3, 7-4-1 or 6-4-2.")],
        name: Annotated[list[str] | None, typer.Option(help="ROLE=CLASS (repeatable).")] = None,
        cpus: Annotated[list[str] | None, typer.Option(help="ROLE=CPUS (repeatable).")] = None,
        replace: Annotated[bool, typer.Option(help="Drop classes not in the model.")] = False,
        as_json: JsonOpt = False,
    ) -> None:
        """Lay one of the seed's CoS models on this host's L3 (rest = default group)."""

        def pairs(items: list[str] | None) -> dict[str, str]:
            out = {}
            for item in items or []:
                key, sep, value = item.partition("=")
                if not sep:
                    raise typer.BadParameter(f"{item!r}: want ROLE=VALUE")
                out[key] = value
            return out

        body = {"names": pairs(name), "cpus": pairs(cpus), "replace": replace}
        view = call("POST", f"/v1/cat/presets/{model}", body)
        if not as_json:
            typer.echo(f"model {view['model']}: ways {view['ways']}; rounding: {view['rounding']}")
        _classes(view["classes"], as_json)

    @cat.command("layout")
    def layout_command(
        path: Annotated[Path, typer.Argument(help="JSON file: {classes: [...], replace: bool}.")],
        as_json: JsonOpt = False,
    ) -> None:
        """Apply several classes at once, all or none."""
        view = call("POST", "/v1/cat/layout", json.loads(path.read_text()))
        _classes(view["classes"], as_json)

    @cat.command("reset")
    def reset_command(as_json: JsonOpt = False) -> None:
        """Remove every class, instances back to the default group, which gets every way."""
        _classes(call("POST", "/v1/cat/reset"), as_json)

    @cat.command("assign")
    def assign_command(instance: str, cos: str) -> None:
        """Move a running instance (all its tasks) into class COS."""
        typer.echo(
            json.dumps(
                call("POST", f"/v1/cat/classes/{cos}/instances", {"instance": instance}), indent=2
            )
        )

    @cat.command("unassign")
    def unassign_command(instance: str) -> None:
        """Move an instance's tasks back to the default group."""
        call("DELETE", f"/v1/cat/instances/{instance}")

    @cat.command("instances")
    def instances_command() -> None:
        """Instances in classes: tasks in the class, per-instance monitoring."""
        typer.echo(json.dumps(call("GET", "/v1/cat/instances"), indent=2))
