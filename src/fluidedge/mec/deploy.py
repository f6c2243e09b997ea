"""Deploying an app as an instance (seed §4.4.1.1.2, Figures 19-20).

An app descriptor with a ``deploy`` section gets an instance of its own, made by the instance
manager from a template derived from the one it names (or from an image), with two interfaces:

- ``eth0`` on the tenant's data network, the one the TOF reaches: its address is the app's
  ``dataAddress``, where FORWARD_DECAPSULATED traffic is delivered;
- ``eth1`` on the platform network, where the daemon serves Mp1 (``[mec] platform_address``).

Each interface is behind security groups (the ``[secgroups]`` part): the ones the descriptor
names, else the platform's groups of the app's tenant, made on first use:

- ``mecp-<tenant>`` (platform): ingress from members (the tenant's other apps) and from the
  platform's own address (notifications), egress open;
- ``mecd-<tenant>`` (data): ingress from members and from ``[mec] data_ingress`` (the UEs
  whose traffic the TOF offloads), egress open.

Another tenant's app is in neither group, so it reaches neither interface.

The app's Mp1 credentials are written into the instance (``/.fe/mec/token``, 0600, owned by
the workload's user; ``/.fe/mec/app.json`` with its id and the Mp1 URLs) and named in its
environment (``MEC_APP_INSTANCE_ID``, ``MEC_MP1_URL``, ``MEC_TOKEN_FILE``,
``MEC_PLATFORM_ADDRESS``, ``MEC_DATA_ADDRESS``): the app never needs the operator. The
instance manager keeps the instance (restored and re-adopted at start like any other); the
platform records its name and deletes it with the app.

The pure part (names, documents, address choice) is separate from :class:`InstanceDeployer`,
the adapter over the daemon's ``instances`` and ``secgroups`` parts.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from pydantic import ValidationError

from fluidedge.errors import ConflictError, FluidedgeError, NotFoundError
from fluidedge.instances.models import InstanceRequest, TemplateSpec
from fluidedge.mec.descriptor import Deployment
from fluidedge.mec.errors import MecConflict, MecNotFound, MecUnprocessable, MecUnsupported
from fluidedge.tenants.scope import ADMIN

log = logging.getLogger("fluidedge.mec")

SERVICE_MGMT = "/mec_service_mgmt/v1"
APP_SUPPORT = "/mec_app_support/v1"
DEFAULT_TENANT = "default"  # the descriptor's tenant that means "the admin's own"
TOKEN_FILE = "mec/token"  # noqa: S105 - a path, not a secret
APP_FILE = "mec/app.json"
CA_FILE = "mec/ca.pem"  # the platform listener's certificate, when Mp1 is served over HTTPS
DATA_IF = "eth0"
PLATFORM_IF = "eth1"


@dataclass(frozen=True)
class PlatformNet:
    """Where apps reach the platform: an instance network and the host's address on it."""

    network: str
    address: ipaddress.IPv4Interface
    port: int
    data_ingress: tuple[ipaddress.IPv4Network, ...] = ()
    # The platform listener's certificate (PEM) when Mp1 is served over HTTPS (the daemon's
    # api.tls_cert): written into every app instance as the CA its Mp1 client trusts.
    certificate: str | None = None

    @property
    def mp1_url(self) -> str:
        scheme = "https" if self.certificate is not None else "http"
        return f"{scheme}://{self.address.ip}:{self.port}"


@dataclass(frozen=True)
class Placed:
    """What a deployment made."""

    instance: str
    template: str
    data_address: str  # the data interface's address (no prefix): the app's dataAddress
    platform_address: str  # a.b.c.d/n
    mp1_url: str  # where the app reaches Mp1


class DeployPort(Protocol):
    """The platform's view of the instance manager."""

    def deploy(
        self, app_id: str, tenant: str, spec: Deployment, token: str, taken: set[str]
    ) -> Placed: ...

    def undeploy(self, instance: str, template: str) -> None: ...

    def exists(self, instance: str) -> bool: ...


# --- pure -------------------------------------------------------------------------------


def owner_of(tenant: str) -> str | None:
    """The instance manager's owner for an app of ``tenant`` (None: the admin's)."""
    return None if tenant == DEFAULT_TENANT else tenant


def resource_name(app_id: str, tenant: str) -> str:
    """The app's instance and template name (a tenant's resources start with ``<tenant>-``)."""
    suffix = "mec-" + app_id.replace("-", "")[:12]
    owner = owner_of(tenant)
    return suffix if owner is None else f"{owner}-{suffix}"


def platform_group(tenant: str) -> str:
    return f"mecp-{tenant}"


def data_group(tenant: str) -> str:
    return f"mecd-{tenant}"


