"""REST routes: Mp1 (``/mec_service_mgmt/v1``, ``/mec_app_support/v1``) and ``/v1/apps``.

Mp1 routes follow MEC 011's documents: paths, operation ids, status codes and, for every
error, a ``ProblemDetails`` body as ``application/problem+json`` (:class:`ProblemRoute` turns
validation errors and fluidedge errors into one). Besides the documents' statuses, a route
whose request can be well-formed yet contradict the path or the stored resources documents
422 (ETSI GS MEC 009: a body whose content cannot be processed); a body its schema refuses is
a 400. The served document defines the ``ProblemDetails`` schema the responses name
(:func:`add_schemas`, from the part's ``rewrite_openapi``). They authenticate their own requests
(the daemon's edge lets them through: ``own_auth``): the admin token acts for every app
instance, an app instance's token (``fea_...``) only for its own appInstanceId (403 for
another's; a resource of another app under one's own id is simply not there: 404).

``/v1/apps`` is the operator's (admin token, the daemon's usual error model).

No ``from __future__ import annotations`` here: the routes' parameter types name a
dependency built inside the router builders, which FastAPI must see evaluated.
"""

import asyncio
import logging
import math
import time
from collections.abc import Callable, Coroutine
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import Field
from pydantic.json_schema import SkipJsonSchema
from starlette.exceptions import HTTPException

from fluidedge.core.auth import AUDIT_KEY, authenticated
from fluidedge.core.openapi import error_responses
from fluidedge.errors import FluidedgeError
from fluidedge.mec import policy
from fluidedge.mec.descriptor import AppCreated, AppDescriptor, AppTerminated, AppView
from fluidedge.mec.errors import MecTooManyRequests, MecUnauthorized
from fluidedge.mec.models import (
    AppReadyConfirmation,
    AppTerminationConfirmation,
    AppTerminationNotificationSubscription,
    CurrentTime,
    DnsRule,
    EndPointUris,
    LinkType,
    LocalityType,
    ProblemDetails,
    SecurityInfo,
    SerAvailabilityNotificationSubscription,
    ServiceInfo,
    SubscriptionLink,
    SubscriptionLinkList,
    SubscriptionLinks,
    TimeSourceStatus,
    TimeStamp,
    TimingCaps,
    TrafficRule,
    TransportInfo,
    TransportType,
)
from fluidedge.mec.platform import APP_SUPPORT, SERVICE_MGMT, Platform
from fluidedge.mec.policy import ADMIN, Caller, ServiceQuery

# The subscription types of the two Mp1 APIs (their routes are made by one function).
Subscription = SerAvailabilityNotificationSubscription | AppTerminationNotificationSubscription

log = logging.getLogger("fluidedge.mec")

PROBLEM = "application/problem+json"
MP1_PREFIXES = (SERVICE_MGMT, APP_SUPPORT)

_TEXT = {
    400: "Bad Request: the detail names the field and why",
    401: "Unauthorized: no valid bearer token (the admin's or an app instance's)",
    403: "Forbidden: the token belongs to another app instance",
    404: "Not Found",
    409: "Conflict with the app instance's state",
    412: "Precondition Failed: If-Match names none of the resource's current ETags",
    422: "Unprocessable Content: well-formed, but it contradicts the path or the stored "
    "resources, or the TOF cannot carry it out (ETSI GS MEC 009); the detail says why",
    429: "Too Many Requests: the app instance's Mp1 budget ([mec] app_rate); see Retry-After",
    500: "A failure underneath the platform; the detail says which",
    503: "The store refuses writes",
    507: "No space left under the state directory",
}


PROBLEM_SCHEMA = "ProblemDetails"


