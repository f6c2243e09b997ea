"""Headers every GUI response carries, and the route class that adds them.

The Content Security Policy allows only the daemon's own script and stylesheet (no inline code,
no other origin), images from the daemon and ``data:``, EventSource connections to the daemon,
and form posts to the daemon; the pages cannot be framed. Pages are never cached (they show
live state and a CSRF token). A fluidedge error or an HTTP error raised by a GUI route is
answered with a small HTML page (the API's JSON is for programs), with the same status.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import HTTPException, Request, Response
from fastapi.responses import HTMLResponse
from fastapi.routing import APIRoute

from fluidedge.errors import FluidedgeError

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",  # "no-referrer" makes Chromium send Origin: null
    "Cross-Origin-Opener-Policy": "same-origin",
}


def error_page(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    text = (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<link rel="stylesheet" href="/ui/static/app.css">'
        f'<title>fluidedge: error {status}</title></head><body><main id="main">'
        f'<h1>Error {status}</h1><p class="error" role="alert">{html.escape(message)}</p>'
        '<p><a href="/ui/">Back to the overview</a></p></main></body></html>'
    )
    return HTMLResponse(text, status_code=status, headers=headers)


class GuiRoute(APIRoute):
    """An APIRoute whose responses carry :data:`HEADERS` (and no-store unless set)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def with_headers(request: Request) -> Response:
            try:
                response = await handler(request)
            except FluidedgeError as exc:
                response = error_page(exc.http_status, str(exc))
            except HTTPException as exc:
                response = error_page(exc.status_code, str(exc.detail), dict(exc.headers or {}))
            response.headers.update(HEADERS)
            response.headers.setdefault("Cache-Control", "no-store")
            return response

        return with_headers
