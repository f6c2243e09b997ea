"""The ME platform's state and operations: app instances, their Mp1 services, subscriptions and
rules, kept in memory, written through to the store, and mirrored into the TOF.

Every change is checked whole first, then applied to the TOF (a traffic rule's activation
takes effect before the call returns), then stored; a failure at either step puts memory and
the TOF back as they were. Notifications are queued after the store has the change.

The TOF is reached through :class:`TofPort` (the TOF part's service catalog in the daemon,
:class:`CatalogTof`): the platform owns the TOF services named ``mec-...`` and reconciles them
with the active rules of ready apps at start and after each change.
"""

from __future__ import annotations

import ipaddress
import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from pydantic import BaseModel

from fluidedge.mec import dns, policy, tokens
from fluidedge.mec.deploy import DeployPort, Placed, resource_name
from fluidedge.mec.descriptor import AppDescriptor, AppState, check_descriptor, record
from fluidedge.mec.errors import (
    MecConflict,
    MecInvalid,
    MecNotFound,
    MecTooManyRequests,
    MecUnprocessable,
    MecUnsupported,
)
from fluidedge.mec.models import (
    AppTerminationNotification,
    AppTerminationNotificationSubscription,
    ChangeType,
    DnsRule,
    LinkType,
    OperationActionType,
    Self,
    SerAvailabilityNotificationSubscription,
    ServiceAvailabilityNotification,
    ServiceInfo,
    ServiceReference,
    SubscriptionRef,
    TerminationLinks,
    TrafficRule,
    check_dns_rule,
)
from fluidedge.mec.persist import Put, Tables
from fluidedge.mec.policy import ADMIN, Caller, ServiceQuery, TofTarget, check_acts_for

log = logging.getLogger("fluidedge.mec")

SERVICE_MGMT = "/mec_service_mgmt/v1"
APP_SUPPORT = "/mec_app_support/v1"
TOF_PREFIX = "mec-"
DNS_SERVICE = "mec-dns"  # the core resolver's address -> the platform's DNS responder

Submit = Callable[[str, str, dict[str, Any]], None]


class TofPort(Protocol):
    """The platform's view of the TOF: the services it owns there, by name."""

    def owned(self) -> dict[str, TofTarget]:
        """name -> what every TOF service named ``mec-...`` is."""

    def put(self, name: str, target: TofTarget) -> None:
        """Create or replace a service; in the data plane when this returns."""

    def remove(self, name: str) -> None: ...


class CatalogTof:
    """:class:`TofPort` over the TOF part's service catalog (the same path as its REST API)."""

    def __init__(self, tof_part: Any) -> None:
        self.part = tof_part

    def owned(self) -> dict[str, TofTarget]:
        out: dict[str, TofTarget] = {}
        for s in self.part.catalog.all():
            if not s.name.startswith(TOF_PREFIX):
                continue
            m = s.match
            out[s.name] = (
                TofTarget(s.service_ip, s.application_ip)
                if m is None
                else TofTarget(
                    s.service_ip,
                    s.application_ip,
                    True,
                    m.protocols,
                    m.ports,
                    m.priority,
                    s.action,
                    m.sources,
                    m.source_ports,
                )
            )
        return out

    def put(self, name: str, target: TofTarget) -> None:
        from fluidedge.tof.models import Match, Service  # noqa: PLC0415 - only with a TOF

        match = (
            Match(
                target.protocols,
                target.ports,
                target.priority,
                target.sources,
                target.source_ports,
            )
            if target.classified
            else None
        )
        service = Service(
            name, target.service_ip, target.application_ip, None, match, target.action
        )
        if name in self.part.catalog.snapshot():
            self.part.catalog.update(name, service)
        else:
            self.part.catalog.add(service)

    def remove(self, name: str) -> None:
        self.part.catalog.delete(name)


@dataclass
class App:
    doc: dict[str, Any]
    traffic: dict[str, TrafficRule] = field(default_factory=dict)
    dns: dict[str, DnsRule] = field(default_factory=dict)
    terminated: threading.Event = field(default_factory=threading.Event)

    @property
    def id(self) -> str:
        return str(self.doc["appInstanceId"])

    @property
    def state(self) -> AppState:
        return AppState(self.doc["state"])


