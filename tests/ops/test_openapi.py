import json

from broker.http.app import ROUTES
from broker.http.routing import Access


async def fetch_spec(api):
    resp = await api.client.get("/openapi.json")  # public: no token needed
    assert resp.status == 200
    return await resp.json()


def registered_routes(app) -> set[tuple[str, str]]:
    found = set()
    for route in app.router.routes():
        if route.method in ("HEAD", "OPTIONS"):
            continue  # implied by GET / CORS; not operations of their own
        if route.method == "*":
            continue  # the catch-all that answers 404/405 for unknown paths
        found.add((route.method.lower(), route.resource.canonical))
    return found


async def test_every_registered_route_is_documented(api):
    spec = await fetch_spec(api)
    documented = {
        (method, path) for path, ops in spec["paths"].items() for method in ops
    }
    missing = registered_routes(api.app) - documented
    assert not missing, f"routes missing from /openapi.json: {sorted(missing)}"
    # and nothing documented that is not served
    assert documented <= registered_routes(api.app)


async def test_document_is_openapi_31_with_resolvable_refs(api):
    spec = await fetch_spec(api)
    assert spec["openapi"] == "3.1.0"
    schemas = spec["components"]["schemas"]
    text = json.dumps(spec)
    refs = {
        part.split('"')[0] for part in text.split('"$ref": "#/components/schemas/')[1:]
    }
    assert refs
    assert refs <= set(schemas)


async def test_operations_carry_their_types_access_and_errors(api):
    spec = await fetch_spec(api)
    send = spec["paths"]["/message/send"]["post"]
    assert send["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/SendRequest"
    }
    assert send["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/SendResponse"
    }
    # the manager, or a user sending as himself (issue 3: client sends over HTTP)
    assert {"managerToken": []} in send["security"]
    assert {"userUid": [], "userToken": []} in send["security"]
    payload = spec["components"]["schemas"]["SendRequest"]["properties"]["payload"]
    assert payload["contentEncoding"] == "base64"
    error = spec["components"]["schemas"]["ErrorResponse"]
    assert set(error["required"]) == {"status", "msg"}
    query = spec["paths"]["/channel/max_message_seq"]["get"]["parameters"]
    assert {p["name"] for p in query} == {"channel_id", "channel_type", "login_uid"}
    assert all(p["in"] == "query" for p in query)
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            assert "200" in op["responses"], (method, path)
            assert op["responses"]["default"]["content"]["application/json"][
                "schema"
            ] == {"$ref": "#/components/schemas/ErrorResponse"}
    assert spec["paths"]["/health"]["get"]["security"] == []
    assert spec["paths"]["/metrics"]["get"]["responses"]["200"]["content"] == {
        "text/plain": {"schema": {"type": "string"}}
    }


async def test_access_levels_follow_the_route_table(api):
    spec = await fetch_spec(api)
    for route in ROUTES:
        security = spec["paths"][route.path][route.method.lower()]["security"]
        if route.access is Access.PUBLIC:
            assert security == []
        elif route.access is Access.MANAGER:
            assert security == [{"managerToken": []}]
        else:
            assert {"userUid": [], "userToken": []} in security


async def test_docs_page_renders_every_operation_and_schema(api):
    spec = await fetch_spec(api)
    resp = await api.client.get("/docs")
    assert resp.status == 200
    assert resp.content_type == "text/html"
    page = await resp.text()
    assert "<script" not in page  # self-contained, nothing fetched
    for path, ops in spec["paths"].items():
        assert f"<code>{path}</code>" in page
        for op in ops.values():
            assert f'id="{op["operationId"]}"' in page
    for name in spec["components"]["schemas"]:
        assert f">{name}</h3>" in page
    assert 'href="#schema-SendRequest"' in page
