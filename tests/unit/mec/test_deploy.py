"""Deploying apps as instances: the pure part (names, groups, documents, addresses), the
descriptor's checks, the platform's use of its deployer (rollback, delete, restore), and the
platform listener's path filter."""

from __future__ import annotations

import asyncio
import ipaddress
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from pydantic import ValidationError
from tests.fixtures.rows import set_aside

from fluidedge.core.config import parse_config
from fluidedge.core.store import Store
from fluidedge.instances.models import InstanceRequest, TemplateSpec
from fluidedge.mec import deploy
from fluidedge.mec.deploy import Placed, PlatformNet
from fluidedge.mec.descriptor import AppDescriptor, Deployment, check_descriptor
from fluidedge.mec.errors import MecConflict, MecInvalid, MecUnprocessable, MecUnsupported
from fluidedge.mec.listener import mp1_only
from fluidedge.mec.part import MecConfig, MecPart
from fluidedge.mec.persist import Tables
from fluidedge.mec.platform import Platform
from fluidedge.secgroups.model import SecurityGroup

NET = PlatformNet(
    "mecplat", ipaddress.IPv4Interface("10.77.0.1/24"), 8480,
    (ipaddress.IPv4Network("10.45.0.0/16"),),
)  # fmt: skip
APP = "0a1b2c3d-4e5f-6071-8293-a4b5c6d7e8f9"


def deployment(**extra: Any) -> Deployment:
    doc = {"template": "httpd", "data": {"network": "apps", "address": "198.18.3.10/24"}}
    return Deployment.model_validate({**doc, **extra})


def test_names_follow_the_tenant_prefix_rule() -> None:
    assert deploy.resource_name(APP, "default") == "mec-0a1b2c3d4e5f"
    assert deploy.resource_name(APP, "acme") == "acme-mec-0a1b2c3d4e5f"
    assert deploy.owner_of("default") is None
    assert deploy.owner_of("acme") == "acme"


def test_the_platform_groups_are_valid_and_scoped_to_the_tenant() -> None:
    plat, data = (SecurityGroup.from_json(d) for d in deploy.group_docs("acme", NET))
    assert (plat.id, data.id) == ("mecp-acme", "mecd-acme")
    plat_in = {(r.remote_group, str(r.remote_ip_prefix)) for r in plat.rules
               if r.direction == "ingress"}  # fmt: skip
    assert plat_in == {("mecp-acme", "None"), (None, "10.77.0.1/32")}
    data_in = {(r.remote_group, str(r.remote_ip_prefix)) for r in data.rules
               if r.direction == "ingress"}  # fmt: skip
    assert data_in == {("mecd-acme", "None"), (None, "10.45.0.0/16")}
    assert {r.direction for r in data.rules} == {"ingress", "egress"}


def test_platform_addresses_skip_the_host_and_the_taken() -> None:
    assert deploy.pick_platform_address(NET, "10.77.0.0/24", []) == "10.77.0.2/24"
    taken = ["10.77.0.2/24", "10.77.0.3/24"]
    assert deploy.pick_platform_address(NET, "10.77.0.0/24", taken) == "10.77.0.4/24"
    full = [f"10.77.0.{n}/30" for n in (2,)]
    with pytest.raises(MecConflict, match="no address left"):
        deploy.pick_platform_address(NET, "10.77.0.0/30", full)


