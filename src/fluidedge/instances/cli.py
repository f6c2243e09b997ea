"""``fluidedge instance|template|network ...`` and ``fluidedge pool``: the instance manager's CLI.

They talk to a running daemon (its Unix socket or ``FLUIDEDGE_URL``; the token file or
``FLUIDEDGE_TOKEN``: see :mod:`fluidedge.core.client`), except
``fluidedge pool purge`` which works offline on a stopped daemon's state.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import parse_qs, urlencode, urlsplit

import typer

from fluidedge.core.paging import MAX_PAGE

if TYPE_CHECKING:
    from fluidedge.core.client import Client

# ``instance ls`` fetches the list this many at a time (each answer stays small).
LS_PAGE = 500
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


class _Api:
    """One short-lived client per call (closed right away: no sockets left behind)."""

    @staticmethod
    @contextmanager
    def _client() -> Iterator[Client]:
        from fluidedge.core.client import Client

        client = Client()
        try:
            yield client
        finally:
            client.close()

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        with self._client() as client:
            return client.request(method, path, body)

    def get(self, path: str) -> Any:
        return self._call("GET", path)

    def post(self, path: str, body: Any = None) -> Any:
        return self._call("POST", path, body)

    def delete(self, path: str) -> Any:
        return self._call("DELETE", path)

    def page(self, path: str) -> tuple[list[Any], str | None]:
        with self._client() as client:
            return client.page(path)

    def pages(self, path: str, limit: int) -> Iterator[list[Any]]:
        with self._client() as client:
            yield from client.pages(path, limit)


def _client() -> _Api:
    return _Api()


def _pairs(items: list[str], what: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"{what} {item!r}: want KEY=VALUE")
        out[key] = value
    return out


def _table(title: str, columns: list[str], rows: list[list[str]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(*columns, title=title)
    for row in rows:
        table.add_row(*row)
    Console().print(table)


def _instances(rows: list[dict[str, Any]], as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    _table(
        "instances",
        ["name", "template", "state", "path", "cpus", "addresses", "total ms"],
        [
            [
                r["name"],
                r["template"],
                r["state"],
                r["path"],
                ",".join(str(c) for c in r["cpus"]),
                " ".join(a for i in r["interfaces"] for a in i["addresses"]),
                f"{r['timing']['total']:.2f}",
            ]
            for r in rows
        ],
    )


def _register_instance(app: typer.Typer) -> None:
    instance = typer.Typer(help="Superfluid instances (runc containers from prepared shells).")
    app.add_typer(instance, name="instance")

    @instance.command("run")
    def run_command(  # noqa: PLR0917 (typer maps parameters to options)
        template: Annotated[str, typer.Argument(help="Template to instantiate.")],
        name: Annotated[str, typer.Argument(help="Instance name.")],
        addr: Annotated[
            list[str] | None, typer.Option(help="IFACE=ADDRESS/PREFIX (repeatable).")
        ] = None,
        gateway: Annotated[list[str] | None, typer.Option(help="IFACE=GATEWAY.")] = None,
        env: Annotated[list[str] | None, typer.Option(help="KEY=VALUE (repeatable).")] = None,
        label: Annotated[list[str] | None, typer.Option(help="KEY=VALUE (repeatable).")] = None,
        affinity: Annotated[list[str] | None, typer.Option(help="Share CPUs with label.")] = None,
        anti_affinity: Annotated[list[str] | None, typer.Option(help="Avoid label's CPUs.")] = None,
        cpus: Annotated[float | None, typer.Option(help="CPU request.")] = None,
        memory_mb: Annotated[int | None, typer.Option(help="Memory limit (MiB).")] = None,
        placement: Annotated[str | None, typer.Option(help="spread or pack.")] = None,
        cold: Annotated[bool, typer.Option(help="Skip the pool.")] = False,
        no_wait: Annotated[bool, typer.Option(help="Do not wait for readiness.")] = False,
        cos: Annotated[str | None, typer.Option(help="Class of service (CAT).")] = None,
        restart: Annotated[
            str | None,
            typer.Option(
                help="always: made again when its workload is gone; no (default: the template's)."
            ),
        ] = None,
        as_json: JsonOpt = False,
    ) -> None:
        """Create an instance of TEMPLATE named NAME; prints its per-phase timing."""
        interfaces: dict[str, dict[str, Any]] = {}
        for iface, address in _pairs(addr or [], "--addr").items():
            interfaces.setdefault(iface, {"addresses": []})["addresses"].append(address)
        for iface, gw in _pairs(gateway or [], "--gateway").items():
            interfaces.setdefault(iface, {"addresses": []})["gateway"] = gw
        resources = {
            k: v for k, v in {"cpus": cpus, "memory_mb": memory_mb}.items() if v is not None
        }
        body: dict[str, Any] = {
            "name": name,
            "template": template,
            "interfaces": interfaces,
            "env": _pairs(env or [], "--env"),
            "labels": _pairs(label or [], "--label"),
            "affinity": affinity or [],
            "anti_affinity": anti_affinity or [],
            "resources": resources,
            "cold": cold,
            "wait_ready": not no_wait,
        }
        if placement:
            body["placement"] = placement
        if cos:
            body["cos"] = cos
        if restart:
            body["restart"] = restart
        view = _client().post("/v1/instances", body)
        if as_json:
            typer.echo(json.dumps(view, indent=2))
            return
        _instances([view], False)
        typer.echo(
            "timing (ms): "
            + "  ".join(f"{phase}={value:.3f}" for phase, value in view["timing"].items())
        )

    @instance.command("ls")
    def ls_command(
        as_json: JsonOpt = False,
        limit: Annotated[
            int | None,
            typer.Option(min=1, max=MAX_PAGE, help="One page of at most this many, by name."),
        ] = None,
        after: Annotated[
            str | None, typer.Option(help="Only instances whose name sorts after this one.")
        ] = None,
    ) -> None:
        """List instances (all of them, fetched a page at a time, unless --limit)."""
        path = "/v1/instances" + (f"?{urlencode({'after': after})}" if after else "")
        client = _client()
        if limit is None:
            rows = [row for page in client.pages(path, LS_PAGE) for row in page]
            _instances(rows, as_json)
            return
        rows, more = client.page(f"{path}{'&' if after else '?'}limit={limit}")
        _instances(rows, as_json)
        if more is not None:
            marker = parse_qs(urlsplit(more).query).get("after", [""])[0]
            typer.echo(f"more: --after {marker}", err=True)

    @instance.command("show")
    def show_command(name: str) -> None:
        """Show one instance (JSON, with its timing breakdown)."""
        typer.echo(json.dumps(_client().get(f"/v1/instances/{name}"), indent=2))

    @instance.command("rm")
    def rm_command(names: Annotated[list[str], typer.Argument(help="Instances.")]) -> None:
        """Delete instances (container, cgroups, veths, addresses)."""
        client = _client()
        for name in names:
            client.delete(f"/v1/instances/{name}")
            typer.echo(f"deleted {name}")

    @instance.command("pause")
    def pause_command(name: str) -> None:
        """Freeze an instance (freezer cgroup)."""
        view = _client().post(f"/v1/instances/{name}/pause")
        typer.echo(f"{name} {view['state']} in {view['op_ms']:.3f} ms")

    @instance.command("resume")
    def resume_command(name: str) -> None:
        """Thaw a paused instance."""
        view = _client().post(f"/v1/instances/{name}/resume")
        typer.echo(f"{name} {view['state']} in {view['op_ms']:.3f} ms")

    @instance.command("logs")
    def logs_command(name: str) -> None:
        """Print an instance's stdout/stderr."""
        typer.echo(_client().get(f"/v1/instances/{name}/logs"), nl=False)


