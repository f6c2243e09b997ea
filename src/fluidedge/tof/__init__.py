"""The tof part: the Traffic Offloading Function (docs/tof.md).

Errors (:mod:`fluidedge.tof.errors`, and the intercept and accounting packages' own)::

    TofError
    ├── TofConfigError      400  the [tof] table is invalid
    ├── ServiceInvalid      400  a service breaks a rule the schema cannot express
    ├── ServiceNotFound     404
    ├── ServiceConflict     409  its name or service IP is taken
    ├── DataPlaneWaiting    503  the data plane waits for the host (tof.presence)
    ├── DataPlaneError      500  the data plane could not start or apply a change
    ├── InterceptInvalid / InterceptNotFound / InterceptConflict  400 / 404 / 409
    └── IpfixError               the usage export's IPFIX encoding
"""

# The public face: the modules other packages may import from (tests/unit/test_layers.py).
__all__ = [
    "backend",
    "cli",
    "config",
    "launch",
    "models",
    "part",
    "pipeline",
]
