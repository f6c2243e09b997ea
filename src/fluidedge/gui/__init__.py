"""The web GUI (§4.4.1.1.1 "manage the resources through a Graphical User Interface").

Server-rendered pages (Jinja2) served by the daemon under ``/ui``, with one small script of our
own for live values (server-sent events) and inline SVG charts drawn on the server: no build
step, no third-party front-end code, nothing fetched at run time (docs/adr/0002-gui.md). The
pages read and change the node through the very objects and request models the REST API uses,
so a form shows the API's own validation message at its field. docs/gui.md shows the pages.
"""

# The public face: the modules other packages may import from (tests/unit/test_layers.py).
__all__ = [
    "routes",
]
