"""The templates the product ships: a minimal idle workload and an HTTP edge app.

Both run on the ``busybox`` image (:mod:`fluidedge.instances.images.builtin`, built at first
start from Debian's busybox-static): no built-in template sees the host's filesystem.

``idle`` is the density workload (busybox ``sleep``: one small process, no ``/sys`` and no
``/dev/pts``: a filesystem per instance costs kernel memory in the square of the count).
``httpd`` is the edge app the README demo registers as a TOF service: busybox httpd serving a
page that names the instance, so a test can tell which instance answered.
"""

from __future__ import annotations

from fluidedge.instances.models import (
    Mounts,
    PoolPolicy,
    Readiness,
    Resources,
    TemplateSpec,
)

BUSYBOX = "/bin/busybox"
HTTPD_PORT = 8080


def builtin_templates() -> list[TemplateSpec]:
    """Fresh copies of the built-in templates (no interfaces: requests add none by default)."""
    return [
        TemplateSpec(
            name="idle",
            image="busybox",
            description="minimal idle workload (busybox sleep) for density tests",
            command=[BUSYBOX, "sleep", "2147483647"],
            resources=Resources(cpus=0.001, memory_mb=8, pids=8),
            readiness=Readiness(kind="started"),
            pool=PoolPolicy(size=4),
            mounts=Mounts(sysfs=False, devpts=False),  # lean: 2 filesystems fewer each
        ),
        TemplateSpec(
            name="httpd",
            image="busybox",
            description="HTTP edge app: busybox httpd serving a page naming the instance",
            command=[BUSYBOX, "httpd", "-f", "-p", str(HTTPD_PORT), "-h", "/.fe/www"],
            files={"www/index.html": "fluidedge instance {name}\n"},
            resources=Resources(cpus=0.1, memory_mb=32, pids=32),
            ports=[HTTPD_PORT],
            readiness=Readiness(kind="tcp", port=HTTPD_PORT),
            pool=PoolPolicy(size=2),
        ),
    ]
