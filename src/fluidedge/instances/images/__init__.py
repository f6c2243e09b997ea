"""OCI images: import, a content-addressed read-only store, and what a template takes from one.

Why: instances used to see the host's ``/usr`` and ``/etc`` (bind-mounted read-only), so any
tenant could read any world- or root-readable host file. Now every instance's root is an image:
imported once from an OCI image layout, an ``oci-archive`` or a ``docker-archive`` (what
``skopeo copy``, ``docker save`` and ``podman save`` write), unpacked once into the store and
used, read-only, as the lower layer of each shell's overlay root (:mod:`.overlay`).

Modules: :mod:`.config` (pure: the image config, its mapping to template fields, ChainIDs),
:mod:`.tools` (thin adapters over Debian's ``skopeo`` and ``umoci``), :mod:`.store` (the store
and its SQLite table), :mod:`.builtin` (the ``busybox`` image the built-in templates run,
built from Debian's busybox-static), :mod:`.overlay` (per-shell overlay roots) and
:mod:`.userns` (the user-namespace id ranges, pure).
"""
