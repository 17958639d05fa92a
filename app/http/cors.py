"""CORS, explicitly: only the public read endpoints a widget on another site may call.

Merchant, admin and event endpoints send no CORS headers, so browsers on other origins
cannot read them. ``O2O_CORS_ORIGINS`` is ``*`` or a comma-separated list of origins.
"""

from __future__ import annotations

from flask import Flask, current_app, request

PUBLIC_READS = ("/v1/stores/", "/v1/map/", "/v1/deals/recommended")


def init_app(app: Flask) -> None:
    @app.after_request
    def _cors(resp):
        if request.method not in ("GET", "HEAD") or not request.path.startswith(PUBLIC_READS):
            return resp
        allowed = current_app.config["CORS_ORIGINS"]
        origin = request.headers.get("Origin")
        if allowed == "*":
            resp.headers["Access-Control-Allow-Origin"] = "*"
        elif origin and origin in {o.strip() for o in str(allowed).split(",")}:
            resp.headers["Access-Control-Allow-Origin"] = origin
            resp.headers["Vary"] = "Origin"
        return resp