def problems(*codes: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for Mp1 error statuses: ProblemDetails as application/problem+json (the
    schema is a component of the served document: :func:`add_schemas`)."""
    schema = {"$ref": f"#/components/schemas/{PROBLEM_SCHEMA}"}
    out: dict[int | str, dict[str, Any]] = {}
    for code in (*codes, 429):  # every Mp1 route counts an app's request against its budget
        content: dict[str, Any] = {PROBLEM: {"schema": schema}}
        if code == 400:  # a request line the HTTP server itself refuses (as the documents say)
            content["text/plain"] = {"schema": {"type": "string"}}
        out[code] = {"description": _TEXT.get(code, "Error"), "content": content}
    return out


def add_schemas(document: dict[str, Any]) -> None:
    """Define in ``document`` the schemas :func:`problems` names: no route's model is a
    ProblemDetails (FastAPI collects components from those), yet every Mp1 error is one."""
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    schemas[PROBLEM_SCHEMA] = ProblemDetails.model_json_schema(
        ref_template="#/components/schemas/{model}"
    )


def problem_response(status: int, detail: str, instance: str) -> JSONResponse:
    body = ProblemDetails(
        type="about:blank", title=_TEXT.get(status, "Error").split(":")[0], status=status,
        detail=detail, instance=instance,
    )  # fmt: skip
    return JSONResponse(body.wire(), status_code=status, media_type=PROBLEM)


def _reason(exc: RequestValidationError) -> str:
    parts = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error.get("loc", ()) if p != "body")
        parts.append(f"{where or 'body'}: {error.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request"


class ProblemRoute(APIRoute):
    """A route whose errors are ProblemDetails (application/problem+json), and whose answers
    leave absent optional members out (the documents' types do not allow null)."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        kwargs["response_model_exclude_none"] = True
        super().__init__(path, endpoint, **kwargs)

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except RequestValidationError as exc:
                return problem_response(400, _reason(exc), request.url.path)
            except MecTooManyRequests as exc:
                answer = problem_response(exc.http_status, str(exc), request.url.path)
                answer.headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after)))
                return answer
            except FluidedgeError as exc:
                return problem_response(exc.http_status, str(exc), request.url.path)
            except HTTPException as exc:  # FastAPI's own (a body that is not JSON)
                return problem_response(exc.status_code, str(exc.detail), request.url.path)

        return route


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def caller_of(platform: Platform) -> Callable[[Request], Caller]:
    def caller(request: Request) -> Caller:
        if authenticated(request):
            return ADMIN
        token = _bearer(request)
        found = platform.authenticate(token) if token else None
        if found is None:
            why = "invalid" if token else "missing"
            raise MecUnauthorized(
                f"{why} bearer token (the daemon's token or the app instance's Mp1 token)"
            )
        # The audit log names who acted (the edge saw a token it does not know).
        state = request.scope.setdefault("state", {})
        state["fluidedge.presented"] = "app-token"
        state[AUDIT_KEY] = {**state.get(AUDIT_KEY, {}), "app": found.app_instance_id}
        platform.admit(found)
        return found

    return caller


# Path identifiers are not bounded: they are only looked up, and an unknown one is a 404 (the
# documents give DELETE no 400 to answer with). At least one character, as a path segment
# always has: an empty one would be another resource's URL (the collection's, ``.../services/``).
AppId = Annotated[str, Path(alias="appInstanceId", description="appInstanceId", min_length=1)]
SubId = Annotated[str, Path(alias="subscriptionId", min_length=1)]
SerId = Annotated[str, Path(alias="serviceId", min_length=1)]
TrafficRuleId = Annotated[str, Path(alias="trafficRuleId", min_length=1)]
DnsRuleId = Annotated[str, Path(alias="dnsRuleId", min_length=1)]
# MEC 011: "either ser_instance_id or ser_name or ser_category_id or none of them shall be
# present". A rule across parameters, which no parameter's schema can say: each of the three
# says it in its description, and two or three of them together are a 400.
_ONE_OF = (
    " At most one of ser_instance_id, ser_name and ser_category_id may be present (MEC 011): "
    "two or three of them are a 400."
)
# Up to 64 values of up to 256 characters (maxItems in the served schema).
_Strs = (
    Annotated[list[Annotated[str, Field(max_length=256)]], Field(max_length=64)]
    | SkipJsonSchema[None]
)