def group_docs(tenant: str, net: PlatformNet) -> list[dict[str, Any]]:
    """The platform's two groups of ``tenant`` (see the module docstring)."""
    egress = [
        {"id": "egress-v4", "direction": "egress", "ethertype": "IPv4"},
        {"id": "egress-v6", "direction": "egress", "ethertype": "IPv6"},
    ]
    plat = platform_group(tenant)
    data = data_group(tenant)
    return [
        {
            "id": plat,
            "description": f"ME platform: tenant {tenant}'s apps on the platform network",
            "rules": [
                {"id": "members", "direction": "ingress", "ethertype": "IPv4",
                 "remote_group": plat},
                {"id": "platform", "direction": "ingress", "ethertype": "IPv4",
                 "protocol": "tcp", "remote_ip_prefix": f"{net.address.ip}/32"},
                *egress,
            ],
        },
        {
            "id": data,
            "description": f"ME platform: tenant {tenant}'s apps on their data network",
            "rules": [
                {"id": "members", "direction": "ingress", "ethertype": "IPv4",
                 "remote_group": data},
                *(
                    {"id": f"ue-{n}", "direction": "ingress", "ethertype": "IPv4",
                     "remote_ip_prefix": str(prefix)}
                    for n, prefix in enumerate(net.data_ingress)
                ),
                *egress,
            ],
        },
    ]  # fmt: skip


def pick_platform_address(net: PlatformNet, subnet: str | None, taken: Iterable[str]) -> str:
    """The first address of the platform subnet that is neither the host's nor taken."""
    network = ipaddress.ip_network(subnet) if subnet else net.address.network
    used = {ipaddress.ip_interface(a).ip for a in taken} | {net.address.ip}
    for host in network.hosts():
        if host not in used:
            return f"{host}/{network.prefixlen}"
    raise MecConflict(f"platform network {net.network}: no address left in {network}")


def app_files(app_id: str, token: str, net: PlatformNet) -> dict[str, str]:
    """The files written into the app's instance (under /.fe/)."""
    about = {
        "appInstanceId": app_id,
        "mp1": net.mp1_url,
        "serviceMgmt": net.mp1_url + SERVICE_MGMT,
        "appSupport": net.mp1_url + APP_SUPPORT,
        "tokenFile": "/.fe/" + TOKEN_FILE,
    }
    files = {TOKEN_FILE: token}
    if net.certificate is not None:
        about["caFile"] = "/.fe/" + CA_FILE
        files[CA_FILE] = net.certificate
    files[APP_FILE] = json.dumps(about, indent=1) + "\n"
    return files


def app_env(
    app_id: str, net: PlatformNet, platform_address: str = "", data_address: str = ""
) -> dict[str, str]:
    """The app's environment: who it is, where Mp1 is, its token file and its addresses."""
    env = {
        "MEC_APP_INSTANCE_ID": app_id,
        "MEC_MP1_URL": net.mp1_url,
        "MEC_TOKEN_FILE": "/.fe/" + TOKEN_FILE,
    }
    if net.certificate is not None:
        env["MEC_CA_FILE"] = "/.fe/" + CA_FILE
    if platform_address:
        env["MEC_PLATFORM_ADDRESS"] = str(ipaddress.ip_interface(platform_address).ip)
    if data_address:
        env["MEC_DATA_ADDRESS"] = str(ipaddress.ip_interface(data_address).ip)
    return env


def template_doc(  # noqa: PLR0917 (one call site, each argument distinct)
    base: dict[str, Any],
    name: str,
    app_id: str,
    spec: Deployment,
    net: PlatformNet,
    groups: tuple[list[str] | None, list[str] | None],
) -> dict[str, Any]:
    """The app's own template: ``base`` (a template's fields, or ``{"image": ...}``) with the
    two interfaces, no warm pool (one instance), and the descriptor's command."""
    data_groups, platform_groups = groups
    doc = {k: v for k, v in base.items() if k not in {"name", "pool", "interfaces", "labels"}}
    doc.update(
        name=name,
        description=f"ME app instance {app_id}",
        interfaces=[
            {"name": DATA_IF, "network": spec.data.network, "security_groups": data_groups},
            {"name": PLATFORM_IF, "network": net.network, "security_groups": platform_groups},
        ],
        pool={"size": 0},
        labels={"mec-app": app_id},
    )
    if spec.command is not None:
        doc["command"] = list(spec.command)
    return doc


def instance_doc(  # noqa: PLR0917 (one call site)
    name: str,
    spec: Deployment,
    platform_address: str,
    app_id: str,
    token: str,
    net: PlatformNet,
) -> dict[str, Any]:
    data: dict[str, Any] = {"addresses": [spec.data.address]}
    if spec.data.gateway is not None:
        data["gateway"] = spec.data.gateway
    doc: dict[str, Any] = {
        "name": name,
        "template": name,
        "interfaces": {DATA_IF: data, PLATFORM_IF: {"addresses": [platform_address]}},
        "env": {**spec.env, **app_env(app_id, net, platform_address, spec.data.address)},
        "files": app_files(app_id, token, net),
        "resources": spec.resources.model_dump(exclude_none=True),
        "labels": {"mec-app": app_id},
        "cold": True,
    }
    if spec.restart is not None:  # else the template's (derived from the one named)
        doc["restart"] = spec.restart
    return doc


