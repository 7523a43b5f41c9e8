"""OpenAPI 3.1 document generated from the route table (never written by hand).

Body, query and response types are msgspec types; their JSON Schemas come from
``msgspec.json.schema_components`` and land in ``components/schemas``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec

from broker.http.routing import Access, Route

REF_TEMPLATE = "#/components/schemas/{name}"
JSON = "application/json"


class ErrorResponse(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """Every refused request: the HTTP status repeated, and why."""

    status: int
    msg: str
    reason_code: int = 0  # a WuKongIM reason code, where one fits


SECURITY_SCHEMES: dict[str, Any] = {
    "managerToken": {
        "type": "apiKey",
        "in": "header",
        "name": "token",
        "description": "The manager token (JINDOU_MANAGER_TOKEN).",
    },
    "userUid": {
        "type": "apiKey",
        "in": "header",
        "name": "uid",
        "description": "A user's uid; goes with that user's token.",
    },
    "userToken": {
        "type": "apiKey",
        "in": "header",
        "name": "token",
        "description": "The user's token, as set with /user/token.",
    },
}

_SECURITY: dict[Access, list[dict[str, list[str]]]] = {
    Access.PUBLIC: [],
    Access.MANAGER: [{"managerToken": []}],
    Access.USER: [{"managerToken": []}, {"userUid": [], "userToken": []}],
}


def _query_fields(query: Any) -> list[msgspec.structs.FieldInfo]:
    return list(msgspec.structs.fields(query))


def _schema_types(routes: Sequence[Route]) -> list[Any]:
    """Every type to describe, in a fixed order (schemas are indexed by it)."""
    types: list[Any] = [ErrorResponse]
    for route in routes:
        if route.body is not None:
            types.append(route.body)
        if route.query is not None:
            types.extend(f.type for f in _query_fields(route.query))
        if route.response is not None:
            types.append(route.response)
    return types


def build_openapi(
    routes: Sequence[Route], *, title: str, version: str, description: str = ""
) -> dict[str, Any]:
    types = _schema_types(routes)
    schemas, components = msgspec.json.schema_components(
        types, ref_template=REF_TEMPLATE
    )
    schema_of = iter(schemas)
    error_schema = next(schema_of)
    error = {
        "description": "Refused: `status` repeats the HTTP status, `msg` says why.",
        "content": {JSON: {"schema": error_schema}},
    }
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        op: dict[str, Any] = {
            "operationId": _operation_id(route),
            "summary": route.summary or route.path,
            "security": _SECURITY[route.access],
            "responses": {},
        }
        if route.body is not None:
            op["requestBody"] = {
                "required": True,
                "content": {JSON: {"schema": next(schema_of)}},
            }
        if route.query is not None:
            op["parameters"] = [
                {
                    "name": f.encode_name,
                    "in": "query",
                    "required": f.required,
                    "schema": next(schema_of),
                }
                for f in _query_fields(route.query)
            ]
        op["responses"]["200"] = _ok(route, schema_of)
        op["responses"]["default"] = error
        paths.setdefault(route.path, {})[route.method.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version, "description": description},
        "paths": paths,
        "components": {"schemas": components, "securitySchemes": SECURITY_SCHEMES},
    }


def _ok(route: Route, schema_of: Any) -> dict[str, Any]:
    if route.response is not None:
        schema = next(schema_of)
    elif route.content_type == JSON:
        schema = {"type": "object"}
    else:
        schema = {"type": "string"}
    return {"description": "OK", "content": {route.content_type: {"schema": schema}}}


def _operation_id(route: Route) -> str:
    name = route.path.strip("/").replace("/", "_").replace("{", "").replace("}", "")
    return f"{route.method.lower()}_{name or 'root'}"
