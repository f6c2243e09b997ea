"""The cluster part as the instance manager's placer: where a creation runs, and what is
refused, over a node view set by hand (the e2e tier runs it against etcd and real nodes)."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from fluidedge.cluster.errors import ClusterFailure, NodeNotFound, NodeUnavailable, NoNodeFits
from fluidedge.cluster.part import ClusterPart
from fluidedge.cluster.persist import PendingTable
from fluidedge.cluster.placement import NodeState
from fluidedge.core.config import DaemonConfig
from fluidedge.core.part import DaemonContext
from fluidedge.core.store import Store
from fluidedge.instances.models import InstanceRequest, TemplateSpec
from fluidedge.tenants.models import TenantCreate, TokenCreated
from fluidedge.tenants.service import TenantService


@pytest.fixture
def part(tmp_path: Path) -> ClusterPart:
    ctx = DaemonContext(DaemonConfig(state_dir=tmp_path), Store(tmp_path / "s.sqlite"))
    section = {
        "etcd": "http://127.0.0.1:1",
        "node": "here",
        "url": "http://127.0.0.1:2",
        "token": "t" * 24,
    }
    from fluidedge.cluster.part import create_part

    made = create_part(section, ctx)
    made.registry._view = [
        NodeState("here", "http://127.0.0.1:2", True, 2.0, 1000, 1.0, 800),
        NodeState("there", "http://127.0.0.1:3", True, 2.0, 1000, 0.0, 100),
        NodeState("gone", "http://127.0.0.1:4", False, 2.0, 1000),
    ]
    made.registry.last_read = time.monotonic()
    return made


TEMPLATE = TemplateSpec.model_validate(
    {"name": "t", "command": ["/bin/true"], "resources": {"cpus": 0.5, "memory_mb": 150}}
)


def request(**more: object) -> InstanceRequest:
    return InstanceRequest.model_validate({"name": "i", "template": "t", **more})


def test_placement_decides_where_the_admin_request_runs(part: ClusterPart) -> None:
    assert part.target(request(), TEMPLATE, admin=True, forwarded=None) == "there"
    # pack: the fullest that fits is this node (200 MB free >= 150): run here
    assert part.target(request(placement="pack"), TEMPLATE, admin=True, forwarded=None) is None
    # the request's own resources count: 250 MB does not fit here
    big = request(placement="pack", resources={"memory_mb": 250})
    assert part.target(big, TEMPLATE, admin=True, forwarded=None) == "there"
    with pytest.raises(NoNodeFits):
        part.target(request(resources={"memory_mb": 950}), TEMPLATE, admin=True, forwarded=None)


def test_nodes_that_refused_are_left_out(part: ClusterPart) -> None:
    """A node that refused for lack of room (its record not yet showing it) is not asked again:
    spread picks the next, here; with both out nothing fits."""
    spread = request()
    assert part.target(spread, TEMPLATE, admin=True, forwarded=None) == "there"
    assert (
        part.target(spread, TEMPLATE, admin=True, forwarded=None, exclude=frozenset({"there"}))
        is None
    )
    with pytest.raises(NoNodeFits):
        part.target(
            spread, TEMPLATE, admin=True, forwarded=None, exclude=frozenset({"there", "here"})
        )


def test_the_refusal_forwarding_retries_on_is_the_instance_managers() -> None:
    """The error header names the class: the cluster's constant must stay its name."""
    from fluidedge.cluster.part import ADMISSION_REFUSED
    from fluidedge.instances.errors import AdmissionRefused

    assert AdmissionRefused.__name__ == ADMISSION_REFUSED


def test_a_named_node(part: ClusterPart) -> None:
    assert part.target(request(node="here"), TEMPLATE, admin=True, forwarded=None) is None
    assert part.target(request(node="there"), TEMPLATE, admin=True, forwarded=None) == "there"
    with pytest.raises(NodeUnavailable, match="dead"):
        part.target(request(node="gone"), TEMPLATE, admin=True, forwarded=None)
    with pytest.raises(NodeNotFound):
        part.target(request(node="nowhere"), TEMPLATE, admin=True, forwarded=None)


def test_forwarded_requests_are_not_forwarded_again(part: ClusterPart) -> None:
    assert part.target(request(node="here"), TEMPLATE, admin=True, forwarded="there") is None
    with pytest.raises(NodeUnavailable, match="not forwarded again"):
        part.target(request(node="there"), TEMPLATE, admin=True, forwarded="gone")
    with pytest.raises(NodeUnavailable, match="not forwarded again"):
        part.target(request(), TEMPLATE, admin=True, forwarded="there")


def test_tenants_are_placed_like_the_admin(part: ClusterPart) -> None:
    """Tenants, their templates and networks are the site's: their requests move alike."""
    assert part.target(request(), TEMPLATE, admin=False, forwarded=None) == "there"
    assert part.target(request(node="there"), TEMPLATE, admin=False, forwarded=None) == "there"
    assert part.target(request(node="here"), TEMPLATE, admin=False, forwarded=None) is None


def test_a_bad_node_name_is_refused_at_the_boundary() -> None:
    with pytest.raises(ValueError, match="node"):
        request(node="../x;rm")