def _load_document(path: Path) -> Any:
    text = path.read_text()
    if path.suffix == ".toml":
        return tomllib.loads(text)
    return json.loads(text)


def _register_template(app: typer.Typer) -> None:
    template = typer.Typer(help="Instance templates (what runs, resources, pool policy).")
    app.add_typer(template, name="template")

    @template.command("create")
    def create_command(
        path: Annotated[Path, typer.Argument(help="Template as JSON or TOML.", exists=True)],
    ) -> None:
        """Register a template from a file."""
        spec = _client().post("/v1/templates", _load_document(path))
        typer.echo(f"template {spec['name']} created")

    @template.command("ls")
    def ls_command(as_json: JsonOpt = False) -> None:
        """List templates."""
        rows = _client().get("/v1/templates")
        if as_json:
            typer.echo(json.dumps(rows, indent=2))
            return
        _table(
            "templates",
            ["name", "command", "cpus", "memory MiB", "pool", "interfaces"],
            [
                [
                    r["name"],
                    " ".join(r["command"])[:40],
                    str(r["resources"]["cpus"]),
                    str(r["resources"]["memory_mb"]),
                    str(r["pool"]["size"]),
                    " ".join(f"{i['name']}@{i['network']}" for i in r["interfaces"]),
                ]
                for r in rows
            ],
        )

    @template.command("show")
    def show_command(name: str) -> None:
        """Show a template (JSON)."""
        typer.echo(json.dumps(_client().get(f"/v1/templates/{name}"), indent=2))

    @template.command("rm")
    def rm_command(name: str) -> None:
        """Delete a template (refused while instances use it)."""
        _client().delete(f"/v1/templates/{name}")
        typer.echo(f"template {name} deleted")


