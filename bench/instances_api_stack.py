"""CPU cost of one instance API call through the daemon's whole ASGI stack, in process.

No socket, no uvicorn, no containers: the real app (:func:`fluidedge.daemon.app.create_app`,
edge middleware, FastAPI) over a real :class:`Manager` whose containers are the rollback
tests' :class:`ShellIO` double, SQLite with ``synchronous = normal``. Two apps side by side,
one serving create/pause/resume as hot routes (:mod:`fluidedge.core.hot`) and one with the hot
routes off (the FastAPI routes answer), calls interleaved one by one; min / p10 / p50 in µs.
The minimum is what the code costs on this CPU, whatever the host's load (the machine is
shared); ``GET /v1/instances/{name}`` (not hot) is the control row.

    .venv/bin/python bench/instances_api_stack.py
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the tests' ShellIO double

from tests.unit.instances.test_rollback import FakeIO, fake_image

from fluidedge.core.config import parse_config
from fluidedge.core.part import DaemonContext
from fluidedge.core.store import Store
from fluidedge.daemon.app import create_app
from fluidedge.instances.config import InstancesConfig
from fluidedge.instances.manager import Manager
from fluidedge.instances.models import InstanceRequest, TemplateSpec
from fluidedge.instances.part import InstancesPart

TOKEN = "t" * 32
CREATES = 400
PAUSES = 1500


def build(hot: bool) -> tuple[Any, Manager]:
    """The daemon's app over a double-backed manager with ``CREATES`` pooled shells and one
    instance ``pr``; ``hot``: create/pause/resume served as hot routes."""
    tmp = Path(tempfile.mkdtemp())
    config = parse_config(
        {"state_dir": str(tmp), "store_synchronous": "normal", "api": {"token": TOKEN}}
    )
    store = Store(tmp / "db.sqlite", synchronous="normal")
    manager = Manager(
        InstancesConfig(cpus="0-1", memory_mb=100000, builtin_templates=False, cpu_overcommit=1000),
        store,
        tmp / "state",
        io=FakeIO(),
    )
    manager.images.images["busybox"] = fake_image("busybox")
    spec = {"name": "idle", "command": ["/bin/sleep", "1"]}
    resources = {"cpus": 0.001, "memory_mb": 8, "pids": 16}
    manager.create_template(TemplateSpec.model_validate({**spec, "resources": resources}))
    for _ in range(CREATES + 10):
        manager.pools["idle"].ready.append(manager.prepare_shell(manager.templates["idle"]))
    manager.create_instance(InstanceRequest(name="pr", template="idle"))
    context = DaemonContext(config=config, store=store)
    part = InstancesPart(manager, context)
    if not hot:
        part.hot_routes = list  # type: ignore[method-assign]
    context.parts["instances"] = part
    return create_app(context), manager


async def call(app: Any, method: str, path: str, body: bytes = b"") -> int:
    """One request through the whole ASGI app; its status."""
    headers = [
        (b"host", b"bench"),
        (b"authorization", f"Bearer {TOKEN}".encode()),
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": headers,
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 2),
    }
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    status = int(sent[0]["status"])
    if status >= 300:
        raise RuntimeError(f"{method} {path}: {status} {sent[1].get('body', b'')[:300]!r}")
    return status


async def main() -> None:
    apps = {"fastapi": build(hot=False), "hot": build(hot=True)}
    out: dict[str, dict[str, list[float]]] = {
        name: {"pause+resume": [], "get (not hot)": [], "create": []} for name in apps
    }
    for _ in range(PAUSES):
        for name, (app, _manager) in apps.items():
            begin = time.perf_counter_ns()
            await call(app, "POST", "/v1/instances/pr/pause")
            await call(app, "POST", "/v1/instances/pr/resume")
            out[name]["pause+resume"].append((time.perf_counter_ns() - begin) / 2e3)
            begin = time.perf_counter_ns()
            await call(app, "GET", "/v1/instances/pr")
            out[name]["get (not hot)"].append((time.perf_counter_ns() - begin) / 1e3)
    for index in range(CREATES):
        body = json.dumps({"name": f"c{index}", "template": "idle"}).encode()
        for name, (app, _manager) in apps.items():
            begin = time.perf_counter_ns()
            await call(app, "POST", "/v1/instances", body)
            out[name]["create"].append((time.perf_counter_ns() - begin) / 1e3)
    for _app, manager in apps.values():
        manager.writer.flush()
    print("instance API through the daemon's ASGI stack, in process: us per call (interleaved)")
    print("  call            routes        min      p10      p50")
    for op in out["hot"]:
        for name in apps:
            values = sorted(out[name][op])
            p10, p50 = values[len(values) // 10], values[len(values) // 2]
            print(f"  {op:14s}  {name:8s} {values[0]:8.1f} {p10:8.1f} {p50:8.1f}")
        ratio = min(out["hot"][op]) / min(out["fastapi"][op])
        print(f"  {op:14s}  hot / fastapi, min: {ratio:.2f}x")


if __name__ == "__main__":
    asyncio.run(main())