def test_the_template_and_request_carry_two_interfaces_the_token_and_the_env() -> None:
    base = {"name": "httpd", "image": "busybox", "command": ["/bin/busybox", "httpd"],
            "pool": {"size": 2}, "files": {"www/index.html": "x"}}  # fmt: skip
    spec = deployment(env={"MODE": "edge"}, resources={"memory_mb": 64})
    doc = deploy.template_doc(base, "mec-x", APP, spec, NET, (["mecd-acme"], ["mecp-acme"]))
    template = TemplateSpec.model_validate(doc)
    assert [(i.name, i.network, i.security_groups) for i in template.interfaces] == [
        ("eth0", "apps", ["mecd-acme"]), ("eth1", "mecplat", ["mecp-acme"]),
    ]  # fmt: skip
    assert template.pool.size == 0
    assert template.files == {"www/index.html": "x"}
    request = InstanceRequest.model_validate(
        deploy.instance_doc("mec-x", spec, "10.77.0.2/24", APP, "fea_a.b", NET)
    )
    assert request.interfaces["eth0"].addresses == ["198.18.3.10/24"]
    assert request.interfaces["eth1"].addresses == ["10.77.0.2/24"]
    assert request.files["mec/token"] == "fea_a.b"
    about = json.loads(request.files["mec/app.json"])
    assert about["appSupport"] == "http://10.77.0.1:8480/mec_app_support/v1"
    assert request.env == {
        "MODE": "edge", "MEC_APP_INSTANCE_ID": APP, "MEC_MP1_URL": "http://10.77.0.1:8480",
        "MEC_TOKEN_FILE": "/.fe/mec/token", "MEC_PLATFORM_ADDRESS": "10.77.0.2",
        "MEC_DATA_ADDRESS": "198.18.3.10",
    }  # fmt: skip
    assert request.resources.memory_mb == 64
    assert request.restart is None  # the template's policy (derived from the one named)


def test_the_descriptor_can_ask_for_the_restart_policy() -> None:
    base = {"name": "httpd", "image": "busybox", "restart": "always"}
    inherit = deployment()
    template = TemplateSpec.model_validate(
        deploy.template_doc(base, "mec-x", APP, inherit, NET, (None, None))
    )
    assert template.restart == "always"  # the named template's, carried over
    for asked in ("always", "no"):
        spec = deployment(restart=asked)
        doc = deploy.instance_doc("mec-x", spec, "10.77.0.2/24", APP, "fea_a.b", NET)
        assert InstanceRequest.model_validate(doc).restart == asked
    with pytest.raises(ValidationError, match="restart"):
        deployment(restart="sometimes")


def test_the_descriptor_checks_the_deploy_section() -> None:
    # One member at a time: the schema's (a 400 at the route).
    with pytest.raises(ValidationError, match="prefix length"):
        Deployment.model_validate({"image": "x", "data": {"network": "a", "address": "1.2.3.4"}})
    with pytest.raises(ValidationError, match="prefix length"):
        Deployment.model_validate(
            {"image": "x", "data": {"network": "a", "address": "1.2.3.4/255.255.255.0"}}
        )
    with pytest.raises(ValidationError, match="IPv4 address"):
        deployment(data={"network": "a", "address": "1.2.3.4/24", "gateway": "1.2.3.01"})
    # Members that contradict each other: check_descriptor's, a 422 (MecUnprocessable).
    for spec, reason in [
        ({"name": "a", "deploy": deployment(image="busybox").model_dump()}, "exactly one"),
        (
            {"name": "a", "deploy": deployment(template=None).model_dump()},
            "exactly one of template and image",
        ),
        (
            {"name": "a", "dataAddress": "10.0.0.1", "deploy": deployment().model_dump()},
            "dataAddress",
        ),
    ]:
        parsed = AppDescriptor.model_validate(spec)  # each member is right on its own
        with pytest.raises(MecUnprocessable, match=reason):
            check_descriptor(parsed)
    check_descriptor(
        AppDescriptor.model_validate({"name": "a", "deploy": deployment().model_dump()})
    )


class FakeDeployer:
    def __init__(self) -> None:
        self.deployed: dict[str, tuple[str, Deployment, str, set[str]]] = {}
        self.undeployed: list[str] = []

    def deploy(
        self, app_id: str, tenant: str, spec: Deployment, token: str, taken: set[str]
    ) -> Placed:
        name = deploy.resource_name(app_id, tenant)
        self.deployed[name] = (tenant, spec, token, set(taken))
        address = f"10.77.0.{len(self.deployed) + 1}/24"
        data = str(ipaddress.ip_interface(spec.data.address).ip)
        return Placed(name, name, data, address, NET.mp1_url)

    def undeploy(self, instance: str, template: str) -> None:
        self.undeployed.append(instance)
        self.deployed.pop(instance, None)

    def exists(self, instance: str) -> bool:
        return instance in self.deployed


def platform(tmp_path: Path, port: FakeDeployer | None) -> Platform:
    tables = Tables(Store(tmp_path / "db.sqlite"))
    return Platform(tables, lambda *_: None, lambda: None, deployer=lambda: port)