def _query(  # noqa: PLR0917 (FastAPI's query parameters, one per filter)
    ser_instance_id: Annotated[
        _Strs, Query(description="services with one of these serInstanceIds." + _ONE_OF)
    ] = None,
    ser_name: Annotated[
        _Strs, Query(description="services with one of these serNames." + _ONE_OF)
    ] = None,
    ser_category_id: Annotated[
        str | SkipJsonSchema[None],
        Query(max_length=256, description="services of this category id." + _ONE_OF),
    ] = None,
    consumed_local_only: bool | SkipJsonSchema[None] = None,
    is_local: bool | SkipJsonSchema[None] = None,
    scope_of_locality: LocalityType | SkipJsonSchema[None] = None,
) -> ServiceQuery:
    return ServiceQuery(
        ser_instance_id=None if ser_instance_id is None else tuple(ser_instance_id),
        ser_name=None if ser_name is None else tuple(ser_name),
        ser_category_id=ser_category_id,
        consumed_local_only=consumed_local_only,
        is_local=is_local,
        scope_of_locality=scope_of_locality,
    )


Tagged = TypeVar("Tagged", ServiceInfo, TrafficRule, DnsRule)


def _tagged(response: Response, resource: Tagged) -> Tagged:
    """``resource`` with its ETag in the answer's headers (what a later PUT's If-Match names,
    MEC 011's 412 for a write conflict)."""
    response.headers["ETag"] = policy.etag(resource.wire())
    return resource


def _if_match(request: Request) -> str | None:
    return request.headers.get("if-match")


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def _links(
    request: Request, api: str, app_id: str, subs: list[tuple[str, Any]], rel: str
) -> SubscriptionLinkList:
    here = f"{_base(request)}{api}/applications/{app_id}/subscriptions"
    links = SubscriptionLinks.model_validate(
        {
            "self": LinkType(href=here),
            "subscriptions": [SubscriptionLink(href=f"{here}/{sid}", rel=rel) for sid, _ in subs],
        }
    )
    return SubscriptionLinkList.model_validate({"_links": links})


def add_subscription_routes(
    router: APIRouter,
    *,
    api: str,
    kind: str,
    model: type[Subscription],
    rel: str,
    operation_prefix: str,
    platform: Platform,
    create_problems: tuple[int, ...] = (),
) -> None:
    """The four subscription routes both Mp1 APIs have (``/applications/{id}/subscriptions``
    and ``.../{subscriptionId}``: list, create, read, delete), for ``model`` (the API's
    subscription type) stored by the platform as ``kind``. The two APIs differ only in these
    parameters and their operation ids' prefix (MEC 011's documents); ``create_problems``:
    statuses only one API's creation answers (422 for an appInstanceId in the body that is
    not the path's)."""
    Who = Annotated[Caller, Depends(caller_of(platform))]

    @router.get(
        "/applications/{appInstanceId}/subscriptions",
        operation_id=f"{operation_prefix}ApplicationsSubscriptions_GET",
        response_model=SubscriptionLinkList,
        responses=problems(400, 401, 403, 404),
    )
    def list_subs(request: Request, who: Who, app_id: AppId) -> SubscriptionLinkList:
        subs = platform.subscriptions(who, app_id, kind)
        return _links(request, api, app_id, subs, rel=rel)

    def subscribe(
        request: Request, response: Response, who: Who, app_id: AppId, body: Subscription
    ) -> Subscription:
        here = f"{_base(request)}{api}/applications/{app_id}/subscriptions"
        sub_id, sub = platform.subscribe(who, app_id, kind, body, lambda s: f"{here}/{s}")
        response.headers["Location"] = f"{here}/{sub_id}"
        result: Subscription = sub
        return result

    # FastAPI reads the body's type from the signature: this API's subscription type alone.
    subscribe.__annotations__["body"] = model
    router.post(
        "/applications/{appInstanceId}/subscriptions",
        operation_id=f"{operation_prefix}ApplicationsSubscriptions_POST",
        status_code=201,
        response_model=model,
        responses=problems(400, 401, 403, 404, *create_problems, 500, 503, 507),
    )(subscribe)

    @router.get(
        "/applications/{appInstanceId}/subscriptions/{subscriptionId}",
        operation_id=f"{operation_prefix}ApplicationsSubscription_GET",
        response_model=model,
        responses=problems(400, 401, 403, 404),
    )
    def get_sub(who: Who, app_id: AppId, sub_id: SubId) -> Subscription:
        sub: Subscription = platform.subscription(who, app_id, kind, sub_id)
        return sub

    @router.delete(
        "/applications/{appInstanceId}/subscriptions/{subscriptionId}",
        operation_id=f"{operation_prefix}ApplicationsSubscription_DELETE",
        status_code=204,
        response_class=Response,
        responses=problems(401, 403, 404, 500, 503, 507),
    )
    def delete_sub(who: Who, app_id: AppId, sub_id: SubId) -> Response:
        platform.unsubscribe(who, app_id, kind, sub_id)
        return Response(status_code=204)


