"""Make the OpenAPI document say what the API does, for every route of every part.

FastAPI documents 422 for validation errors; the daemon answers 400 with ``{"detail": reason}``
(:mod:`fluidedge.daemon.app`). The edge (:mod:`fluidedge.daemon.edge`) answers 401 and 413 for
every route (405 with ``Allow`` for methods a path does not have), and any write may meet a
full disk (507), a store refusing writes (503) or a failure underneath (500). Rather than
repeating that in each part, this pass rewrites the generated document once: 422 becomes 400,
the cross-cutting statuses are added with the error model, the bearer scheme is declared and
each operation says whether it needs it (mutations always; reads only with
``api.open_reads = false``). Statuses specific to a route (404, 409, 422, 504...) are declared
by the route itself. Every route but ``/healthz`` may answer 403 to a tenant token (see
:mod:`fluidedge.core.auth`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fluidedge.core.auth import PUBLIC_PATHS, SAFE_METHODS

ERROR_SCHEMA = {
    "title": "Error",
    "type": "object",
    "properties": {"detail": {"type": "string", "title": "Detail"}},
    "required": ["detail"],
}
_REF = {"$ref": "#/components/schemas/Error"}
_TEXT = {
    400: "Bad request: the reason names the field",
    401: "Missing or invalid bearer token",
    403: "The token may not do this (a tenant token on an admin route, a read-only built-in, "
    "a capability outside the tenant's quota)",
    404: "Not found",
    409: "Conflict with existing state",
    422: "Well-formed (the schema holds) but cannot be carried out as it stands: it "
    "contradicts stored objects, the host or the configuration; the reason says which",
    413: "Request body larger than api.max_body_bytes",
    500: "A failure underneath the daemon (kernel, tool, store); the reason says which",
    503: "The store refuses writes (its files were removed or replaced)",
    504: "A wait the request asked for ran out",
    507: "No space left under the state directory; nothing was stored",
}

ERROR_HEADER = "x-fluidedge-error"
"""The header every error answer carries: the fluidedge error's class (``AdmissionRefused``,
``ServiceConflict``...), what a program (another node forwarding a creation among them) tells
apart without parsing the sentence in ``detail``."""


def error_responses(
    *codes: int, why: Mapping[int, str] | None = None
) -> dict[int | str, dict[str, Any]]:
    """``responses=`` entries for a route's own error statuses, with the error model; ``why``:
    a part's own description of a status (what this part refuses with it), else the
    daemon's."""
    texts = {**_TEXT, **(why or {})}
    return {
        code: {"description": texts.get(code, "Error"), "content": _json(_REF)} for code in codes
    }


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _add(responses: dict[str, Any], code: int) -> None:
    responses.setdefault(str(code), {"description": _TEXT[code], "content": _json(_REF)})


def rewrite(document: dict[str, Any], *, open_reads: bool) -> dict[str, Any]:
    """Rewrite the generated ``document`` in place (and return it); see the module docstring."""
    components = document.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    schemas["Error"] = ERROR_SCHEMA
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    components.setdefault("securitySchemes", {})["bearer"] = {
        "type": "http",
        "scheme": "bearer",
        "description": "The daemon's token (api.token, or the file state_dir/token).",
    }
    for path, item in document.get("paths", {}).items():
        for method, operation in item.items():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            verb = method.upper()
            responses: dict[str, Any] = operation["responses"]
            if "HTTPValidationError" in str(responses.get("422", "")):
                del responses["422"]
                _add(responses, 400)
            has_params = bool(operation.get("parameters")) or "requestBody" in operation
            if has_params:
                _add(responses, 400)
            needs_token = path not in PUBLIC_PATHS and not (open_reads and verb in SAFE_METHODS)
            if needs_token:
                operation["security"] = [{"bearer": []}]
                _add(responses, 401)
            else:
                operation["security"] = []
            if path not in PUBLIC_PATHS:  # a tenant token off its routes (fluidedge.tenants)
                _add(responses, 403)
            if "requestBody" in operation:
                _add(responses, 413)
            if verb not in SAFE_METHODS:
                _add(responses, 500)
                _add(responses, 503)
                _add(responses, 507)
    return document
