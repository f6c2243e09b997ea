"""The superfluid instance manager: millisecond instances from a pool of prepared shells.

An *instance* is an OCI container run by ``runc`` (real namespaces, cgroups, mounts, seccomp).
What makes it superfluid is the split toolstack of the seed's LightVM (§5.4.3): a background
*prepare* phase keeps, per template, a pool of *shells* (``runc create`` done, veths plugged into
their networks, cgroups in place) and the *execute* phase of a request only does what is specific
to it (addresses, assignment, limits, start), the VIM phases of §3 being timed one by one.

Module map (pure policy first, I/O adapters last):

- ``models``: API/request models and their validation.
- ``builtin``: the templates the product ships (``idle``, ``httpd``).
- ``oci``: the one OCI runtime-config builder (shells here, the ``runc run`` baseline in measure).
- ``bundle``: template -> OCI ``config.json`` (isolation defaults, allow-list seccomp profile).
- ``placement``: CPU choice (spread/pack, affinity) and admission control.
- ``timing``: per-phase timing and Prometheus histograms.
- ``nl``: tiny rtnetlink encoder/decoder for the execute phase's address setting.
- ``launcher``: the program a shell runs while it waits for its assignment.
- ``cgroups``: the cgroup adapter, v1/hybrid and v2 (limits, freezer, kill, readings).
- ``private``: 0700 directories and 0600 files for the state directory.
- ``runc``: the OCI runtime adapter, runc or crun (create, fifo start, state, list, delete).
- ``network``: bridges and veths (pyroute2).
- ``linkwatch``: the kernel's link-deletion announcements of a namespace (sans-I/O decoder).
- ``veths``: which of our veths were deleted from outside since the last look.
- ``persist``: SQLite tables of the part.
- ``config``: the ``[instances]`` config table and the host facts of its defaults.
- ``records``: shells and instances, and their store rows.
- ``pool``: the pure refill policy (which pool the next prepare worker fills).
- ``readiness``: the readiness checks, against a deadline.
- ``shell``: the containers' I/O (build, configure, address, release, destroy): the seam.
- ``catalog``: templates and networks (CRUD, references between them).
- ``reconcile``: re-adoption at start, orphans.
- ``manager``: composes them: prepare workers, execute phase and its rollback, pause/resume.
- ``api`` / ``part`` / ``cli``: REST routes, daemon part, command line.

Errors (kinds from :mod:`fluidedge.errors` give the HTTP status)::

    InstancesError (FluidedgeError)
    ├── TemplateNotFound (+ NotFoundError)        404
    ├── InstanceNotFound (+ NotFoundError)        404
    ├── NetworkNotFound (+ NotFoundError)         404
    ├── NetnsNotFound (+ NotFoundError)           404  a network's netns does not exist
    ├── InterfaceNotFound (+ NotFoundError)       404  an interface the template does not have
    ├── InvalidRequest (+ Unprocessable)          422  contradicts template/network/config
    ├── ImageUnusable (+ Unprocessable)           422  not an image this host can run
    ├── NameInUse (+ ConflictError)               409
    ├── AddressInUse (+ ConflictError)            409
    ├── InUse (+ ConflictError)                   409  template/network still used
    ├── NotABridge (+ ConflictError)              409  a network names a non-bridge interface
    ├── ReadinessTimeout (+ DeadlineExceeded)     504  not ready within readiness.timeout_s
    ├── WrongState (+ ConflictError)              409  e.g. resume of a running instance
    ├── AdmissionRefused (+ ConflictError)        409  CPUs/memory would be overcommitted
    └── RuntimeFailure (+ SystemFailure)          500  runc, cgroups or netlink failed
        ├── WorkloadFailed                        422  the workload exited before ready
        ├── LauncherGone                          500  a shell's launcher exited before its go
        ├── FreezerBusy                           500  freezer not settled in time
        └── LinkWatchDecodeError                  500  a link announcement not understood
"""

# The public face: the modules other packages may import from (tests/unit/test_layers.py).
__all__ = [
    "images",
    "manager",
    "models",
    "network",
    "nl",
    "oci",
    "part",
    "placement",
    "runc",
    "timing",
]
