"""The Measurements pages: runs made by ``fluidedge bench`` under ``[gui] runs_dir``."""

import json
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from markupsafe import Markup

from fluidedge.gui.session import (
    Session,
)
from fluidedge.gui.web import RUN_FILES, Ui
from fluidedge.measure import rundir
from fluidedge.measure.report import render_results


def add_routes(router: APIRouter, ui: Ui) -> None:
    render, call, config = ui.render, ui.call, ui.config
    PageSession = Annotated[Session, Depends(ui.page_session)]

    # ------------------------------------------------------------------ measurements

    def runs() -> dict[str, tuple[str, Path]]:
        return {path.name: (kind, path) for kind, path in rundir.run_dirs(config.runs_dir)}

    @router.get("/measurements")
    async def measurements_page(request: Request, session: PageSession) -> Response:
        listing = []
        for name, (kind, path) in sorted((await call(runs)).items(), reverse=True):
            results = _read_results(path)
            listing.append(
                {
                    "name": name,
                    "kind": kind,
                    "created": results.get("created", ""),
                    "elapsed": results.get("elapsed_s"),
                    "figures": len(results.get("figures", [])),
                    "interrupted": bool(results.get("interrupted")),
                }
            )
        return render(
            request,
            session,
            "measurements.html",
            active="measurements",
            runs=listing,
            root=str(config.runs_dir.resolve()),
        )

    @router.get("/measurements/{run}")
    async def run_page(request: Request, run: str, session: PageSession) -> Response:
        found = (await call(runs)).get(run)
        if found is None:
            raise HTTPException(404, f"no run {run!r} under {config.runs_dir}")
        kind, path = found
        results = _read_results(path)
        title, tables = render_results(kind, results)
        files = sorted(f.name for f in path.iterdir() if f.is_file() and f.suffix in RUN_FILES)
        figures = [f for f in results.get("figures", []) if f in files]
        return render(
            request,
            session,
            "run.html",
            active="measurements",
            run=run,
            kind=kind,
            title=title,
            tables=Markup(tables),  # noqa: S704 - measure.report escapes every value
            results=results,
            figures=figures,
            files=files,
            config_text=json.dumps(results.get("config"), indent=2, default=str),
        )

    @router.get("/measurements/{run}/files/{name}")
    async def run_file(run: str, name: str, session: PageSession) -> Response:
        found = runs().get(run)
        if found is None:
            raise HTTPException(404, "no such run")
        path = found[1]
        listed = {f.name: f for f in path.iterdir() if f.is_file() and f.suffix in RUN_FILES}
        if name not in listed:  # names are looked up, never joined: no traversal
            raise HTTPException(404, "no such file in this run")
        media = RUN_FILES[listed[name].suffix]
        headers = {"Content-Disposition": f'inline; filename="{name}"'}
        return Response(listed[name].read_bytes(), media_type=media, headers=headers)


def _read_results(path: Path) -> dict[str, Any]:
    try:
        data = rundir.read_json(path / "results.json")
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