def build_service_mgmt(platform: Platform) -> APIRouter:
    """``/mec_service_mgmt/v1`` (MecServiceMgmtApi.yaml)."""
    router = APIRouter(prefix=SERVICE_MGMT, tags=["mec_service_mgmt"], route_class=ProblemRoute)
    Who = Annotated[Caller, Depends(caller_of(platform))]

    add_subscription_routes(
        router, api=SERVICE_MGMT, kind="svc_sub",
        model=SerAvailabilityNotificationSubscription,
        rel="SerAvailabilityNotificationSubscription", operation_prefix="", platform=platform,
    )  # fmt: skip

    @router.get(
        "/applications/{appInstanceId}/services",
        operation_id="AppServices_GET",
        response_model=list[ServiceInfo],
        responses=problems(400, 401, 403, 404),
    )
    def app_services(
        who: Who, app_id: AppId, query: Annotated[ServiceQuery, Depends(_query)]
    ) -> list[ServiceInfo]:
        return platform.app_services(who, app_id, query)

    @router.post(
        "/applications/{appInstanceId}/services",
        operation_id="AppServices_POST",
        status_code=201,
        response_model=ServiceInfo,
        # 400: a serInstanceId given (read-only); 422: the app already offers that serName
        responses=problems(400, 401, 403, 404, 422, 500, 503, 507),
    )
    def register(
        request: Request, response: Response, who: Who, app_id: AppId, body: ServiceInfo
    ) -> ServiceInfo:
        info = platform.register(who, app_id, body)
        response.headers["Location"] = (
            f"{_base(request)}{SERVICE_MGMT}/applications/{app_id}/services/{info.ser_instance_id}"
        )
        return info

    @router.get(
        "/applications/{appInstanceId}/services/{serviceId}",
        operation_id="AppServicesServiceId_GET",
        response_model=ServiceInfo,
        responses=problems(400, 401, 403, 404),
    )
    def app_service(response: Response, who: Who, app_id: AppId, ser_id: SerId) -> ServiceInfo:
        return _tagged(response, platform.app_service(who, app_id, ser_id))

    @router.put(
        "/applications/{appInstanceId}/services/{serviceId}",
        operation_id="AppServicesServiceId_PUT",
        response_model=ServiceInfo,
        # 422: a serInstanceId other than the path's, a changed serName
        responses=problems(400, 401, 403, 404, 412, 422, 500, 503, 507),
    )
    def update(
        request: Request, response: Response, *, who: Who, app_id: AppId, ser_id: SerId,
        body: ServiceInfo,
    ) -> ServiceInfo:  # fmt: skip
        done = platform.update_service(who, app_id, ser_id, body, _if_match(request))
        return _tagged(response, done)

    @router.delete(
        "/applications/{appInstanceId}/services/{serviceId}",
        operation_id="AppServicesServiceId_DELETE",
        status_code=204,
        response_class=Response,
        responses=problems(401, 403, 404, 500, 503, 507),
    )
    def deregister(who: Who, app_id: AppId, ser_id: SerId) -> Response:
        platform.deregister(who, app_id, ser_id)
        return Response(status_code=204)

    @router.get(
        "/services",
        operation_id="Services_GET",
        response_model=list[ServiceInfo],
        responses=problems(400, 401),
    )
    def services(who: Who, query: Annotated[ServiceQuery, Depends(_query)]) -> list[ServiceInfo]:
        return platform.discover(query, who)

    @router.get(
        "/services/{serviceId}",
        operation_id="ServicesServiceId_GET",
        response_model=ServiceInfo,
        responses=problems(400, 401, 404),
    )
    def service(response: Response, who: Who, ser_id: SerId) -> ServiceInfo:
        return _tagged(response, platform.service(ser_id, who))

    @router.get(
        "/transports",
        operation_id="Transports_GET",
        response_model=list[TransportInfo],
        responses=problems(401),
    )
    def transports(request: Request, _who: Who) -> list[TransportInfo]:
        return [
            TransportInfo(
                id="rest-http",
                name="REST",
                description="REST over HTTP on the platform network, bearer tokens",
                type=TransportType.REST_HTTP,
                protocol="HTTP",
                version="1.1",
                endpoint=EndPointUris(uris=[_base(request)]),
                security=SecurityInfo(),
            )
        ]

    return router