def descriptor(**extra: Any) -> AppDescriptor:
    return AppDescriptor.model_validate(
        {"name": "cache", "deploy": deployment().model_dump(by_alias=True), **extra}
    )


def test_the_platform_deploys_records_and_undeploys(tmp_path: Path) -> None:
    port = FakeDeployer()
    first = platform(tmp_path, port)
    view, token = first.create_app(descriptor())
    name = view["instance"]
    assert port.deployed[name][2] == token
    assert (view["dataAddress"], view["platformAddress"]) == ("198.18.3.10", "10.77.0.2/24")
    assert view["mp1Url"] == "http://10.77.0.1:8480"
    second_view, _ = first.create_app(descriptor())
    assert port.deployed[second_view["instance"]][3] == {"10.77.0.2/24"}  # taken is passed

    restored = platform(tmp_path, port)
    restored.load()
    assert restored.view(view["appInstanceId"])["instance"] == name
    restored.delete_app(view["appInstanceId"])
    assert port.undeployed == [name]


def test_a_deployment_is_undone_when_the_app_cannot_be_stored(tmp_path: Path) -> None:
    port = FakeDeployer()
    plat = platform(tmp_path, port)

    write = plat.tables.write
    calls: list[int] = []

    def broken(*args: Any, **kwargs: Any) -> None:
        calls.append(1)
        if len(calls) > 1:  # the app is stored, then its record of the instance is refused
            raise OSError("disk gone")
        write(*args, **kwargs)

    plat.tables.write = broken  # type: ignore[method-assign]
    with pytest.raises(OSError, match="disk gone"):
        plat.create_app(descriptor())
    assert port.deployed == {}
    assert len(port.undeployed) == 1
    assert plat.apps == {}
    assert plat.tokens == {}


def test_a_failed_deployment_removes_the_app(tmp_path: Path) -> None:
    port = FakeDeployer()
    plat = platform(tmp_path, port)
    seen: list[set[str]] = []

    def refuse(app_id: str, *_: Any) -> Placed:
        seen.append(set(plat.apps))  # the app exists while its instance starts (Mp1 works)
        raise MecConflict("admission refused")

    port.deploy = refuse  # type: ignore[method-assign]
    with pytest.raises(MecConflict, match="admission"):
        plat.create_app(descriptor())
    assert len(seen[0]) == 1
    assert plat.apps == {}
    assert plat.tables.load(lambda _kind, doc: doc)["app"] == {}


def test_without_a_deployer_a_deploy_is_refused_with_the_reason(tmp_path: Path) -> None:
    with pytest.raises(MecUnsupported, match="platform_network") as refused:
        platform(tmp_path, None).create_app(descriptor())
    assert refused.value.http_status == 422  # the daemon's configuration, not the request's form


def test_the_platform_listener_serves_mp1_paths_only() -> None:
    seen: list[str] = []

    async def daemon(scope: Any, _receive: Any, _send: Any) -> None:
        seen.append(scope["path"])

    served = mp1_only(lambda: daemon, ("/mec_app_support/v1", "/mec_service_mgmt/v1"))
    sent: list[dict[str, Any]] = []

    async def send(message: Any) -> None:
        sent.append(message)

    async def receive() -> Any:
        return {"type": "http.request"}

    async def run(path: str) -> None:
        await served({"type": "http", "path": path}, receive, send)

    for path in ("/mec_app_support/v1/timing/current_time", "/v1/instances",
                 "/mec_app_support/v10", "/metrics"):  # fmt: skip
        asyncio.run(run(path))
    assert seen == ["/mec_app_support/v1/timing/current_time"]
    assert [m["status"] for m in sent if m["type"] == "http.response.start"] == [404, 404, 404]


def _mec_config(**extra: Any) -> Any:

    return MecConfig(platform_network="mecplat", platform_address="10.77.0.1/24", **extra)


