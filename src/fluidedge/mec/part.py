"""The ME platform part (config table ``[mec]``): Mp1 and the app instances behind it.

It restores app instances, services, subscriptions and rules from the store at start and
reconciles the TOF's ``mec-`` services with the active rules of ready apps (the TOF part,
``[tof]``, starts before it). Mp1's routes authenticate their own requests (``own_auth``):
an app instance's token is not the daemon's.

With ``platform_network`` and ``platform_address``, apps can be deployed as instances
(:mod:`fluidedge.mec.deploy`, the ``[instances]`` part starts before this one) and Mp1 is also
served on the platform network (:mod:`fluidedge.mec.listener`).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import ipaddress
import logging
from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from fluidedge.core.hostwait import HostWait
from fluidedge.core.part import DaemonContext
from fluidedge.core.periodic import every
from fluidedge.errors import FluidedgeError
from fluidedge.instances.models import TemplateSpec
from fluidedge.mec import examples
from fluidedge.mec.api import (
    MP1_PREFIXES,
    add_schemas,
    build_app_support,
    build_apps,
    build_service_mgmt,
)
from fluidedge.mec.deploy import DeployPort, InstanceDeployer, PlatformNet
from fluidedge.mec.dns import DnsResponder, Records, absent_listen
from fluidedge.mec.dns import serve as dns_serve
from fluidedge.mec.errors import MecInvalid
from fluidedge.mec.listener import (
    Mp1Listener,
    add_address,
    device_exists,
    mp1_only,
    remove_address,
)
from fluidedge.mec.notify import IPNetwork, Notifier
from fluidedge.mec.persist import Tables
from fluidedge.mec.platform import CatalogTof, Platform, TofPort

log = logging.getLogger("fluidedge.mec")

DEFAULT_CALLBACK_NETWORKS = [
    "127.0.0.0/8", "::1/128", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7",
]  # fmt: skip


class DnsConfig(BaseModel):
    """``[mec.dns]``: the DNS responder serving the DNS rules (:mod:`fluidedge.mec.dns`)."""

    model_config = ConfigDict(extra="forbid")
    listen: str = Field(default="127.0.0.1", description="IPv4 address the responder binds")
    port: int = Field(default=53, ge=1, le=65535)
    # Where every other name is asked ("a.b.c.d" or "a.b.c.d:port"), in order.
    upstream: Annotated[list[str], Field(max_length=8)] = Field(default_factory=list)
    timeout: float = Field(default=2.0, gt=0.0, le=30.0)
    # The network namespace the responder's socket is in (default: the daemon's), e.g. the
    # TOF's [tof] netns, where the offloaded queries come out of its apps TUN.
    netns: str | None = Field(default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
    # The namespace the upstream queries leave from (default: the daemon's), e.g. the TOF's,
    # when the core's resolver is reached from there (the lab routes its host namespace to
    # the PDN's DNS server).
    upstream_netns: str | None = Field(default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
    # The core resolver the UEs ask: with it, a TOF service (mec-dns) offloads their queries
    # to the responder (serviceIP = resolver, applicationIP = listen; needs [tof]).
    resolver: str | None = None

    def upstreams(self) -> list[tuple[str, int]]:
        out = []
        for text in self.upstream:
            host, _, port = text.partition(":")
            try:
                out.append((str(ipaddress.IPv4Address(host)), int(port or 53)))
            except ValueError as exc:
                raise MecInvalid(f"config [mec.dns] upstream {text!r}: {exc}") from exc
        return out

    def offload(self) -> tuple[str, str] | None:
        if self.resolver is None:
            return None
        try:
            resolver = str(ipaddress.IPv4Address(self.resolver))
            listen = str(ipaddress.IPv4Address(self.listen))
        except ValueError as exc:
            raise MecInvalid(f"config [mec.dns]: {exc}") from exc
        if self.port != 53:
            raise MecInvalid("config [mec.dns] resolver: the offloaded queries go to port 53")
        return resolver, listen


class MecConfig(BaseModel):
    """The ``[mec]`` table."""

    model_config = ConfigDict(extra="forbid")
    # Where notifications may be sent (a callback is checked after its name is resolved).
    callback_networks: Annotated[list[str], Field(max_length=64)] = Field(
        default_factory=lambda: list(DEFAULT_CALLBACK_NETWORKS)
    )
    notify_attempts: int = Field(default=3, ge=1, le=10)
    notify_timeout: float = Field(default=5.0, gt=0.0, le=60.0)
    # Each app instance's Mp1 requests: per second and at once (429 with Retry-After past
    # them; 0: no limit). The admin token has no limit.
    app_rate: float = Field(default=50.0, ge=0.0, le=100000.0)
    app_burst: int = Field(default=100, ge=1, le=100000)
    # The example apps (fluidedge.mec.examples) as built-in instance templates.
    example_templates: bool = True
    # Deploying apps (seed §4.4.1.1.2): the instance network every app instance gets a second
    # interface on (a Linux bridge in the daemon's namespace), and the host's address on it,
    # where Mp1 is served on ``mp1_port``.
    platform_network: str | None = Field(default=None, max_length=63)
    platform_address: str | None = Field(default=None, examples=["10.77.0.1/24"])
    mp1_port: int = Field(default=8480, ge=1, le=65535)
    # How often the platform address is checked on its bridge and added again when something
    # took it away (``ip addr flush``, the bridge deleted and made again by the instances
    # part): without it no app reaches Mp1. 0: never.
    platform_check_interval: float = Field(default=1.0, ge=0.0, le=3600.0)
    # Mp1 on the platform network is off loopback: HTTPS with the daemon's api.tls_cert/tls_key
    # (whose certificate each app instance gets as its CA), or plain HTTP only when this says so.
    allow_plain_http: bool = False
    # Sources allowed into a deployed app's data interface by its tenant's default data group
    # (the UE pool, whose traffic the TOF offloads to the app). Unset: the TOF's IPv4
    # ue_pools (no TOF: none); [] lets no UE in.
    data_ingress: Annotated[list[str], Field(max_length=16)] | None = None
    dns: DnsConfig | None = None

    def platform(self, ue_pools: Sequence[str] = ()) -> PlatformNet | None:
        """The platform network; ``ue_pools``: the TOF's, the data ingress when
        ``data_ingress`` is unset."""
        if (self.platform_network is None) != (self.platform_address is None):
            raise MecInvalid("config [mec]: platform_network and platform_address go together")
        if self.platform_network is None or self.platform_address is None:
            return None
        try:
            address = ipaddress.IPv4Interface(self.platform_address)
            if self.data_ingress is not None:
                ingress = tuple(ipaddress.IPv4Network(n, strict=False) for n in self.data_ingress)
            else:
                pools = (ipaddress.ip_network(n, strict=False) for n in ue_pools)
                ingress = tuple(n for n in pools if isinstance(n, ipaddress.IPv4Network))
        except ValueError as exc:
            raise MecInvalid(f"config [mec]: {exc}") from exc
        if "/" not in self.platform_address:
            raise MecInvalid("config [mec] platform_address: a.b.c.d/n (with the prefix length)")
        return PlatformNet(self.platform_network, address, self.mp1_port, ingress)

    def networks(self) -> list[IPNetwork]:
        try:
            return [ipaddress.ip_network(n, strict=False) for n in self.callback_networks]
        except ValueError as exc:
            raise MecInvalid(f"config [mec] callback_networks: {exc}") from exc


class MecPart:
    name = "mec"
    own_auth = MP1_PREFIXES

    def __init__(self, config: MecConfig, ctx: DaemonContext) -> None:
        self.config = config
        self.ctx = ctx
        self.notifier = Notifier(
            config.networks(), attempts=config.notify_attempts, timeout=config.notify_timeout
        )
        self.net = self._platform_net(config, ctx)
        self.responder: DnsResponder | None = None
        self._dns_records: Records | None = None  # the DNS rules' table, kept for a late start
        # A responder whose namespace or listen address is not there yet (after a reboot)
        # waits for it; the rest of the daemon serves meanwhile (fluidedge.core.hostwait).
        self._dns_wait = HostWait(
            log, "mec", "the DNS responder", "mec_dns", config.platform_check_interval or 1.0
        )
        self.platform = Platform(
            Tables(ctx.store),
            self.notifier.submit,
            self._tof,
            deployer=self._deployer,
            dns_sink=self._dns_table if config.dns is not None else None,
            dns_offload=config.dns.offload() if config.dns is not None else None,
            app_rate=config.app_rate,
            app_burst=config.app_burst,
        )
        self.listener: Mp1Listener | None = None
        self._address_added: tuple[str, ipaddress.IPv4Interface] | None = None
        self._keeper: asyncio.Task[None] | None = None
        self.address_restored = 0  # the platform address added again (see _keep_address)

    def _deployer(self) -> DeployPort | None:
        instances = self.ctx.parts.get("instances")
        if self.net is None or instances is None or not hasattr(instances, "manager"):
            return None
        return InstanceDeployer(instances, self.ctx.parts.get("secgroups"), self.net)

    def _platform_bridge(self, net: PlatformNet) -> str:
        instances = self.ctx.parts.get("instances")
        manager = getattr(instances, "manager", None)
        if manager is None:
            raise MecInvalid("config [mec] platform_network: needs the [instances] part")
        spec = manager.networks.get(net.network)
        if spec is None:
            raise MecInvalid(
                f"config [mec] platform_network: the instance manager has no network "
                f"{net.network!r} (declare it under [instances.networks])"
            )
        if spec.netns is not None or spec.driver != "linuxbridge":
            raise MecInvalid(
                f"config [mec] platform_network: {net.network} must be a Linux bridge in "
                "the daemon's namespace (the daemon listens on it)"
            )
        return str(spec.bridge)

    async def _start_listener(self) -> None:
        net = self.net
        if net is None:
            return
        bridge = self._platform_bridge(net)
        if await asyncio.to_thread(add_address, bridge, net.address):
            self._address_added = (bridge, net.address)
        api = self.ctx.config.api
        tls = (api.tls_cert, api.tls_key) if net.certificate is not None else None
        listener = Mp1Listener(
            mp1_only(lambda: self.ctx.app, MP1_PREFIXES), str(net.address.ip), net.port, tls=tls
        )
        await listener.start()
        self.listener = listener
        if self.config.platform_check_interval > 0:
            self._keeper = asyncio.create_task(
                every(
                    self.config.platform_check_interval,
                    self._keep_address,
                    log,
                    "mec: the check of the platform address",
                    "platform_check_failed",
                )
            )

    def _keep_address(self) -> None:
        """The platform address back on its bridge if something took it away: an ``ip addr
        flush``, or the bridge deleted and made again by the instances part (with its ports,
        without our address). Meanwhile no app reaches Mp1 (the listener stays bound to the
        address and serves again once it is back). One ``ip -j addr`` per check.

        While the bridge itself is gone, nothing is said here: it is an instances network's,
        whose own check makes it again and says so (``switch_check_interval_s``); the address
        is added at the first check after that. Said here too, one deletion was two error
        lines, the first of them this check's own failure to read a device that is not there."""
        net = self.net
        if net is None:
            return
        bridge = self._platform_bridge(net)
        if not device_exists(bridge):
            return
        if not add_address(bridge, net.address):
            return
        self.address_restored += 1
        if self._address_added is None:
            self._address_added = (bridge, net.address)  # ours now: removed at stop
        log.error(
            "mec: the platform address %s on %s was gone (deleted from outside, or its bridge "
            "made again); added again: apps could not reach Mp1 meanwhile",
            net.address,
            bridge,
            extra={"part": "mec", "event": "platform_address_lost"},
        )

    def _dns_table(self, table: Records) -> None:
        self._dns_records = table
        if self.responder is not None:
            self.responder.table = table

    async def _start_dns(self) -> None:
        config = self.config.dns
        if config is None:
            return
        if config.resolver is not None and self._tof() is None:
            raise MecInvalid("config [mec.dns] resolver: offloading the UEs' queries needs [tof]")

        # What it needs from the host and is not there: its namespace, then its listen
        # address in it (the operator's, made again after a reboot).
        def absent() -> str | None:
            return absent_listen(config.listen, config.netns)

        reason = await asyncio.to_thread(absent)
        if reason is None:
            await self._open_dns(config)
            return
        self._dns_wait.begin(reason, absent, lambda: self._open_dns(config))

    async def _open_dns(self, config: DnsConfig) -> None:
        try:
            responder = await dns_serve(
                (config.listen, config.port),
                config.upstreams(),
                config.timeout,
                config.netns,
                config.upstream_netns,
            )
        except (OSError, FluidedgeError) as exc:
            raise MecInvalid(f"config [mec.dns]: {config.listen}:{config.port}: {exc}") from exc
        if self._dns_records is not None:  # the rules loaded while it waited
            responder.table = self._dns_records
        self.responder = responder

    @property
    def waiting(self) -> str | None:
        """Why the DNS responder waits for the host (None: it does not; ``/healthz``)."""
        reason = self._dns_wait.reason
        return None if reason is None else f"the DNS responder: {reason}"

    def _tof(self) -> TofPort | None:
        part = self.ctx.parts.get("tof")
        return CatalogTof(part) if part is not None and hasattr(part, "catalog") else None

    @staticmethod
    def _platform_net(config: MecConfig, ctx: DaemonContext) -> PlatformNet | None:
        """The platform network; Mp1 there over HTTPS with the daemon's certificate, or plain
        HTTP only with ``allow_plain_http`` (the rule the daemon's own API follows off
        loopback)."""
        tof = ctx.parts.get("tof")
        pools = getattr(getattr(tof, "config", None), "ue_pools", None) or ()
        net = config.platform(pools)
        if net is None:
            return None
        api = ctx.config.api
        if api.tls_cert is None:
            if not config.allow_plain_http:
                raise MecInvalid(
                    "config [mec] platform_network: Mp1 is served off loopback there: set "
                    "api.tls_cert and api.tls_key (the platform listener uses them; app "
                    "instances get the certificate as their CA) or [mec] allow_plain_http = true"
                )
            return net
        try:
            certificate = api.tls_cert.read_text()
        except OSError as exc:
            raise MecInvalid(f"config api.tls_cert ({api.tls_cert}): {exc}") from exc
        return dataclasses.replace(net, certificate=certificate)

    def router(self) -> APIRouter:
        router = APIRouter()
        router.include_router(build_service_mgmt(self.platform))
        router.include_router(build_app_support(self.platform))
        router.include_router(build_apps(self.platform))
        return router

    def _provide_templates(self) -> None:
        """The example apps' built-in templates, in the instance manager (when there is one)."""
        instances = self.ctx.parts.get("instances")
        manager = getattr(instances, "manager", None)
        if not self.config.example_templates or manager is None:
            return
        specs = [TemplateSpec.model_validate(doc) for doc in examples.templates()]
        added = manager.provide_templates(specs)
        if added:
            log.info(
                "example app templates added: %s",
                ", ".join(added),
                extra={"part": "mec", "event": "templates_added", "ids": ",".join(added)},
            )

    async def start(self) -> None:
        self._provide_templates()
        await self.notifier.start()
        await self._start_listener()
        await self._start_dns()
        await asyncio.to_thread(self.platform.load)

    async def stop(self) -> None:
        await self._dns_wait.stop()
        if self._keeper is not None:
            self._keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._keeper
            self._keeper = None
        if self.responder is not None:
            self.responder.close()
            self.responder = None
        if self.listener is not None:
            await self.listener.stop()
            self.listener = None
        if self._address_added is not None:
            await asyncio.to_thread(remove_address, *self._address_added)
            self._address_added = None
        await self.notifier.stop()

    def rewrite_openapi(self, document: dict[str, Any]) -> None:
        """Mp1 routes always need a token (the admin's or an app's), whatever api.open_reads;
        their errors' ProblemDetails schema is defined (the responses name it)."""
        add_schemas(document)
        for path, item in document.get("paths", {}).items():
            if not path.startswith(MP1_PREFIXES):
                continue
            for operation in item.values():
                if isinstance(operation, dict) and "responses" in operation:
                    operation["security"] = [{"bearer": []}]

    def metrics(self) -> str:
        p = self.platform
        c = self.notifier.counters
        lines = [
            "# HELP fluidedge_mec_apps app instances on the ME platform",
            "# TYPE fluidedge_mec_apps gauge",
            f"fluidedge_mec_apps {len(p.apps)}",
            "# HELP fluidedge_mec_services services registered over Mp1",
            "# TYPE fluidedge_mec_services gauge",
            f"fluidedge_mec_services {len(p.services)}",
            "# HELP fluidedge_mec_notifications_total Mp1 notifications by outcome",
            "# TYPE fluidedge_mec_notifications_total counter",
            f'fluidedge_mec_notifications_total{{outcome="delivered"}} {c.delivered}',
            f'fluidedge_mec_notifications_total{{outcome="failed"}} {c.failed}',
            f'fluidedge_mec_notifications_total{{outcome="refused"}} {c.refused}',
            "# HELP fluidedge_mec_platform_address_restored_total the platform address added "
            "again after something took it away",
            "# TYPE fluidedge_mec_platform_address_restored_total counter",
            f"fluidedge_mec_platform_address_restored_total {self.address_restored}",
        ]
        if self.responder is not None:
            d = self.responder.counters
            lines += [
                "# HELP fluidedge_mec_dns_queries_total DNS queries by outcome",
                "# TYPE fluidedge_mec_dns_queries_total counter",
                f'fluidedge_mec_dns_queries_total{{outcome="answered"}} {d.answered}',
                f'fluidedge_mec_dns_queries_total{{outcome="forwarded"}} {d.forwarded}',
                f'fluidedge_mec_dns_queries_total{{outcome="failed"}} {d.failed}',
                f'fluidedge_mec_dns_queries_total{{outcome="dropped"}} {d.dropped}',
                "# HELP fluidedge_mec_dns_tcp_queries_total DNS queries that came over TCP",
                "# TYPE fluidedge_mec_dns_tcp_queries_total counter",
                f"fluidedge_mec_dns_tcp_queries_total {d.tcp_queries}",
                "# HELP fluidedge_mec_dns_tcp_refused_total TCP clients closed at once (too many)",
                "# TYPE fluidedge_mec_dns_tcp_refused_total counter",
                f"fluidedge_mec_dns_tcp_refused_total {d.tcp_refused}",
            ]
        return "\n".join(lines) + "\n"


def create_part(section: dict[str, Any], ctx: DaemonContext) -> MecPart:
    try:
        config = MecConfig.model_validate(section)
    except ValidationError as exc:
        raise MecInvalid(f"config [mec]: {exc}") from exc
    return MecPart(config, ctx)
