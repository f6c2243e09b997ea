"""The tof part."""

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
