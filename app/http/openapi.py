"""The OpenAPI 3.1 document, generated from the views' pydantic models.

Views declare themselves with ``@documented(...)``; ``build_spec`` walks the URL map, so
an endpoint cannot exist without appearing in the spec (a test checks that).
"""

from __future__ import annotations

import re
import typing

from flask import Flask
from pydantic import BaseModel

from app.http.schemas import ProblemBody

_PROBLEM = "application/problem+json"


def documented(
    *,
    summary: str,
    responses: dict,
    query: type[BaseModel] | None = None,
    body: type[BaseModel] | None = None,
    path: dict | None = None,
    tags=(),
    security=None,
    also: dict | None = None,
    headers: dict | None = None,
    etag: bool = False,
):
    """Attach OpenAPI metadata to a view function.

    ``responses`` maps a status to a pydantic model, or to ``(media_type, description)`` for
    non-JSON bodies; ``also`` adds media types to a status (``{200: ["text/csv"]}``).
    """

    def wrap(view):
        view.openapi = {
            "summary": summary,
            "responses": responses,
            "query": query,
            "body": body,
            "path": path or {},
            "tags": list(tags),
            "security": security,
            "also": also or {},
            "headers": headers or {},
            "etag": etag,
            "description": (view.__doc__ or "").strip(),
        }
        return view

    return wrap


def build_spec(app: Flask) -> dict:
    components: dict[str, dict] = {}
    paths: dict[str, dict] = {}
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        view = app.view_functions.get(rule.endpoint)
        meta = getattr(view, "openapi", None)
        if meta is None:
            continue
        oa_path = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule)
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            paths.setdefault(oa_path, {})[method.lower()] = _operation(rule, meta, components)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "O2O local-commerce API",
            "version": "1.0.0",
            "description": "Stores near a point, personalised deals, merchant visibility.",
        },
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "A merchant key (or the admin key)."},
                "user": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                    "description": "A user token (JWT, user id = sub); without one the user is anonymous.",
                },
            },
        },
    }


#: For endpoints a user may call signed in or not (an empty requirement: anonymous).
USER_OPTIONAL = [{}, {"user": []}]


def _operation(rule, meta, components) -> dict:
    op: dict = {"summary": meta["summary"], "operationId": rule.endpoint.replace(".", "_"), "responses": {}}
    if meta["description"]:
        op["description"] = meta["description"]
    if meta["tags"]:
        op["tags"] = meta["tags"]
    if meta["security"]:
        op["security"] = meta["security"]
    params = [
        {
            "name": name,
            "in": "path",
            "required": True,
            "schema": meta["path"].get(name, {}).get("schema", {"type": "string", "minLength": 1}),
            "description": meta["path"].get(name, {}).get("description", name),
        }
        for name in rule.arguments
    ]
    params += [
        {
            "name": name,
            "in": "header",
            "required": spec.get("required", False),
            "schema": spec.get("schema", {"type": "string", "minLength": 1, "maxLength": 64}),
            "description": spec["description"],
        }
        for name, spec in meta["headers"].items()
    ]
    if meta["query"] is not None:
        params += _query_parameters(meta["query"], components)
    if params:
        op["parameters"] = params
    if meta["body"] is not None:
        op["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": _ref(meta["body"], components)}},
        }
    for status, spec in meta["responses"].items():
        op["responses"][str(status)] = _response(status, spec, components)
        for media in meta["also"].get(status, ()):
            op["responses"][str(status)]["content"][media] = {"schema": {"type": "string"}}
        if meta["etag"] and 200 <= int(status) < 300:
            op["responses"][str(status)]["headers"] = {
                "ETag": {
                    "description": "The version now; send it as If-Match to change it.",
                    "schema": {"type": "string"},
                }
            }
    # Answers any operation can give: bad parameters (every query is validated), and the
    # server's limits on request size, which gunicorn enforces before the app sees it.
    if meta["query"] is not None or meta["body"] is not None:
        op["responses"].setdefault("400", _response(400, ProblemBody, components))
    if meta["body"] is not None:
        op["responses"].setdefault("413", _response(413, ProblemBody, components))
    too_long = {**_response(414, ProblemBody, components), "description": "Request line over gunicorn's 4094 bytes"}
    op["responses"].setdefault("414", too_long)
    return op


def _response(status, spec, components) -> dict:
    if isinstance(spec, tuple):
        media, description = spec
        medias = media if isinstance(media, (list, tuple)) else [media]
        return {"description": description, "content": {m: {"schema": {"type": "string"}} for m in medias}}
    if spec is None:
        return {"description": "No content"}
    media = _PROBLEM if spec is ProblemBody else "application/json"
    return {
        "description": (spec.__doc__ or spec.__name__).strip().splitlines()[0],
        "content": {media: {"schema": _ref(spec, components)}},
    }


def _ref(model: type[BaseModel], components: dict) -> dict:
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    for name, sub in schema.pop("$defs", {}).items():
        components[name] = sub
    components[model.__name__] = schema
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _query_parameters(model: type[BaseModel], components: dict) -> list[dict]:
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    for name, sub in schema.pop("$defs", {}).items():
        components[name] = sub
    required = set(schema.get("required", []))
    out = []
    for name, prop in schema.get("properties", {}).items():
        prop = dict(prop)
        description = prop.pop("description", None)
        prop.pop("title", None)
        param = {"name": name, "in": "query", "required": name in required, "schema": prop}
        if description:
            param["description"] = description
        if _is_array(prop):
            param.update(style="form", explode=True)
        out.append(param)
    return out


def _is_array(prop: dict) -> bool:
    if prop.get("type") == "array":
        return True
    return any(p.get("type") == "array" for p in prop.get("anyOf", []) if isinstance(p, dict))


def undocumented_endpoints(app: Flask) -> list[str]:
    """Endpoints with no OpenAPI metadata (static files excepted); used by a test."""
    return sorted(
        {
            r.endpoint
            for r in app.url_map.iter_rules()
            if r.endpoint != "static" and not hasattr(app.view_functions[r.endpoint], "openapi")
        }
    )


__all__: typing.Sequence[str] = ("documented", "build_spec", "undocumented_endpoints")
