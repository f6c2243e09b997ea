"""The security-group functional tests' fixtures (see tests/fixtures/secgroups_net.py)."""

from tests.fixtures.secgroups_net import sg_lab

__all__ = ["sg_lab"]