def _register_image(app: typer.Typer) -> None:
    image = typer.Typer(help="OCI images instances run on (imported from local files only).")
    app.add_typer(image, name="image")

    @image.command("import")
    def import_command(
        source: Annotated[Path, typer.Argument(help="OCI layout directory or archive file.")],
        name: Annotated[str, typer.Option("--name", help="Name to import it as.")],
        fmt: Annotated[
            str,
            typer.Option(
                "--format", help="oci (a layout directory), oci-archive or docker-archive."
            ),
        ] = "oci",
        ref: Annotated[
            str | None,
            typer.Option(
                "--ref",
                help="Which image, when it holds several: a tag (OCI); NAME:TAG or @INDEX "
                "(docker-archive).",
            ),
        ] = None,
    ) -> None:
        """Import an image (from `docker save`, `podman save`, `skopeo copy`, umoci...)."""
        body = {"name": name, "source": str(source.resolve()), "format": fmt, "ref": ref}
        view = _client().post("/v1/images", body)
        typer.echo(f"image {view['name']} imported (rootfs {view['rootfs'][:19]})")

    @image.command("ls")
    def ls_command(as_json: JsonOpt = False) -> None:
        """List images."""
        rows = _client().get("/v1/images")
        if as_json:
            typer.echo(json.dumps(rows, indent=2))
            return
        _table(
            "images",
            ["name", "rootfs", "command", "user", "ports", "MiB"],
            [
                [
                    r["name"],
                    r["rootfs"][7:19],
                    " ".join(r["config"]["entrypoint"] + r["config"]["cmd"])[:40],
                    f"{r['uid']}:{r['gid']}",
                    ",".join(str(p) for p in r["config"]["ports"]),
                    f"{r['size_bytes'] / 2**20:.1f}",
                ]
                for r in rows
            ],
        )

    @image.command("rm")
    def rm_command(name: str) -> None:
        """Remove an image (refused while templates or instances use it)."""
        _client().delete(f"/v1/images/{name}")
        typer.echo(f"image {name} removed")


def _register_network(app: typer.Typer) -> None:
    network = typer.Typer(
        help="Instance networks (Linux or Open vSwitch bridges the daemon manages)."
    )
    app.add_typer(network, name="network")

    @network.command("create")
    def create_command(
        name: str,
        bridge: Annotated[str, typer.Option(help="Bridge name (created if missing).")],
        netns: Annotated[str | None, typer.Option(help="Namespace of the bridge.")] = None,
        subnet: Annotated[str | None, typer.Option(help="Addresses must be inside.")] = None,
        driver: Annotated[
            str,
            typer.Option(
                help="linuxbridge (Linux bridge), ovs (our Open vSwitch), ovn (logical switch)."
            ),
        ] = "linuxbridge",
    ) -> None:
        """Create (or adopt) a bridge as network NAME."""
        body = {
            "name": name,
            "bridge": bridge,
            "netns": netns,
            "subnet": subnet,
            "driver": driver,
        }
        _client().post("/v1/networks", body)
        typer.echo(f"network {name} ready on bridge {bridge}")

    @network.command("ls")
    def ls_command() -> None:
        """List networks."""
        rows = _client().get("/v1/networks")
        _table(
            "networks",
            ["name", "driver", "bridge", "netns", "subnet"],
            [
                [
                    r["name"],
                    r.get("driver", "linuxbridge"),
                    r["bridge"],
                    r["netns"] or "-",
                    r["subnet"] or "-",
                ]
                for r in rows
            ],
        )

    @network.command("rm")
    def rm_command(name: str) -> None:
        """Delete a network (refused while templates use it)."""
        _client().delete(f"/v1/networks/{name}")
        typer.echo(f"network {name} deleted")


