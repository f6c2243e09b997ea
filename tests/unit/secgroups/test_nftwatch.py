"""Which ``nft monitor destroy tables`` lines wake the rules' check: our tables' deletion only."""

from __future__ import annotations

import pytest

from fluidedge.secgroups.nft import table_name
from fluidedge.secgroups.nftwatch import ours_deleted


@pytest.mark.parametrize(
    ("line", "ours"),
    [
        (f"delete table inet {table_name('apps')}\n", True),
        (f"delete table bridge {table_name('n-1')}", True),
        ("delete table inet filter\n", False),  # the host's own
        ("delete table ip nat", False),
        (f"add table inet {table_name('apps')}", False),  # not a deletion
        ("", False),
        ("delete table", False),
        (f"# delete table inet {table_name('x')} extra", False),
    ],
)
def test_only_the_deletion_of_our_tables_wakes_the_check(line: str, ours: bool) -> None:
    assert ours_deleted(line) is ours
