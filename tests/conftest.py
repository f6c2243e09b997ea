"""Shared pytest configuration: fixture plugins owned by each part live in tests/fixtures/."""

pytest_plugins = [
    "tests.fixtures.lab",
    "tests.fixtures.daemon",
    "tests.fixtures.browser",
]