@dataclass
class Owned:
    """An object some app instance owns (a service or a subscription)."""

    app: str
    value: Any


def _stored_app(doc: dict[str, Any]) -> App:
    """An app as stored; KeyError or ValueError when the row lacks what an app has, or names
    an instance or template that is not the one its deployment makes (its termination
    deletes them: a damaged row must not point that at another app's or tenant's)."""
    app = App(doc)
    if not (isinstance(app.id, str) and app.state and isinstance(doc["tokenId"], str)):
        raise ValueError("appInstanceId and tokenId must be strings")
    if doc.get("instance") is not None or doc.get("template") is not None:
        own = resource_name(app.id, str(doc["tenant"]))
        for key in ("instance", "template"):
            if doc.get(key) is not None and doc[key] != own:
                raise ValueError(f"{key} {doc[key]!r} is not this app's own ({own!r})")
    return app


def _owned(doc: dict[str, Any], member: str, model: type[BaseModel]) -> Owned:
    """A stored service or subscription: its owner and its ``model`` from ``doc[member]``."""
    if not isinstance(doc["app"], str):
        raise ValueError("app must be a string")
    return Owned(doc["app"], model.model_validate(doc[member]))


def _stored(kind: str, doc: dict[str, Any]) -> App | TrafficRule | DnsRule | Owned:
    """One stored object of ``kind``; a row it refuses is set aside by the store
    (:meth:`Tables.load`): the daemon starts with everything else."""
    if kind == "app":
        return _stored_app(doc)
    if kind == "traffic_rule":
        return TrafficRule.model_validate(doc)
    if kind == "dns_rule":
        return DnsRule.model_validate(doc)
    member, model = _OWNED[kind]
    return _owned(doc, member, model)


_OWNED: dict[str, tuple[str, type[BaseModel]]] = {
    "service": ("info", ServiceInfo),
    "svc_sub": ("sub", SerAvailabilityNotificationSubscription),
    "term_sub": ("sub", AppTerminationNotificationSubscription),
}