def _register_router(app: typer.Typer) -> None:
    router = typer.Typer(help="Logical routers between ovn networks (nodes joined by OVN).")
    app.add_typer(router, name="router")

    @router.command("create")
    def create_command(
        name: str,
        leg: Annotated[
            list[str],
            typer.Option(help="NETWORK=ADDRESS/PREFIX: the router's address on a network."),
        ],
    ) -> None:
        """Create router NAME joining the networks of its --leg options."""
        interfaces = []
        for item in leg:
            network, sep, address = item.partition("=")
            if not sep:
                raise typer.BadParameter(f"{item!r}: expected NETWORK=ADDRESS/PREFIX")
            interfaces.append({"network": network, "address": address})
        _client().post("/v1/routers", {"name": name, "interfaces": interfaces})
        typer.echo(f"router {name} joins {', '.join(i['network'] for i in interfaces)}")

    @router.command("ls")
    def ls_command() -> None:
        """List routers."""
        rows = _client().get("/v1/routers")
        _table(
            "routers",
            ["name", "network", "address", "mac"],
            [
                [r["name"], i["network"], i["address"], i["mac"]]
                for r in rows
                for i in r["interfaces"]
            ],
        )

    @router.command("rm")
    def rm_command(name: str) -> None:
        """Delete a router."""
        _client().delete(f"/v1/routers/{name}")
        typer.echo(f"router {name} deleted")


def _register_pool(app: typer.Typer) -> None:
    pool = typer.Typer(
        help="Pools of prepared shells: status, and offline purge.", invoke_without_command=True
    )
    app.add_typer(pool, name="pool")

    @pool.callback()
    def status_command(ctx: typer.Context, as_json: JsonOpt = False) -> None:
        """Show pool status per template (ready, in preparation, consumed)."""
        if ctx.invoked_subcommand is not None:
            return
        rows = _client().get("/v1/pools")
        if as_json:
            typer.echo(json.dumps(rows, indent=2))
            return
        _table(
            "pools",
            ["template", "target", "ready", "preparing", "consumed", "failures", "last error"],
            [
                [
                    r["template"],
                    str(r["target"]),
                    str(r["ready"]),
                    str(r["preparing"]),
                    str(r["consumed"]),
                    str(r["failures"]),
                    (r["last_error"] or "")[:60],
                ]
                for r in rows
            ],
        )

    @pool.command("orphans")
    def orphans_command(as_json: JsonOpt = False) -> None:
        """Containers, directories and veths of ours that the store does not know (kept)."""
        rows = _client().get("/v1/orphans")
        if as_json:
            typer.echo(json.dumps(rows, indent=2))
            return
        _table(
            "orphans (fluidedge pool purge --orphans removes them)",
            ["id", "kind", "status", "pid", "veths", "reason"],
            [
                [
                    r["id"],
                    r["kind"],
                    r["status"] or "",
                    str(r["pid"] or ""),
                    " ".join(r["veths"]),
                    r["reason"],
                ]
                for r in rows
            ],
        )

    @pool.command("purge")
    def purge_command(
        config: Annotated[
            Path | None,
            typer.Option("--config", "-c", help="The daemon's TOML config (offline purge)."),
        ] = None,
        orphans: Annotated[
            bool,
            typer.Option(
                "--orphans",
                help="Destroy only the orphans (ours, unknown to the store) of the RUNNING "
                "daemon; the ids listed by `fluidedge pool orphans`.",
            ),
        ] = False,
        ids: Annotated[
            list[str] | None, typer.Argument(help="With --orphans: only these ids.")
        ] = None,
    ) -> None:
        """Destroy orphans (--orphans, daemon running), or, with the daemon STOPPED and
        --config, every instance, shell, orphan and managed bridge it owns."""
        if orphans:
            if ids:
                purged = [p for i in ids for p in _client().delete(f"/v1/orphans/{i}")["purged"]]
            else:
                purged = _client().delete("/v1/orphans")["purged"]
            typer.echo(f"purged {len(purged)} orphan(s): {' '.join(purged) or '-'}")
            return
        if config is None:
            raise typer.BadParameter("give --orphans (running daemon) or --config (stopped)")
        from fluidedge.core.config import load_config
        from fluidedge.core.lock import StateLock
        from fluidedge.core.store import Store
        from fluidedge.instances.manager import InstancesConfig, Manager

        daemon = load_config(config)
        section = dict(daemon.parts.get("instances", {}))
        state_dir = Path(section.get("state_dir") or daemon.state_dir / "instances")
        section.update(pool_scale=0, prepare_workers=1)
        with StateLock(daemon.state_dir, "pool purge"):
            manager = Manager(
                InstancesConfig.model_validate(section), Store(daemon.store_path), state_dir
            )
            manager.start(background=False)  # nothing made (a restart, a pool's shell)
            count = len(manager.instances) + sum(len(p.ready) for p in manager.pools.values())
            count += len(manager.orphans)
            manager.purge()
        typer.echo(f"purged {count} instances/shells/orphans under {state_dir}")


def register(app: typer.Typer) -> None:
    """Add ``instance``, ``template``, ``image``, ``network`` and ``pool`` to the root app."""
    _register_instance(app)
    _register_template(app)
    _register_image(app)
    _register_network(app)
    _register_router(app)
    _register_pool(app)
