"""Shared pytest configuration: fixture plugins owned by each part live in tests/fixtures/.

Hypothesis runs without its per-example deadline: the suite runs on loaded 2-core machines, and
timing is the benchmarks' business (bench/), never a test's verdict.
"""

from hypothesis import settings

settings.register_profile("fluidedge", deadline=None)
settings.load_profile("fluidedge")

pytest_plugins = [
    "tests.fixtures.lab",
    "tests.fixtures.daemon",
    "tests.fixtures.browser",
    "tests.fixtures.images",
]