def test_a_stale_view_keeps_unnamed_requests_here(part: ClusterPart) -> None:
    part.registry.last_read = time.monotonic() - 60  # etcd silent for longer than the lease
    assert part.target(request(), TEMPLATE, admin=True, forwarded=None) is None
    assert part.target(request(node="there"), TEMPLATE, admin=True, forwarded=None) == "there"
    part.registry.last_read = None  # never read
    assert part.target(request(), TEMPLATE, admin=True, forwarded=None) is None


def test_an_unreadable_ca_file_is_a_config_error(tmp_path: Path) -> None:
    from fluidedge.cluster.errors import ClusterInvalid
    from fluidedge.cluster.part import create_part

    ctx = DaemonContext(DaemonConfig(state_dir=tmp_path), Store(tmp_path / "s.sqlite"))
    bad = tmp_path / "ca.pem"
    bad.write_text("not a certificate\n")
    section = {
        "etcd": "http://127.0.0.1:1",
        "node": "here",
        "url": "https://127.0.0.1:2",
        "token": "t" * 24,
    }
    for ca in (bad, tmp_path / "missing.pem"):
        with pytest.raises(ClusterInvalid, match=r"cluster\.ca_file"):
            create_part({**section, "ca_file": str(ca)}, ctx)


def test_a_takeover_removes_only_the_dead_nodes_ports(
    part: ClusterPart, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from types import SimpleNamespace

    from fluidedge.cluster.failover import Record
    from fluidedge.ovn import networks as ovn_networks
    from fluidedge.ovn.node import OvnNode

    node = OvnNode(nb="unix:/x/nb.sock", sb="unix:/x/sb.sock", chassis="here", encap="10.0.0.1/24")
    sent: list[list[list[str]]] = []

    class FakeNb:
        def transact(self, commands: list[list[str]], wait: str | None = None) -> str:
            sent.append(commands)
            return ""

    ovn_networks.configure(tmp_path, node)
    monkeypatch.setattr(ovn_networks, "nbctl", FakeNb)
    part._manager = SimpleNamespace(config=SimpleNamespace(ovn=node))
    try:
        value = {"node": "gone", "request": {}, "ports": ["gone.fe1", "here.fe2", "gone.fe3"]}
        part._remove_ports(Record.of("x", value, "5"))
        assert sent == [
            [["--if-exists", "lsp-del", "gone.fe1"], ["--if-exists", "lsp-del", "gone.fe3"]]
        ]
        assert part.ports_removed == 2
        part._remove_ports(Record.of("y", {"node": "gone", "request": {}}, "6"))  # none listed
        assert len(sent) == 1
    finally:
        ovn_networks.configure(tmp_path, None)


def test_a_tenants_usage_elsewhere_sums_the_other_live_nodes(part: ClusterPart) -> None:
    usage = {"instances": 2, "cpus": 0.5, "memory_mb": 300, "pids": 100}
    part.registry._view = [
        NodeState("here", "u", True, 2.0, 1000, tenants={"acme": dict(usage)}),  # this node
        NodeState("there", "u", True, 2.0, 1000, tenants={"acme": dict(usage)}),
        NodeState("gone", "u", False, 2.0, 1000, tenants={"acme": dict(usage)}),  # dead: none
        NodeState("other", "u", True, 2.0, 1000, tenants={"beta": dict(usage)}),
    ]
    total = part.usage_elsewhere("acme")
    assert (total.instances, total.cpus, total.memory_mb, total.pids) == (2, 0.5, 300, 100)
    assert part.usage_elsewhere("nobody").instances == 0


def test_an_instances_tenant_comes_from_the_record_of_the_node_running_it(
    part: ClusterPart,
) -> None:
    part.registry._view = [
        NodeState("there", "u", True, 2.0, 1000, instances=("acme-x", "y"),
                  owners={"acme-x": "acme"}),
    ]  # fmt: skip
    assert part.instance_tenant("acme-x") == "acme"
    assert part.instance_tenant("y") is None  # the admin's
    assert part.instance_tenant("nowhere") is None


def test_a_peers_record_is_read_for_what_is_well_formed() -> None:
    record = {
        "name": "n",
        "url": "u",
        "tenants": {"acme": {"instances": 1, "cpus": "lots", "bogus": 3}, "x": [1]},
        "owners": {"i": "acme", "j": 7},
    }
    node = NodeState.of(record, True)
    assert node.tenants == {"acme": {"instances": 1.0}}
    assert node.owners == {"i": "acme"}
    assert NodeState.of({"name": "n", "url": "u", "tenants": "no"}, True).tenants == {}


def test_a_tenants_instances_elsewhere_come_from_the_other_live_nodes(part: ClusterPart) -> None:
    part.registry._view = [
        NodeState("here", "u", True, 2.0, 1000, owners={"acme-h": "acme"}),  # this node's own
        NodeState("there", "u", True, 2.0, 1000, owners={"acme-b": "acme", "beta-x": "beta"}),
        NodeState("gone", "u", False, 2.0, 1000, owners={"acme-d": "acme"}),
    ]
    assert part.owned_elsewhere("acme") == ["acme-b"]
    assert part.owned_elsewhere("nobody") == []


class FlakyEtcd:
    """etcd's key-value calls over a dict, out of reach while ``down``."""

    def __init__(self) -> None:
        self.data: dict[str, object] = {}
        self.down = False

    def _check(self) -> None:
        if self.down:
            raise ClusterFailure("etcd unreachable: connection refused")

    def put(self, key: str, value: object) -> None:
        self._check()
        self.data[key] = value

    def delete(self, key: str) -> None:
        self._check()
        self.data.pop(key, None)


def test_site_writes_made_while_etcd_is_away_are_kept_and_written_at_a_later_pass(
    part: ClusterPart, tmp_path: Path
) -> None:
    etcd = FlakyEtcd()
    part.etcd = etcd  # type: ignore[assignment]
    key = part.registry.key
    etcd.put(key("templates", "old"), {"name": "old"})
    etcd.down = True
    part._publish("templates", "new", {"name": "new", "v": 1})
    part._publish("templates", "new", {"name": "new", "v": 2})  # the latest one wins
    part._unpublish("templates", "old")  # deleted here: must not come back from the site
    assert etcd.data == {key("templates", "old"): {"name": "old"}}
    part._flush_pending()  # still away: nothing lost
    # a restart in between: the owed writes are in the store
    again = PendingTable(Store(tmp_path / "s.sqlite")).load()
    assert again == {("templates", "new"): {"name": "new", "v": 2}, ("templates", "old"): None}
    etcd.down = False
    part._flush_pending()
    assert etcd.data == {key("templates", "new"): {"name": "new", "v": 2}}
    assert part._pending == {}
    assert PendingTable(Store(tmp_path / "s.sqlite")).load() == {}
    # a write that succeeds replaces one still owed
    etcd.down = True
    part._publish("secgroups", "g", {"id": "g", "rules": []})
    etcd.down = False
    part._publish("secgroups", "g", {"id": "g", "rules": [1]})
    assert part._pending == {}
    assert etcd.data[key("secgroups", "g")] == {"id": "g", "rules": [1]}


class HeldEtcd(FlakyEtcd):
    """A site whose read of one prefix is held (``reading`` set) until ``release``: the read
    returns what the site held when it began, as a pass that read just before a change
    would."""

    def __init__(self, hold: str) -> None:
        super().__init__()
        self.hold: str | None = hold
        self.reading = threading.Event()
        self.release = threading.Event()

    def get_prefix(self, prefix: str) -> dict[str, object]:
        snapshot = {k: v for k, v in self.data.items() if k.startswith(prefix)}
        if prefix == self.hold:
            self.hold = None
            self.reading.set()
            assert self.release.wait(30)
        return snapshot


def _no_manager_objects() -> SimpleNamespace:
    """An instance manager with no networks or templates: the pass's other kinds are empty."""
    return SimpleNamespace(
        config=SimpleNamespace(ovn=None),
        networks={},
        templates={},
        builtin=set(),
        create_network=None,
        delete_network=None,
        create_template=None,
        delete_template=None,
    )


def test_a_token_created_while_a_pass_reads_the_site_is_neither_revoked_nor_lost(
    part: ClusterPart, tmp_path: Path
) -> None:
    """The race of a fresh token refused with 401 (seen once in CI): a pass read the site's
    tenant, the API created a token and published the tenant, then the pass applied what it
    had read, revoking the token here. The change waits for the pass (one lock), so the pass
    applies the site as it was, and the change then publishes the tenant with its token."""
    tenants = TenantService(Store(tmp_path / "t.sqlite"))
    tenants.site = part
    part.ctx.tenants = tenants
    part._manager = _no_manager_objects()
    etcd = HeldEtcd(part.registry.key("tenants"))
    part.etcd = etcd  # type: ignore[assignment]
    part.change_shared("acme", lambda: tenants.create(TenantCreate(name="acme")))
    published = etcd.data[part.registry.key("tenants", "acme")]
    assert isinstance(published, dict)
    assert published["tokens"] == []

    a_pass = threading.Thread(target=part.sync_site)
    a_pass.start()
    assert etcd.reading.wait(30)  # the pass holds the site's tenant without a token
    created: list[TokenCreated] = []
    change = threading.Thread(
        target=lambda: created.append(
            part.change_shared("acme", lambda: tenants.create_token("acme", "fresh"))
        )
    )
    change.start()
    change.join(0.5)
    assert change.is_alive()  # waits for the pass
    assert tenants.token_count("acme") == 0
    etcd.release.set()
    a_pass.join(30)
    change.join(30)
    assert not a_pass.is_alive()
    assert not change.is_alive()
    (token,) = created
    assert [v.id for v in tenants.list_tokens("acme")] == [token.id]  # not revoked here
    published = etcd.data[part.registry.key("tenants", "acme")]
    assert isinstance(published, dict)
    assert [t["view"]["id"] for t in published["tokens"]] == [token.id]  # nor lost from the site
    part.sync_site()  # and the next pass keeps it
    assert [v.id for v in tenants.list_tokens("acme")] == [token.id]