def test_mp1_off_loopback_needs_tls_or_an_explicit_plain_http(tmp_path: Path) -> None:
    """The platform listener is off loopback: the daemon's rule for its own API applies."""

    plain_ctx: Any = SimpleNamespace(config=parse_config({}), parts={})
    with pytest.raises(MecInvalid, match=r"api\.tls_cert and api\.tls_key .* allow_plain_http"):
        MecPart._platform_net(_mec_config(), plain_ctx)
    net = MecPart._platform_net(_mec_config(allow_plain_http=True), plain_ctx)
    assert net is not None
    assert net.mp1_url == "http://10.77.0.1:8480"
    assert net.certificate is None
    cert = tmp_path / "cert.pem"
    cert.write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    tls_ctx: Any = SimpleNamespace(
        config=parse_config({"api": {"tls_cert": str(cert), "tls_key": str(tmp_path / "k")}}),
        parts={},
    )
    net = MecPart._platform_net(_mec_config(), tls_ctx)
    assert net is not None
    assert net.mp1_url == "https://10.77.0.1:8480"
    files = deploy.app_files(APP, "fea_x", net)
    assert files[deploy.CA_FILE] == cert.read_text()  # the app's Mp1 client trusts it
    about = json.loads(files[deploy.APP_FILE])
    assert about["mp1"].startswith("https://")
    assert about["caFile"] == "/.fe/mec/ca.pem"
    assert deploy.app_env(APP, net)["MEC_CA_FILE"] == "/.fe/mec/ca.pem"
    assert "MEC_CA_FILE" not in deploy.app_env(APP, NET)  # plain: no CA
    assert deploy.CA_FILE not in deploy.app_files(APP, "fea_x", NET)
    missing: Any = SimpleNamespace(
        config=parse_config(
            {"api": {"tls_cert": str(tmp_path / "nope"), "tls_key": str(tmp_path / "k")}}
        ),
        parts={},
    )
    with pytest.raises(MecInvalid, match=r"api\.tls_cert"):
        MecPart._platform_net(_mec_config(), missing)


def test_data_ingress_defaults_to_the_tofs_ue_pools() -> None:
    plat = {"platform_network": "mecplat", "platform_address": "10.77.0.1/24"}
    pools = ["10.45.0.0/16", "2001:db8::/64", "198.18.100.0/24"]
    unset = MecConfig.model_validate(plat).platform(pools)
    assert unset is not None
    assert [str(n) for n in unset.data_ingress] == ["10.45.0.0/16", "198.18.100.0/24"]
    no_tof = MecConfig.model_validate(plat).platform()
    assert no_tof is not None
    assert no_tof.data_ingress == ()
    tof: Any = SimpleNamespace(config=SimpleNamespace(ue_pools=pools))
    ctx: Any = SimpleNamespace(config=parse_config({}), parts={"tof": tof})
    from_part = MecPart._platform_net(
        MecConfig.model_validate({**plat, "allow_plain_http": True}), ctx
    )
    assert from_part is not None
    assert from_part.data_ingress == unset.data_ingress  # the daemon's TOF part's pools
    closed = MecConfig.model_validate({**plat, "data_ingress": []}).platform(pools)
    assert closed is not None
    assert closed.data_ingress == ()
    given = MecConfig.model_validate({**plat, "data_ingress": ["10.9.0.0/16"]}).platform(pools)
    assert given is not None
    assert [str(n) for n in given.data_ingress] == ["10.9.0.0/16"]


@pytest.mark.parametrize("key", ["instance", "template"])
def test_a_stored_app_naming_another_apps_instance_is_set_aside_not_undeployed(
    tmp_path: Path, key: str
) -> None:
    """A damaged app row that names another app's instance (or template): its termination
    would delete that one. The row is set aside; the other app and its instance stay."""
    port = FakeDeployer()
    first = platform(tmp_path, port)
    victim, _ = first.create_app(descriptor())
    damaged, _ = first.create_app(descriptor())
    store = first.tables.store
    with store.transaction() as conn:
        conn.execute(
            "UPDATE mec_objects SET doc = json_set(doc, ?, ?) WHERE kind = 'app' AND id = ?",
            (f"$.{key}", victim["instance"], damaged["appInstanceId"]),
        )
    restored = platform(tmp_path, port)
    restored.load()
    assert set(restored.apps) == {victim["appInstanceId"]}
    assert port.undeployed == []
    assert victim["instance"] in port.deployed
    (aside,) = set_aside(tmp_path / "db.sqlite")
    assert aside.key == f"app/{damaged['appInstanceId']}"
    assert f"{key} {victim['instance']!r} is not this app's own" in aside.reason
