"""Instantiation and pause/resume latency: warm pool vs cold path vs plain ``runc run``.

All in one invocation, against a real daemon (``fluidedge serve``) over HTTP:

- warm: ``POST /v1/instances`` with every pool full and none preparing (the seed's "unloaded
  conditions"), client wall time request -> response parsed, i.e. API request to workload
  running (``idle``) or to ready (``httpd``: TCP port listening), over one kept-alive
  connection of a lean ``http.client`` client; the ``(httpx)`` rows repeat the warm runs with
  httpx (the CLI's client library) to show what a heavier client adds;
- cold: the same request with ``cold: true`` (create + start inline);
- baseline: ``runc run -d`` of the same bundle (same template config, process = the workload),
  wall time until the workload has exec'd (idle) / listens (httpd);
- pause/resume: API round trip (lean client, and httpx) and the in-daemon freezer write
  (``op_ms``);
- images (issue 12): the built-in ``idle`` (the ``busybox`` image built at first start, a user
  namespace per shell) against ``imgidle``, the same workload on an image *imported* through
  ``POST /v1/images`` from a docker-archive built here (busybox-static + a page, with umoci and
  skopeo), and ``rootidle``, the built-in image without a user namespace (the admin opt-out):
  warm API -> running, same run, lean client.

    .venv/bin/python bench/instances_latency.py [--quick] [--runs N] [--store-synchronous normal]

The last rows are the floor of any API round trip on this host: a bare ASGI app on the daemon's
server stack (uvicorn, uvloop, httptools) answering a body of an instance view's size to the same
lean client, and the API rows' ratios to it.

The ``(API, unix)`` rows are the lean client over the daemon's Unix socket (``state_dir/api.sock``,
same token rules): no TCP stack in the round trip.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fluidedge.instances import runc
from fluidedge.instances.builtin import builtin_templates
from fluidedge.instances.bundle import oci_config
from fluidedge.instances.images import overlay, tools, userns
from fluidedge.instances.images.builtin import busybox_tree
from fluidedge.instances.readiness import listening
from fluidedge.instances.timing import PHASES
from instances_common import BenchDaemon, LeanClient, machine, pct, summary


def _exec_done(exe: str) -> bool:
    """The baseline has no launcher to report its exec: ``runc run``'s init is a cloned runc
    binary (seen as ``/`` or ``memfd:...``) until it execs the workload."""
    return exe not in ("", "/") and "runc" not in exe and "memfd:" not in exe


def api_runs(
    daemon: BenchDaemon, template: str, runs: int, *, cold: bool, client: str = "lean"
) -> tuple[list[float], list[dict[str, float]]]:
    """``runs`` creations, each timed from request sent to response parsed.

    ``client`` is ``lean`` (:class:`LeanClient`, ``http.client`` keep-alive over TCP), ``unix``
    (the same over the daemon's Unix socket) or ``httpx`` (the CLI's client library, TCP); each
    reuses one connection. Warm runs start with every pool full and
    no shell in preparation (the seed's unloaded conditions).
    """
    wall: list[float] = []
    timings: list[dict[str, float]] = []
    lean = LeanClient(daemon.port, unix=daemon.socket if client == "unix" else None)
    try:
        for index in range(runs):
            if not cold:
                daemon.wait_pools()
            name = f"{'c' if cold else 'w'}{client[0]}{template[:4]}{index}"
            payload = {"name": name, "template": template, "cold": cold}
            if client in ("lean", "unix"):
                lean.ping()
                begin = time.perf_counter()
                status, body = lean.post("/v1/instances", payload)
                wall.append((time.perf_counter() - begin) * 1000)
            else:
                begin = time.perf_counter()
                response = daemon.http.post("/v1/instances", json=payload)
                body = response.json()
                wall.append((time.perf_counter() - begin) * 1000)
                status = response.status_code
            if status != 201:
                raise RuntimeError(f"create failed: {status} {body}")
            _check(body, cold)
            timings.append(body["timing"])
            daemon.http.delete(f"/v1/instances/{name}")
    finally:
        lean.close()
    return wall, timings


def _check(body: dict[str, Any], cold: bool) -> None:
    expected = "cold" if cold else "warm"
    if body["path"] != expected:
        raise RuntimeError(f"expected {expected} path, got {body['path']}")


def runc_run_baseline(daemon: BenchDaemon, template_name: str, runs: int) -> list[float]:
    """``runc run -d`` of the same bundle, the workload as the process, same readiness: the
    same image as overlay root (mounted before the clock starts, as a pooled shell's is) and
    a user namespace of a range the daemon does not use."""
    template = next(t for t in builtin_templates() if t.name == template_name)
    image = daemon.http.get(f"/v1/images/{template.image}").json()
    state = daemon.workdir / "state" / "instances"
    lower = state / "images" / "rootfs" / image["rootfs"].removeprefix("sha256:")
    base = userns.slot_base(userns.DEFAULT_BASE, userns.MAX_SLOTS)
    work = Path(tempfile.mkdtemp(prefix="fe-runc-"))
    roots = work / "roots"
    launcher = state / "launcher" / "fe-launcher"
    root = runc.Runc(work / "root")
    out: list[float] = []
    try:
        for index in range(runs):
            cid = f"ferun{index:04d}{template_name[:3]}"
            bundle = work / cid
            assign = bundle / "assign"
            (assign / "www").mkdir(parents=True)
            (assign / "www" / "index.html").write_text("baseline\n")
            for path in (assign, assign / "www", assign / "www" / "index.html"):
                os.chown(path, base, base)
            rootfs = overlay.mount(lower, bundle, roots / cid, (base, base))
            config = oci_config(
                template,
                container_id=cid,
                rootfs=rootfs,
                assign_dir=assign,
                launcher=launcher,
                empty_dir=state / "empty",
                scratch=overlay.scratch(roots / cid, (base, base)),
                cgroups_path=root.cgroups.runc_path(cid),
                userns_base=base,
            )
            config["process"]["args"] = list(template.command)
            (bundle / "config.json").write_text(json.dumps(config))
            begin = time.perf_counter()
            pid = root.run_detached(cid, bundle, bundle / "log")
            while True:
                exe = runc.exe_of(pid)
                if exe is None:
                    raise RuntimeError(f"baseline {cid} exited: {(bundle / 'log').read_text()}")
                ready = (
                    listening(pid, template.readiness.port or 0)
                    if template.readiness.kind == "tcp"
                    else _exec_done(exe)
                )
                if ready:
                    break
                time.sleep(0.0001)
            out.append((time.perf_counter() - begin) * 1000)
            root.delete(cid)
            overlay.unmount(roots / cid)
    finally:
        for entry in root.list():
            root.delete(entry["id"])
        for cid in os.listdir(roots) if roots.is_dir() else []:
            if cid not in (overlay.SCRATCH, overlay.DEV):  # the shared tmpfs go with the last
                overlay.unmount(roots / cid)
        shutil.rmtree(work, ignore_errors=True)
    return out


IMAGE_TEMPLATES = ("idle", "imgidle", "rootidle")


def image_templates(daemon: BenchDaemon) -> None:
    """Import a locally built image (docker-archive) and add ``imgidle`` (it) and ``rootidle``
    (the built-in image, no user namespace): same command, resources and pool as ``idle``."""
    idle = daemon.http.get("/v1/templates/idle").json()
    work = Path(tempfile.mkdtemp(prefix="fe-img-"))
    try:
        tree = work / "tree"
        busybox_tree(tree)
        (tree / "srv").mkdir()
        (tree / "srv" / "index.html").write_text("an imported image\n")
        tools.build_layout(work / "layout", tree, "app", ["--config.cmd=/bin/sh"])
        archive = work / "app.tar"
        tools.copy_image("oci", work / "layout", "app", f"docker-archive:{archive}:app:1", work)
        body = {"name": "app", "source": str(archive), "format": "docker-archive"}
        daemon.http.post("/v1/images", json=body).raise_for_status()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    common = {k: idle[k] for k in ("command", "resources", "readiness", "pool")}
    for spec in (
        {"name": "imgidle", "image": "app", **common},
        {
            "name": "rootidle",
            "image": "busybox",
            "userns_opt_out": "bench: the cost of a user namespace",
            **common,
        },
    ):
        daemon.http.post("/v1/templates", json=spec).raise_for_status()


def pause_resume(daemon: BenchDaemon, runs: int) -> dict[str, list[float]]:
    """Pause then resume one idle instance ``runs`` times.

    ``*_api`` rows: request sent to response parsed, through :class:`LeanClient` (the API's
    cost); ``*_httpx``: the same through httpx (plus the client library's cost); ``*_op``: the
    freezer write inside the daemon (the response's ``op_ms``).
    """
    daemon.wait_pool("idle")
    daemon.http.post("/v1/instances", json={"name": "pr", "template": "idle"}).raise_for_status()
    out: dict[str, list[float]] = {
        "pause_api": [],
        "resume_api": [],
        "pause_unix": [],
        "resume_unix": [],
        "pause_httpx": [],
        "resume_httpx": [],
        "pause_op": [],
        "resume_op": [],
    }
    lean = LeanClient(daemon.port)
    unix = LeanClient(daemon.port, unix=daemon.socket)
    try:
        lean.ping()
        unix.ping()
        for _ in range(runs):
            for op in ("pause", "resume"):
                begin = time.perf_counter()
                status, body = lean.post(f"/v1/instances/pr/{op}")
                out[f"{op}_api"].append((time.perf_counter() - begin) * 1000)
                if status != 200:
                    raise RuntimeError(f"{op} failed: {status} {body}")
                out[f"{op}_op"].append(float(body["op_ms"]))
            for op in ("pause", "resume"):
                begin = time.perf_counter()
                status, body = unix.post(f"/v1/instances/pr/{op}")
                out[f"{op}_unix"].append((time.perf_counter() - begin) * 1000)
                if status != 200:
                    raise RuntimeError(f"{op} failed: {status} {body}")
            for op in ("pause", "resume"):
                begin = time.perf_counter()
                response = daemon.http.post(f"/v1/instances/pr/{op}")
                out[f"{op}_httpx"].append((time.perf_counter() - begin) * 1000)
                response.raise_for_status()
    finally:
        lean.close()
        unix.close()
    daemon.http.delete("/v1/instances/pr")
    return out


# The floor of any API round trip here: a bare ASGI app on the daemon's server stack (uvicorn,
# uvloop, httptools) answering a JSON body of an instance view's size, nothing else.
FLOOR_APP = """
import json
BODY = json.dumps({"name": "x", "state": "running", "pad": "y" * 1100}).encode()
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(BODY)).encode())]})
    await send({"type": "http.response.body", "body": BODY})
