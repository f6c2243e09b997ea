"""TOF fast path: a tc/eBPF data plane fed by the reference pipeline (ADR 0001).

Errors: :class:`~fluidedge.tof.fastpath.libbpf.BpfError` and
:class:`~fluidedge.tof.fastpath.build.BuildError`, both
:class:`~fluidedge.tof.errors.DataPlaneError` (500).
"""