def build_app_support(platform: Platform) -> APIRouter:
    """``/mec_app_support/v1`` (MecAppSupportApi.yaml)."""
    router = APIRouter(prefix=APP_SUPPORT, tags=["mec_app_support"], route_class=ProblemRoute)
    Who = Annotated[Caller, Depends(caller_of(platform))]

    @router.get(
        "/applications/{appInstanceId}/traffic_rules",
        operation_id="ApplicationsTrafficRules_GET",
        response_model=list[TrafficRule],
        responses=problems(400, 401, 403, 404),
    )
    def traffic_rules(who: Who, app_id: AppId) -> list[TrafficRule]:
        return platform.traffic_rules(who, app_id)

    @router.get(
        "/applications/{appInstanceId}/traffic_rules/{trafficRuleId}",
        operation_id="ApplicationsTrafficRule_GET",
        response_model=TrafficRule,
        responses=problems(400, 401, 403, 404),
    )
    def traffic_rule(
        response: Response,
        who: Who,
        app_id: AppId,
        rule_id: TrafficRuleId,
    ) -> TrafficRule:
        return _tagged(response, platform.traffic_rule(who, app_id, rule_id))

    @router.put(
        "/applications/{appInstanceId}/traffic_rules/{trafficRuleId}",
        operation_id="ApplicationsTrafficRule_PUT",
        response_model=TrafficRule,
        # 422: a trafficRuleId other than the path's, an ACTIVE rule the TOF cannot express
        responses=problems(400, 401, 403, 404, 409, 412, 422, 500, 503, 507),
    )
    def put_traffic_rule(
        request: Request,
        response: Response,
        *,
        who: Who,
        app_id: AppId,
        rule_id: TrafficRuleId,
        body: TrafficRule,
    ) -> TrafficRule:
        done = platform.put_traffic_rule(who, app_id, rule_id, body, _if_match(request))
        return _tagged(response, done)

    @router.get(
        "/applications/{appInstanceId}/dns_rules",
        operation_id="ApplicationsDnsRules_GET",
        response_model=list[DnsRule],
        responses=problems(400, 401, 403, 404),
    )
    def dns_rules(who: Who, app_id: AppId) -> list[DnsRule]:
        return platform.dns_rules(who, app_id)

    @router.get(
        "/applications/{appInstanceId}/dns_rules/{dnsRuleId}",
        operation_id="ApplicationsDnsRule_GET",
        response_model=DnsRule,
        responses=problems(400, 401, 403, 404),
    )
    def dns_rule(
        response: Response,
        who: Who,
        app_id: AppId,
        rule_id: DnsRuleId,
    ) -> DnsRule:
        return _tagged(response, platform.dns_rule(who, app_id, rule_id))

    @router.put(
        "/applications/{appInstanceId}/dns_rules/{dnsRuleId}",
        operation_id="ApplicationsDnsRule_PUT",
        response_model=DnsRule,
        # 422: a dnsRuleId other than the path's, an address of the other ipAddressType
        responses=problems(400, 401, 403, 404, 412, 422, 500, 503, 507),
    )
    def put_dns_rule(
        request: Request,
        response: Response,
        *,
        who: Who,
        app_id: AppId,
        rule_id: DnsRuleId,
        body: DnsRule,
    ) -> DnsRule:
        done = platform.put_dns_rule(who, app_id, rule_id, body, _if_match(request))
        return _tagged(response, done)

    add_subscription_routes(
        router, api=APP_SUPPORT, kind="term_sub",
        model=AppTerminationNotificationSubscription,
        rel="AppTerminationNotificationSubscription", operation_prefix="AppSupport_",
        platform=platform, create_problems=(422,),
    )  # fmt: skip

    @router.post(
        "/applications/{appInstanceId}/confirm_termination",
        operation_id="ApplicationsConfirmTermination_POST",
        status_code=204,
        response_class=Response,
        responses=problems(400, 401, 403, 404, 409),
    )
    def confirm_termination(who: Who, app_id: AppId, _body: AppTerminationConfirmation) -> Response:
        platform.confirm_termination(who, app_id)
        return Response(status_code=204)

    @router.post(
        "/applications/{appInstanceId}/confirm_ready",
        operation_id="ApplicationsConfirmReady_POST",
        status_code=204,
        response_class=Response,
        # 422: ACTIVE traffic rules, and this daemon has no [tof] part to carry them
        responses=problems(400, 401, 403, 404, 409, 422, 500, 503, 507),
    )
    def confirm_ready(who: Who, app_id: AppId, _body: AppReadyConfirmation) -> Response:
        platform.confirm_ready(who, app_id)
        return Response(status_code=204)

    @router.get(
        "/timing/timing_caps",
        operation_id="TimingCaps_GET",
        response_model=TimingCaps,
        responses=problems(401),
    )
    def timing_caps(_who: Who) -> TimingCaps:
        seconds, nanos = divmod(time.time_ns(), 1_000_000_000)
        return TimingCaps(time_stamp=TimeStamp(seconds=seconds, nano_seconds=nanos))

    @router.get(
        "/timing/current_time",
        operation_id="TimingCurrentTime_GET",
        response_model=CurrentTime,
        responses=problems(401),
    )
    def current_time(_who: Who) -> CurrentTime:
        seconds, nanos = divmod(time.time_ns(), 1_000_000_000)
        return CurrentTime(
            seconds=seconds, nano_seconds=nanos, time_source_status=TimeSourceStatus.NONTRACEABLE
        )

    return router