class Platform:
    """See the module docstring."""

    def __init__(
        self,
        tables: Tables,
        submit: Submit,
        tof: Callable[[], TofPort | None],
        *,
        clock: Callable[[], float] = time.time,
        deployer: Callable[[], DeployPort | None] = lambda: None,
        dns_sink: Callable[[dns.Records], None] | None = None,
        dns_offload: tuple[str, str] | None = None,
        app_rate: float = 0.0,
        app_burst: int = 1,
    ) -> None:
        self.tables = tables
        # Each app instance's Mp1 request budget (429 past it; the admin token has none).
        self.limiter = policy.RequestLimiter(app_rate, app_burst)
        self._limiter_lock = threading.Lock()
        self.submit = submit
        self.tof = tof
        self.deployer = deployer
        # The DNS responder's table (swapped after every change) and the TOF service that
        # offloads the UEs' queries for the core resolver to it: (resolver, responder).
        self.dns_sink = dns_sink
        self.dns_offload = dns_offload
        self.clock = clock
        self.lock = threading.RLock()
        self.deploy_lock = threading.Lock()  # one deployment at a time (address choice)
        self.apps: dict[str, App] = {}
        self.tokens: dict[str, str] = {}  # token id -> app instance id
        self.services: dict[str, Owned] = {}  # serInstanceId -> ServiceInfo
        self.svc_subs: dict[str, Owned] = {}  # id -> SerAvailabilityNotificationSubscription
        self.term_subs: dict[str, Owned] = {}  # id -> AppTerminationNotificationSubscription

    # --- start ------------------------------------------------------------------------

    def load(self) -> None:
        """Restore everything from the store (daemon start), then reconcile the TOF."""
        stored = self.tables.load(_stored)
        with self.lock:
            for app_id, app in stored["app"].items():
                if isinstance(app, App):
                    self.apps[app_id] = app
                    self.tokens[app.doc["tokenId"]] = app_id
            for key, rule in stored["traffic_rule"].items():
                if isinstance(rule, TrafficRule) and (
                    owner := self.apps.get(key.partition("/")[0])
                ):
                    owner.traffic[rule.traffic_rule_id] = rule
            for key, dns_rule in stored["dns_rule"].items():
                if isinstance(dns_rule, DnsRule) and (
                    owner := self.apps.get(key.partition("/")[0])
                ):
                    owner.dns[dns_rule.dns_rule_id] = dns_rule
            owned: tuple[tuple[str, dict[str, Owned]], ...] = (
                ("service", self.services),
                ("svc_sub", self.svc_subs),
                ("term_sub", self.term_subs),
            )
            for kind, table in owned:
                for sid, value in stored[kind].items():
                    if isinstance(value, Owned):
                        table[sid] = value
            # An app caught mid-termination by a stop is terminated now: its grace ran out.
            ended = [a for a in self.apps.values() if a.state is AppState.TERMINATING]
            for app in ended:
                self._drop_app(app)
            self.sync_tof()
            self.sync_dns()
        for app in ended:
            self._undeploy(app.doc)
        port = self.deployer()
        for app in list(self.apps.values()):
            instance = app.doc.get("instance")
            if instance and port is not None and not port.exists(instance):
                log.warning(
                    "app %s: its instance %s is gone (not re-adopted)",
                    app.id,
                    instance,
                    extra={"part": "mec", "event": "app_instance_gone", "ids": app.id},
                )

    # --- credentials ------------------------------------------------------------------

    def authenticate(self, token: str) -> Caller | None:
        """The app instance a bearer token belongs to, else None."""
        parsed = tokens.parse(token)
        if parsed is None:
            return None
        token_id, secret = parsed
        app_id = self.tokens.get(token_id)
        if app_id is None:
            return None
        app = self.apps.get(app_id)
        if app is None or not tokens.matches(secret, app.doc["tokenHash"]):
            return None
        return Caller(app_id)

    def admit(self, caller: Caller) -> None:
        """Count one Mp1 request of ``caller`` against its app's budget (429 past it)."""
        if caller.app_instance_id is None:
            return
        with self._limiter_lock:
            wait = self.limiter.wait(caller.app_instance_id, time.monotonic())
        if wait > 0:
            raise MecTooManyRequests(
                f"app instance {caller.app_instance_id}: more than {self.limiter.rate:g} Mp1 "
                f"requests/s (burst {self.limiter.burst:g}); retry in {wait:.2f} s",
                retry_after=wait,
            )

    # --- apps (/v1/apps) --------------------------------------------------------------

    def create_app(self, spec: AppDescriptor) -> tuple[dict[str, Any], str]:
        """A new app instance (INSTANTIATED: its rules wait for confirm_ready) and its token.

        With ``deploy``, the app is stored first, so that its instance can use Mp1 while it
        starts (register its services, confirm ready); then its instance is started (seconds:
        the caller is on a worker thread). If the instance cannot be made, or the app's record
        of it cannot be stored, the app is removed again (with its instance).

        A descriptor whose parts contradict each other, or a rule the TOF cannot take, is a
        :class:`MecUnprocessable` (422) before anything is made."""
        check_descriptor(spec)
        data_address = spec.data_address
        if spec.deploy is not None:
            data_address = str(ipaddress.ip_interface(spec.deploy.data.address).ip)
        for rule in spec.traffic_rules:
            policy.tof_services(rule, data_address)  # refuses what cannot be applied
        if spec.deploy is not None and self.deployer() is None:
            raise MecUnsupported(
                "deploy: this daemon deploys no apps (it needs the [instances] part and "
                "[mec] platform_network)"
            )
        app_id = str(uuid.uuid4())
        token_id, token, token_hash = tokens.new_token()
        doc = record(app_id, spec, token_id, token_hash, self.clock())
        doc["dataAddress"] = data_address
        view = self._add_app(app_id, spec, doc)
        if spec.deploy is None:
            return view, token
        try:
            placed = self._deploy(app_id, spec, token)
        except BaseException:
            self._forget(app_id)
            raise
        try:
            with self.lock:
                app = self.app(app_id)
                placed_doc = {
                    **app.doc,
                    "instance": placed.instance,
                    "template": placed.template,
                    "platformAddress": placed.platform_address,
                    "mp1Url": placed.mp1_url,
                }
                self.tables.write([("app", app_id, app_id, placed_doc)])
                app.doc = placed_doc
                return self.view(app_id), token
        except BaseException:
            self._undeploy({**doc, "instance": placed.instance, "template": placed.template})
            self._forget(app_id)
            raise

    def _forget(self, app_id: str) -> None:
        """Remove an app whose deployment failed (whatever it did meanwhile over Mp1)."""
        try:
            self.delete_app(app_id)
        except Exception as exc:  # the original failure is what the caller must see
            log.warning(
                "app %s: not removed after its failed deployment: %s",
                app_id,
                exc,
                extra={"part": "mec", "event": "forget_failed", "ids": app_id},
            )

    def _deploy(self, app_id: str, spec: AppDescriptor, token: str) -> Placed:
        port = self.deployer()
        if port is None or spec.deploy is None:  # checked by create_app
            raise MecUnsupported(
                "deploy: this daemon deploys no apps (it needs the [instances] part and "
                "[mec] platform_network)"
            )
        with self.deploy_lock:
            with self.lock:
                taken = {
                    str(a.doc["platformAddress"])
                    for a in self.apps.values()
                    if a.doc.get("platformAddress")
                }
            return port.deploy(app_id, spec.tenant, spec.deploy, token, taken)

    def _undeploy(self, doc: dict[str, Any]) -> None:
        """Delete the app's instance and template (a failure is logged: the app is gone)."""
        instance = doc.get("instance")
        port = self.deployer()
        if not instance or port is None:
            return
        try:
            port.undeploy(str(instance), str(doc.get("template") or instance))
        except Exception as exc:  # the app is removed either way: say why it stayed
            log.warning(
                "app %s: its instance %s was not removed: %s",
                doc.get("appInstanceId"),
                instance,
                exc,
                extra={"part": "mec", "event": "undeploy_failed", "ids": str(instance)},
            )

    def _add_app(self, app_id: str, spec: AppDescriptor, doc: dict[str, Any]) -> dict[str, Any]:
        token_id = str(doc["tokenId"])
        app = App(doc)
        app.traffic = {r.traffic_rule_id: r for r in spec.traffic_rules}
        app.dns = {r.dns_rule_id: r for r in spec.dns_rules}
        puts: list[Put] = [("app", app_id, app_id, doc)]
        puts += [
            ("traffic_rule", f"{app_id}/{r}", app_id, v.wire()) for r, v in app.traffic.items()
        ]
        puts += [("dns_rule", f"{app_id}/{r}", app_id, v.wire()) for r, v in app.dns.items()]
        with self.lock:
            self.tables.write(puts)
            self.apps[app_id] = app
            self.tokens[token_id] = app_id
            return self.view(app_id)

    def app(self, app_id: str) -> App:
        app = self.apps.get(app_id)
        if app is None:
            raise MecNotFound(f"no app instance {app_id!r}")
        return app

    def view(self, app_id: str) -> dict[str, Any]:
        app = self.app(app_id)
        doc = app.doc
        return {
            "appInstanceId": app.id,
            "name": doc["name"],
            "tenant": doc["tenant"],
            "state": doc["state"],
            "dataAddress": doc.get("dataAddress"),
            "instance": doc.get("instance"),
            "platformAddress": doc.get("platformAddress"),
            "mp1Url": doc.get("mp1Url"),
            "tokenId": doc["tokenId"],
            "trafficRules": len(app.traffic),
            "dnsRules": len(app.dns),
            "services": sum(1 for s in self.services.values() if s.app == app.id),
            "created": doc["created"],
        }

    def views(self) -> list[dict[str, Any]]:
        with self.lock:
            return [
                self.view(a) for a in sorted(self.apps, key=lambda a: self.apps[a].doc["created"])
            ]

    def begin_termination(self, app_id: str) -> float:
        """Mark the app TERMINATING and notify its termination subscribers; return how long
        to wait for confirm_termination (0 when nobody is subscribed)."""
        with self.lock:
            app = self.app(app_id)
            subs = [(sid, o.value) for sid, o in self.term_subs.items() if o.app == app_id]
            if not subs:
                return 0.0
            if app.state is not AppState.TERMINATING:
                # Drain: its names leave the responder now (no new UE is sent to it); the
                # traffic rules of an app that was READY stay until it is removed, so the
                # sessions it serves can end.
                draining = app.state is AppState.READY
                self._set_state(app, AppState.TERMINATING, draining=draining)
                self.sync_dns()
            timeout = float(app.doc.get("gracefulTimeout", 10.0))
        for _sid, sub in subs:
            own = sub.links.self_.href if sub.links else None
            links = TerminationLinks(
                subscription=LinkType(href=own or ""),
                confirm_termination=LinkType(
                    href=f"{_base(own, APP_SUPPORT)}{APP_SUPPORT}/applications/{app_id}"
                    "/confirm_termination"
                ),
            )
            note = AppTerminationNotification.model_validate(
                {
                    "operationAction": OperationActionType.TERMINATING,
                    "maxGracefulTimeout": int(timeout + 0.999),
                    "_links": links,
                }
            )
            self.submit("AppTerminationNotification", sub.callback_reference, note.wire())
        return timeout

    def wait_terminated(self, app_id: str, timeout: float) -> bool:
        """Wait up to ``timeout`` s for confirm_termination; True if it came."""
        return self.app(app_id).terminated.wait(timeout)

    def delete_app(self, app_id: str) -> None:
        """Remove the app instance, its rules (out of the TOF), services and subscriptions."""
        with self.lock:
            app = self.app(app_id)
            removed = [s.value for s in self.services.values() if s.app == app_id]
            producer = str(app.doc["tenant"])
            self.tables.delete_app(app_id)
            self._drop_app(app)
            self.sync_tof()
            self.sync_dns()
        self._undeploy(app.doc)
        for info in removed:
            self._notify(None, info, producer, removed=True)

    def _drop_app(self, app: App) -> None:
        self.tables.delete_app(app.id)
        self.apps.pop(app.id, None)
        self.tokens.pop(app.doc["tokenId"], None)
        with self._limiter_lock:
            self.limiter.forget(app.id)
        for table in (self.services, self.svc_subs, self.term_subs):
            for key in [k for k, o in table.items() if o.app == app.id]:
                del table[key]
        app.terminated.set()

    def _set_state(self, app: App, state: AppState, **more: object) -> None:
        doc = {**app.doc, "state": state.value, **more}
        self.tables.write([("app", app.id, app.id, doc)])
        app.doc = doc

    # --- app support: ready / termination ----------------------------------------------

    def confirm_ready(self, caller: Caller, app_id: str) -> None:
        """READY: the app's ACTIVE traffic rules go into the TOF before this returns."""
        check_acts_for(caller, app_id)
        with self.lock:
            app = self.app(app_id)
            if app.state is AppState.TERMINATING:
                raise MecConflict(f"app instance {app_id} is terminating")
            if app.state is AppState.READY:
                return
            app.doc["state"] = AppState.READY.value
            try:
                self.sync_tof()
            except BaseException:
                app.doc["state"] = AppState.INSTANTIATED.value
                self.sync_tof()
                raise
            try:
                self.tables.write([("app", app.id, app.id, app.doc)])
            except BaseException:
                app.doc["state"] = AppState.INSTANTIATED.value
                self.sync_tof()
                raise
            self.sync_dns()

    def confirm_termination(self, caller: Caller, app_id: str) -> None:
        check_acts_for(caller, app_id)
        with self.lock:
            app = self.app(app_id)
            if app.state is not AppState.TERMINATING:
                raise MecConflict(f"app instance {app_id} has no termination to confirm")
            app.terminated.set()

    # --- app support: rules ------------------------------------------------------------

    def traffic_rules(self, caller: Caller, app_id: str) -> list[TrafficRule]:
        check_acts_for(caller, app_id)
        with self.lock:
            return list(self.app(app_id).traffic.values())

    def traffic_rule(self, caller: Caller, app_id: str, rule_id: str) -> TrafficRule:
        check_acts_for(caller, app_id)
        with self.lock:
            rule = self.app(app_id).traffic.get(rule_id)
        if rule is None:
            raise MecNotFound(f"app instance {app_id} has no traffic rule {rule_id!r}")
        return rule

    def put_traffic_rule(
        self,
        caller: Caller,
        app_id: str,
        rule_id: str,
        rule: TrafficRule,
        if_match: str | None = None,
    ) -> TrafficRule:
        """Update, activate or deactivate a rule; in the TOF before this returns. ``if_match``:
        the request's If-Match (412 unless it names the rule's current ETag)."""
        old = self.traffic_rule(caller, app_id, rule_id)
        if rule.traffic_rule_id != rule_id:
            raise MecUnprocessable(
                f"trafficRuleId {rule.traffic_rule_id!r} differs from the path's {rule_id!r}"
            )
        with self.lock:
            app = self.app(app_id)
            old = app.traffic.get(rule_id, old)
            policy.check_if_match(if_match, policy.etag(old.wire()))
            policy.tof_services(rule, app.doc.get("dataAddress"))
            app.traffic[rule_id] = rule
            try:
                self.sync_tof()
                self.tables.write([("traffic_rule", f"{app_id}/{rule_id}", app_id, rule.wire())])
            except BaseException:
                app.traffic[rule_id] = old
                self.sync_tof()
                raise
        return rule

    def dns_rules(self, caller: Caller, app_id: str) -> list[DnsRule]:
        check_acts_for(caller, app_id)
        with self.lock:
            return list(self.app(app_id).dns.values())

    def dns_rule(self, caller: Caller, app_id: str, rule_id: str) -> DnsRule:
        check_acts_for(caller, app_id)
        with self.lock:
            rule = self.app(app_id).dns.get(rule_id)
        if rule is None:
            raise MecNotFound(f"app instance {app_id} has no DNS rule {rule_id!r}")
        return rule

    def put_dns_rule(
        self,
        caller: Caller,
        app_id: str,
        rule_id: str,
        rule: DnsRule,
        if_match: str | None = None,
    ) -> DnsRule:
        old = self.dns_rule(caller, app_id, rule_id)
        if rule.dns_rule_id != rule_id:
            raise MecUnprocessable(
                f"dnsRuleId {rule.dns_rule_id!r} differs from the path's {rule_id!r}"
            )
        problem = check_dns_rule(rule)  # the address against ipAddressType (the schema: syntax)
        if problem:
            raise MecUnprocessable(problem)
        with self.lock:
            old = self.app(app_id).dns.get(rule_id, old)
            policy.check_if_match(if_match, policy.etag(old.wire()))
            self.tables.write([("dns_rule", f"{app_id}/{rule_id}", app_id, rule.wire())])
            self.app(app_id).dns[rule_id] = rule
            self.sync_dns()  # in the responder's answers before the Mp1 answer
        return rule

    def desired_dns(self) -> dns.Records:
        """The names the ACTIVE DNS rules of READY apps give the responder (a TERMINATING
        app's names leave at once: no new UE is sent to an app on its way out)."""
        return dns.records(
            rule
            for app in self.apps.values()
            if app.state is AppState.READY
            for rule in app.dns.values()
        )

    def sync_dns(self) -> None:
        if self.dns_sink is not None:
            with self.lock:
                self.dns_sink(self.desired_dns())

    # --- the TOF -----------------------------------------------------------------------

    def desired_tof(self) -> dict[str, TofTarget]:
        """The TOF services the active rules of ready apps make (name -> what it is); a
        TERMINATING app keeps its rules until it is removed (its sessions drain)."""
        out: dict[str, TofTarget] = {}
        if self.dns_offload is not None:
            out[DNS_SERVICE] = TofTarget(*self.dns_offload)
        for app in self.apps.values():
            ready = app.state is AppState.READY
            if not ready and not (app.state is AppState.TERMINATING and app.doc.get("draining")):
                continue
            for rule in sorted(app.traffic.values(), key=lambda r: r.priority):
                targets = policy.tof_services(rule, app.doc.get("dataAddress"))
                for index, target in enumerate(targets):
                    out[policy.tof_service_name(app.id, rule.traffic_rule_id, index)] = target
        return out

    def sync_tof(self) -> None:
        """Make the TOF's ``mec-`` services the desired ones (removals first)."""
        with self.lock:
            desired = self.desired_tof()
            port = self.tof()
            if port is None:
                if desired:
                    raise MecUnsupported(
                        "traffic rules need the TOF: this daemon has no [tof] part"
                    )
                return
            current = port.owned()
            for name in sorted(set(current) - set(desired)):
                port.remove(name)
            for name, target in sorted(desired.items()):
                if current.get(name) != target:
                    port.put(name, target)

    # --- service management: services --------------------------------------------------

    def _tenant_of(self, caller: Caller) -> str | None:
        """The tenant whose services ``caller`` sees (None: the admin, every tenant's)."""
        if caller.admin:
            return None
        app = self.apps.get(caller.app_instance_id or "")
        return str(app.doc["tenant"]) if app is not None else ""

    def _owner_tenant(self, owned: Owned) -> str:
        app = self.apps.get(owned.app)
        return str(app.doc["tenant"]) if app is not None else ""

    def discover(self, query: ServiceQuery, caller: Caller = ADMIN) -> list[ServiceInfo]:
        """Services ``caller`` may see (its tenant's, and others' of scope MEC_SYSTEM)."""
        with self.lock:
            viewer = self._tenant_of(caller)
            seen = [
                o.value
                for o in self.services.values()
                if policy.can_discover(viewer, self._owner_tenant(o), o.value)
            ]
        return policy.discover(seen, query)

    def service(self, ser_instance_id: str, caller: Caller = ADMIN) -> ServiceInfo:
        with self.lock:
            owned = self.services.get(ser_instance_id)
            hidden = owned is not None and not policy.can_discover(
                self._tenant_of(caller), self._owner_tenant(owned), owned.value
            )
        if owned is None or hidden:
            raise MecNotFound(f"no service {ser_instance_id!r}")
        info: ServiceInfo = owned.value
        return info

    def app_services(self, caller: Caller, app_id: str, query: ServiceQuery) -> list[ServiceInfo]:
        """The services ``app_id`` registered, filtered like a discovery."""
        check_acts_for(caller, app_id)
        with self.lock:
            self.app(app_id)
            mine = [o.value for o in self.services.values() if o.app == app_id]
        return policy.discover(mine, query)

    def app_service(self, caller: Caller, app_id: str, ser_instance_id: str) -> ServiceInfo:
        check_acts_for(caller, app_id)
        with self.lock:
            self.app(app_id)
            owned = self.services.get(ser_instance_id)
        if owned is None or owned.app != app_id:
            raise MecNotFound(f"app instance {app_id} has no service {ser_instance_id!r}")
        info: ServiceInfo = owned.value
        return info

    def register(self, caller: Caller, app_id: str, info: ServiceInfo) -> ServiceInfo:
        check_acts_for(caller, app_id)
        if info.ser_instance_id is not None:  # read-only in the served schema: a 400
            raise MecInvalid("serInstanceId is assigned by the platform: leave it out")
        with self.lock:
            app = self.app(app_id)
            if app.state is AppState.TERMINATING:
                raise MecConflict(f"app instance {app_id} is terminating")
            for owned in self.services.values():
                if owned.app == app_id and owned.value.ser_name == info.ser_name:
                    # 422, not 409: MEC 011 gives registration no 409 to answer with; MEC 009
                    # has 422 for a request whose content cannot be processed.
                    raise MecUnprocessable(
                        f"app instance {app_id} already offers a service named {info.ser_name!r}"
                    )
            sid = str(uuid.uuid4())
            stored = policy.effective(info.model_copy(update={"ser_instance_id": sid}))
            self.tables.write([("service", sid, app_id, {"app": app_id, "info": stored.wire()})])
            self.services[sid] = Owned(app_id, stored)
        self._notify(None, stored, str(app.doc["tenant"]))
        return stored

    def update_service(
        self,
        caller: Caller,
        app_id: str,
        ser_instance_id: str,
        info: ServiceInfo,
        if_match: str | None = None,
    ) -> ServiceInfo:
        before = self.app_service(caller, app_id, ser_instance_id)
        if info.ser_instance_id not in (None, ser_instance_id):
            raise MecUnprocessable(
                f"serInstanceId {info.ser_instance_id!r} differs from the path's "
                f"{ser_instance_id!r}"
            )
        if info.ser_name != before.ser_name:
            raise MecUnprocessable("serName cannot change (register a new service instead)")
        after = policy.effective(info.model_copy(update={"ser_instance_id": ser_instance_id}))
        with self.lock:
            current = self.services.get(ser_instance_id)
            if current is None:
                raise MecNotFound(f"app instance {app_id} has no service {ser_instance_id!r}")
            before = current.value
            policy.check_if_match(if_match, policy.etag(before.wire()))
            self.tables.write(
                [("service", ser_instance_id, app_id, {"app": app_id, "info": after.wire()})]
            )
            self.services[ser_instance_id] = Owned(app_id, after)
            producer = str(self.app(app_id).doc["tenant"])
        self._notify(before, after, producer)
        return after

    def deregister(self, caller: Caller, app_id: str, ser_instance_id: str) -> None:
        before = self.app_service(caller, app_id, ser_instance_id)
        with self.lock:
            self.tables.write(deletes=[("service", ser_instance_id)])
            self.services.pop(ser_instance_id, None)
            producer = str(self.app(app_id).doc["tenant"])
        self._notify(None, before, producer, removed=True)

    def _notify(
        self,
        before: ServiceInfo | None,
        after: ServiceInfo,
        producer: str,
        *,
        removed: bool = False,
    ) -> None:
        """Tell the subscribers who may see the service (``producer``: its app's tenant)."""
        change = "REMOVED" if removed else policy.change_type(before, after)
        if change is None:
            return
        with self.lock:
            subs = list(self.svc_subs.values())
            viewers = {o.app: self._tenant_of(Caller(o.app)) for o in subs}
        for owned in subs:
            sub: SerAvailabilityNotificationSubscription = owned.value
            if not policy.matches_criteria(sub.filtering_criteria, after):
                continue
            if not policy.can_discover(viewers[owned.app], producer, after) and not (
                before is not None and policy.can_discover(viewers[owned.app], producer, before)
            ):
                continue  # a service its tenant cannot see: not told of it either
            own = sub.links.self_.href if sub.links else None
            base = _base(own, SERVICE_MGMT)
            ref = ServiceReference(
                link=LinkType(href=f"{base}{SERVICE_MGMT}/services/{after.ser_instance_id}"),
                ser_name=after.ser_name,
                ser_instance_id=after.ser_instance_id or "",
                state=after.state,
                change_type=ChangeType(change),
            )
            note = ServiceAvailabilityNotification.model_validate(
                {
                    "serviceReferences": [ref],
                    "_links": SubscriptionRef(subscription=LinkType(href=own or "")),
                }
            )
            self.submit("ServiceAvailabilityNotification", sub.callback_reference, note.wire())

    # --- subscriptions (both APIs) -----------------------------------------------------

    def subscriptions(self, caller: Caller, app_id: str, kind: str) -> list[tuple[str, Any]]:
        check_acts_for(caller, app_id)
        table = self._subs(kind)
        with self.lock:
            self.app(app_id)
            return [(sid, o.value) for sid, o in table.items() if o.app == app_id]

    def subscription(self, caller: Caller, app_id: str, kind: str, sub_id: str) -> Any:
        check_acts_for(caller, app_id)
        table = self._subs(kind)
        with self.lock:
            self.app(app_id)
            owned = table.get(sub_id)
        if owned is None or owned.app != app_id:
            raise MecNotFound(f"app instance {app_id} has no subscription {sub_id!r}")
        return owned.value

    def subscribe(
        self, caller: Caller, app_id: str, kind: str, sub: Any, href: Callable[[str], str]
    ) -> tuple[str, Any]:
        check_acts_for(caller, app_id)
        if kind == "term_sub" and sub.app_instance_id != app_id:
            raise MecUnprocessable(
                f"appInstanceId {sub.app_instance_id!r} differs from the path's {app_id!r}"
            )
        table = self._subs(kind)
        sub_id = str(uuid.uuid4())
        stored = sub.model_copy(update={"links": _self_link(href(sub_id))})
        with self.lock:
            self.app(app_id)
            self.tables.write([(kind, sub_id, app_id, {"app": app_id, "sub": stored.wire()})])
            table[sub_id] = Owned(app_id, stored)
        return sub_id, stored

    def unsubscribe(self, caller: Caller, app_id: str, kind: str, sub_id: str) -> None:
        self.subscription(caller, app_id, kind, sub_id)
        with self.lock:
            self.tables.write(deletes=[(kind, sub_id)])
            self._subs(kind).pop(sub_id, None)

    def _subs(self, kind: str) -> dict[str, Owned]:
        return self.svc_subs if kind == "svc_sub" else self.term_subs


def _self_link(href: str) -> Self:
    return Self.model_validate({"self": {"href": href}})


def _base(href: str | None, api: str) -> str:
    """The scheme and authority the client used, from a link the platform made (``""``)."""
    return href.split(api)[0] if href and api in href else ""
