"""Query strings into validated pydantic models, and validation errors into field lists.

Pure functions: the views call them, and tests can call them without an app.
"""

from __future__ import annotations

import typing

from pydantic import BaseModel, ValidationError

from app.http.errors import Problem, field_error


def parse_query(model: type[BaseModel], args) -> BaseModel:
    """Validate a Werkzeug ``MultiDict`` against ``model``; raise a 400 ``Problem`` on error.

    List fields take repeated keys and/or comma-separated values (``price=1,2&price=3``);
    scalar fields must appear once. Unknown keys are errors, so typos do not pass silently.
    """
    data: dict[str, typing.Any] = {}
    errors = []
    for key in args:
        values = args.getlist(key)
        info = model.model_fields.get(key)
        if info is not None and _is_list(info.annotation):
            data[key] = [v.strip() for raw in values for v in raw.split(",") if v.strip() != ""]
        elif len(values) > 1:
            errors.append(field_error(key, f"given {len(values)} times", "give this parameter once"))
        else:
            data[key] = values[0]
    if errors:
        raise Problem(400, "Invalid query parameters.", errors)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise Problem(400, "Invalid query parameters.", validation_errors(model, exc)) from None


def parse_body(model: type[BaseModel], what: str, shape: str = ""):
    """The request's JSON body validated against ``model``; a 400 ``Problem`` naming the fields otherwise."""
    from flask import request

    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise Problem(400, f"Body must be a JSON object{shape} (Content-Type: application/json).")
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise Problem(400, f"Invalid {what}.", validation_errors(model, exc)) from None


def validation_errors(model: type[BaseModel], exc: ValidationError) -> list[dict]:
    out = []
    for err in exc.errors(include_url=False):
        loc = [str(p) for p in err.get("loc", ())]
        name = loc[0] if loc else "query"
        info = model.model_fields.get(name)
        if err.get("type") == "extra_forbidden" and name == "user_id":
            out.append(field_error(name, "a user is not named in the query", _USER_HINT))
            continue
        if err.get("type") == "extra_forbidden":
            known = ", ".join(sorted(model.model_fields))
            out.append(field_error(name, "unknown parameter", f"known parameters: {known}"))
            continue
        message = err.get("msg", "invalid value")
        if "input" in err and not isinstance(err["input"], (dict, list)):
            message = f"{message} (got {str(err['input'])[:60]!r})"
        hint = info.description if info is not None else None
        out.append(field_error(".".join(loc) or "query", message, hint))
    return out


_USER_HINT = "send the user's token as 'Authorization: Bearer <user token>' (python -m scripts.users token ID)"


def _is_list(annotation) -> bool:
    origin = typing.get_origin(annotation)
    if origin in (list, tuple, set, frozenset):
        return True
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        return any(_is_list(a) for a in typing.get_args(annotation))
    if origin is typing.Annotated:
        return _is_list(typing.get_args(annotation)[0])
    return False
