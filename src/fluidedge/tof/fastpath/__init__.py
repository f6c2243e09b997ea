"""TOF fast path: a tc/eBPF data plane fed by the reference pipeline (ADR 0001).

Errors: :class:`~fluidedge.tof.fastpath.build.BuildError` and
:class:`~fluidedge.tof.fastpath.cdefs.LayoutError`, both
:class:`~fluidedge.tof.errors.DataPlaneError` (500); and from the libbpf binding it shares
with the other parts, :class:`~fluidedge.linux.libbpf.BpfError`, a
:class:`~fluidedge.errors.SystemFailure` (500) but not a DataPlaneError: the backend catches
it by name where it caught the DataPlaneError before (a failed start is still reported as one).
"""