"""


def http_floor(runs: int) -> list[float]:
    """``runs`` POSTs to the bare app with the lean client, each timed as the API rows are."""
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "floorapp.py").write_text(FLOOR_APP)
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "floorapp:app",
                "--app-dir",
                tmp,
                "--port",
                str(port),
                "--loop",
                "uvloop",
                "--http",
                "httptools",
                "--no-access-log",
                "--log-level",
                "warning",
            ],
        )
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
            client = LeanClient(port)
            out = []
            for _ in range(runs):
                time.sleep(0.002)
                begin = time.perf_counter()
                status, _ = client.post("/v1/instances/x/pause", {"name": "x"})
                out.append((time.perf_counter() - begin) * 1000)
                if status != 200:
                    raise RuntimeError(f"floor app answered {status}")
            client.close()
            return out
        finally:
            server.terminate()
            server.wait(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="20 runs instead of 100")
    parser.add_argument("--runs", type=int, default=None)
    parser.add_argument(
        "--store-synchronous",
        choices=["full", "normal"],
        default="full",
        help="the daemon's store_synchronous (full: a 2xx survives power loss, the default)",
    )
    args = parser.parse_args()
    runs = args.runs or (20 if args.quick else 100)
    print(
        f"instances latency bench: {runs} runs per row, {machine()}, "
        f"store_synchronous = {args.store_synchronous}"
    )
    daemon = BenchDaemon(
        {"pool_scale": 1.0, "prepare_workers": 2, "cpu_overcommit": 50.0},
        top={"store_synchronous": args.store_synchronous},
    )
    results: dict[str, list[float]] = {}
    phases: dict[str, list[dict[str, float]]] = {}
    try:
        for template in ("idle", "httpd"):
            daemon.wait_pools()
            wall, timing = api_runs(daemon, template, runs, cold=False)
            results[f"warm pool  {template:5s} (API)       "] = wall
            phases[f"warm {template}"] = timing
            daemon.wait_pools()
            wall, timing = api_runs(daemon, template, runs, cold=False, client="unix")
            results[f"warm pool  {template:5s} (API, unix) "] = wall
            phases[f"warm {template} unix"] = timing
            wall, _ = api_runs(daemon, template, runs, cold=False, client="httpx")
            results[f"warm pool  {template:5s} (API, httpx)"] = wall
            wall, timing = api_runs(daemon, template, runs, cold=True)
            results[f"cold path  {template:5s} (API)       "] = wall
            phases[f"cold {template}"] = timing
            results[f"runc run   {template:5s}             "] = runc_run_baseline(
                daemon, template, runs
            )
        pr = pause_resume(daemon, runs)
        floor = http_floor(runs)
        image_templates(daemon)
        images: dict[str, list[float]] = {name: [] for name in IMAGE_TEMPLATES}
        for _ in range(5):  # interleaved, so drift in the host's load hits every row alike
            for name in IMAGE_TEMPLATES:
                daemon.wait_pools()
                wall, timing = api_runs(daemon, name, max(1, runs // 5), cold=False)
                images[name] += wall
                phases.setdefault(f"warm {name}", []).extend(timing)
    finally:
        daemon.close()
    print("\nAPI request -> workload running (idle) / ready (httpd), milliseconds")
    for label, values in results.items():
        print(f"  {label}  {summary(values)}")
    for template in ("idle", "httpd"):
        base = pct(results[f"runc run   {template:5s}             "], 50)
        warm = pct(results[f"warm pool  {template:5s} (API)       "], 50)
        unix = pct(results[f"warm pool  {template:5s} (API, unix) "], 50)
        cold = pct(results[f"cold path  {template:5s} (API)       "], 50)
        ratio = f"runc run p50 / warm p50 = {base / warm:5.1f}x (unix socket {base / unix:5.1f}x)"
        print(f"  {template}: {ratio} ; cold / warm = {cold / warm:5.1f}x")
    print("\nserver-side phase breakdown, p50 ms")
    print(
        "                   accept placement  shell  config network  start durable   ready   total"
    )
    for label, rows in phases.items():
        cols = [*PHASES, "total"]
        print(f"  {label:16s} " + " ".join(f"{pct([r[c] for r in rows], 50):7.3f}" for c in cols))
    print("\nimages: warm API -> running, milliseconds (same run, interleaved)")
    labels = {
        "idle": "built-in busybox image, userns",
        "imgidle": "imported docker-archive, userns",
        "rootidle": "built-in image, no userns (opt-out)",
    }
    for name in IMAGE_TEMPLATES:
        print(f"  {name:8s} {labels[name]:36s} {summary(images[name])}")
    idle_p50 = pct(images["idle"], 50)
    for name in IMAGE_TEMPLATES[1:]:
        print(f"  {name} p50 / idle p50 = {pct(images[name], 50) / idle_p50:5.2f}x")
    print("\npause/resume, milliseconds")
    for label, values in pr.items():
        print(f"  {label:12s}  {summary(values)}")
    print("\nthe floor of an API round trip on this host, milliseconds")
    print(f"  bare ASGI app (uvicorn, uvloop, httptools), lean client  {summary(floor)}")
    base = pct(floor, 50)
    warm = pct(results["warm pool  idle  (API)       "], 50)
    pause = pct(pr["pause_api"], 50)
    print(
        f"  warm idle p50 / floor p50 = {warm / base:5.2f}x ; pause p50 / floor p50 = "
        f"{pause / base:5.2f}x"
    )


if __name__ == "__main__":
    main()