# --- the adapter ------------------------------------------------------------------------


class InstanceDeployer:
    """:class:`DeployPort` over the daemon's ``instances`` part (its manager and tenant
    scoping) and, when enabled, its ``secgroups`` part."""

    def __init__(self, instances: Any, secgroups: Any, net: PlatformNet) -> None:
        self.part = instances
        self.secgroups = secgroups
        self.net = net

    @property
    def manager(self) -> Any:
        return self.part.manager

    def _scope(self) -> Any:
        scoped = getattr(self.part, "scoped", None)
        return getattr(scoped, "scope", None)

    def exists(self, instance: str) -> bool:
        return instance in self.manager.instances

    def _base(self, spec: Deployment, owner: str | None) -> dict[str, Any]:
        if spec.image is not None:
            return {"image": spec.image}  # the manager's create_template: 404 if unknown
        name = spec.template or ""
        template = self.manager.templates.get(name)
        scope = self._scope()
        visible = template is not None and (
            owner is None
            or name in self.manager.builtin
            or (scope is not None and scope.service.owner("template", name) == owner)
        )
        if not visible:
            raise MecNotFound(f"deploy.template: no template {name!r}")
        base: dict[str, Any] = template.model_dump(mode="json")
        return base

    def _groups(self, tenant: str, spec: Deployment) -> tuple[list[str] | None, list[str] | None]:
        if self.secgroups is None:
            return None, None
        data = spec.data.security_groups
        plat = spec.platform.security_groups
        if data is None or plat is None:
            self._ensure_groups(tenant)
        return (
            list(data) if data is not None else [data_group(tenant)],
            list(plat) if plat is not None else [platform_group(tenant)],
        )

    def _ensure_groups(self, tenant: str) -> None:
        service = self.secgroups.service
        for doc in group_docs(tenant, self.net):
            try:
                service.get_group(doc["id"])
            except NotFoundError:
                with contextlib.suppress(ConflictError):  # made meanwhile
                    service.create_group(doc, tenant)  # the tenant's: its instances' ports

    def deploy(
        self, app_id: str, tenant: str, spec: Deployment, token: str, taken: set[str]
    ) -> Placed:
        manager = self.manager
        owner = owner_of(tenant)
        if spec.data.network not in manager.networks:
            raise MecNotFound(f"deploy.data.network: no network {spec.data.network!r}")
        platform_spec = manager.networks.get(self.net.network)
        if platform_spec is None:
            raise MecUnsupported(
                f"[mec] platform_network: the instance manager has no network {self.net.network!r}"
            )
        name = resource_name(app_id, tenant)
        scope = self._scope()
        base = self._base(spec, owner)
        groups = self._groups(tenant, spec)
        address = spec.platform.address or pick_platform_address(
            self.net, platform_spec.subnet, taken
        )
        try:
            template = TemplateSpec.model_validate(
                template_doc(base, name, app_id, spec, self.net, groups)
            )
            request = InstanceRequest.model_validate(
                instance_doc(name, spec, address, app_id, token, self.net)
            )
        except ValidationError as exc:
            # The descriptor held its schema; combined with the named template (or image)
            # and the platform network it does not: 422, what it asks cannot be made.
            raise MecUnprocessable(f"deploy: {_reason(exc)}") from exc
        if scope is not None:
            owner = scope.owner_for_create(ADMIN, "template", name, owner)
            with scope.creating("template", name, owner, exists=name in manager.templates):
                manager.create_template(template)
        else:
            manager.create_template(template)
        try:
            scoped = self.part.scoped
            if scoped is not None:
                with scoped.admit_instance(ADMIN, request, owner) as checked:
                    manager.create_instance(checked)
            else:
                manager.create_instance(request)
        except BaseException:
            self._remove("template", name)
            raise
        log.info(
            "app %s deployed as instance %s",
            app_id,
            name,
            extra={"part": "mec", "event": "app_deployed", "ids": f"{app_id},{name}"},
        )
        data_ip = str(ipaddress.ip_interface(spec.data.address).ip)
        return Placed(name, name, data_ip, address, self.net.mp1_url)

    def undeploy(self, instance: str, template: str) -> None:
        self._remove("instance", instance)
        self._remove("template", template)

    def _remove(self, kind: str, name: str) -> None:
        manager = self.manager
        remove = manager.delete_instance if kind == "instance" else manager.delete_template
        table = manager.instances if kind == "instance" else manager.templates
        if name not in table:
            return
        scoped = getattr(self.part, "scoped", None)
        try:
            if scoped is not None:
                scoped.delete(kind, ADMIN, name, remove)
            else:
                remove(name)
        except FluidedgeError as exc:
            log.warning(
                "app %s %s: not removed: %s",
                kind,
                name,
                exc,
                extra={"part": "mec", "event": "undeploy_failed", "ids": name},
            )
            raise


def _reason(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', 'invalid')}"
        for e in exc.errors()
    )
