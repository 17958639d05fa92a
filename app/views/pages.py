"""Two web pages: the embeddable map widget and the merchant dashboard.

Their browser libraries (Leaflet, Chart.js) are installed from the npm registry at setup
(``app/web/package.json``, pinned by its lock file) and served from ``node_modules``; no
CDN at run time and no copied library files in the repository.
"""

from __future__ import annotations

import os

from flask import Blueprint, current_app, render_template, send_from_directory

from app.http.errors import Problem
from app.http.openapi import documented
from app.http.schemas import ProblemBody

bp = Blueprint("pages", __name__)
WEB = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "web")
# Only these files are served from node_modules.
VENDOR = {
    "leaflet.js": ("leaflet/dist", "leaflet.js"),
    "leaflet.css": ("leaflet/dist", "leaflet.css"),
    "chart.umd.min.js": ("chart.js/dist", "chart.umd.min.js"),
}


@bp.get("/widget/map")
@documented(summary="Embeddable store map (HTML)", tags=["pages"], responses={200: ("text/html", "The widget")})
def widget():
    """Query parameters set the initial view and filters: lat, lon, zoom, category, open_now, has_deals."""
    return _page("widget.html", embeddable=True)


@bp.get("/merchant")
@documented(summary="Merchant dashboard (HTML)", tags=["pages"], responses={200: ("text/html", "The dashboard")})
def dashboard():
    """Sign in with a merchant key (kept in memory only), pick dates, read charts, download CSV."""
    return _page("merchant.html", embeddable=False)


@bp.get("/assets/vendor/<name>")
@documented(
    summary="A browser library file installed from npm",
    tags=["pages"],
    path={
        "name": {
            "description": "leaflet.js, leaflet.css or chart.umd.min.js",
            "schema": {"type": "string", "enum": sorted(VENDOR)},
        }
    },
    responses={200: (["text/javascript", "text/css"], "The file"), 404: ProblemBody},
)
def vendor(name: str):
    """Served from app/web/node_modules (npm ci at setup)."""
    if name not in VENDOR:
        raise Problem(404, f"No vendor file {name[:60]!r}.")
    folder, file = VENDOR[name]
    path = os.path.join(WEB, "node_modules", folder)
    if not os.path.exists(os.path.join(path, file)):
        raise Problem(
            404,
            "Browser libraries are not installed: run `npm ci --prefix app/web` (bash scripts/bootstrap.sh does it).",
        )
    return send_from_directory(path, file, max_age=86400)


def _page(template: str, embeddable: bool):
    resp = current_app.make_response(
        render_template(
            template, tile_url=current_app.config["TILE_URL"], tile_attribution=current_app.config["TILE_ATTRIBUTION"]
        )
    )
    # Everything a page loads comes from this origin except map tiles. The widget may be
    # framed by any site (that is its job); the dashboard, where keys are typed, by none
    # (a framing site could overlay it and harvest keys: clickjacking).
    ancestors = "*" if embeddable else "'none'"
    resp.headers["Content-Security-Policy"] = (
        "default-src 'self'; img-src 'self' data: https: http:; style-src 'self' 'unsafe-inline'; "
        f"frame-ancestors {ancestors}"
    )
    if not embeddable:
        resp.headers["X-Frame-Options"] = "DENY"  # for browsers without CSP frame-ancestors
    resp.headers["X-Content-Type-Options"] = "nosniff"
    return resp