def build_apps(platform: Platform) -> APIRouter:
    """``/v1/apps``: app instances and their Mp1 credentials (the operator's routes)."""
    router = APIRouter(prefix="/v1/apps", tags=["apps"])

    @router.post(
        "",
        status_code=201,
        response_model=AppCreated,
        # deploy: an unknown template, image or network (404), the instance manager's
        # refusals (409 admission, 422 workload exited, 504 not ready, 500 runtime); 422 also
        # for a descriptor whose members contradict each other or a rule the TOF cannot take
        responses=error_responses(400, 404, 409, 422, 500, 504),
    )
    def create(spec: AppDescriptor) -> dict[str, Any]:
        view, token = platform.create_app(spec)
        return {**view, "token": token}

    @router.get("", response_model=list[AppView])
    def list_apps() -> list[dict[str, Any]]:
        return platform.views()

    @router.get("/{app_id}", response_model=AppView, responses=error_responses(404))
    def show(app_id: Annotated[str, Path(min_length=1, max_length=64)]) -> dict[str, Any]:
        with platform.lock:
            return platform.view(app_id)

    @router.delete("/{app_id}", response_model=AppTerminated, responses=error_responses(404))
    async def delete(app_id: Annotated[str, Path(min_length=1, max_length=64)]) -> dict[str, Any]:
        """Terminate: notify the app's termination subscribers, wait for confirm_termination
        up to its graceful timeout, then remove it (its rules leave the TOF)."""
        with platform.lock:
            view = platform.view(app_id)
        timeout = await asyncio.to_thread(platform.begin_termination, app_id)
        confirmed = None
        if timeout > 0:
            confirmed = await asyncio.to_thread(platform.wait_terminated, app_id, timeout)
        await asyncio.to_thread(platform.delete_app, app_id)
        return {**view, "terminationConfirmed": confirmed}

    return router
