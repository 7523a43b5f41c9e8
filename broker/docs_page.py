"""``GET /docs``: the OpenAPI document as one self-contained HTML page.

Rendered on the server from the generated document (no script, no CDN): every
operation with its access, parameters, body and answers, then every schema.
"""

from __future__ import annotations

import json
from html import escape
from typing import Any

_STYLE = """
body{font:15px/1.45 system-ui,sans-serif;max-width:70rem;margin:2rem auto;
padding:0 1rem}
h2{border-bottom:1px solid #ccc;margin-top:2.5rem}
.op{border:1px solid #ddd;border-radius:6px;padding:.6rem 1rem;margin:.8rem 0}
.m{font-weight:700;text-transform:uppercase;display:inline-block;width:4.5rem}
.get{color:#1769aa}.post{color:#2e7d32}.put{color:#8d6e00}.delete{color:#c62828}
code,pre{font-family:ui-monospace,monospace;font-size:13px}
pre{background:#f6f8fa;padding:.5rem;overflow:auto;max-height:24rem}
table{border-collapse:collapse}td,th{border:1px solid #ddd;padding:.2rem .5rem}
a{color:#1769aa}
"""

_REF_PREFIX = "#/components/schemas/"


def _anchor(name: str) -> str:
    return "schema-" + "".join(c if c.isalnum() else "-" for c in name)


def _schema_html(schema: Any) -> str:
    """A schema as pretty JSON whose ``$ref``s link to the schema section."""
    text = escape(json.dumps(schema, indent=2, ensure_ascii=False))
    for name in _refs(schema):
        quoted = escape(json.dumps(_REF_PREFIX + name))
        text = text.replace(quoted, f'<a href="#{_anchor(name)}">{quoted}</a>')
    return f"<pre>{text}</pre>"


def _refs(schema: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(schema, dict):
        ref = schema.get("$ref")
        if isinstance(ref, str) and ref.startswith(_REF_PREFIX):
            found.add(ref.removeprefix(_REF_PREFIX))
        for value in schema.values():
            found |= _refs(value)
    elif isinstance(schema, list):
        for value in schema:
            found |= _refs(value)
    return found


def _access(security: list[dict[str, list[str]]]) -> str:
    if not security:
        return "public"
    return " or ".join(" + ".join(sorted(alt)) for alt in security)


def _operation(path: str, method: str, op: dict[str, Any]) -> str:
    parts = [
        f'<div class="op" id="{escape(op["operationId"])}">',
        f'<span class="m {method}">{method}</span> <code>{escape(path)}</code>'
        f" — {escape(op.get('summary', ''))}",
        f"<p>Access: {escape(_access(op.get('security', [])))}</p>",
    ]
    params = op.get("parameters", [])
    if params:
        rows = "".join(
            f"<tr><td><code>{escape(p['name'])}</code></td><td>{escape(p['in'])}</td>"
            f"<td>{'yes' if p.get('required') else 'no'}</td>"
            f"<td><code>{escape(json.dumps(p.get('schema', {})))}</code></td></tr>"
            for p in params
        )
        parts.append(
            "<p>Parameters</p><table><tr><th>name</th><th>in</th><th>required</th>"
            f"<th>schema</th></tr>{rows}</table>"
        )
    body = op.get("requestBody")
    if body:
        for content_type, media in body["content"].items():
            parts.append(f"<p>Request body ({escape(content_type)})</p>")
            parts.append(_schema_html(media.get("schema", {})))
    for status, answer in op.get("responses", {}).items():
        for content_type, media in answer.get("content", {}).items():
            parts.append(
                f"<p>Answer {escape(status)} ({escape(content_type)}): "
                f"{escape(answer.get('description', ''))}</p>"
            )
            parts.append(_schema_html(media.get("schema", {})))
    parts.append("</div>")
    return "\n".join(parts)


def render_docs(spec: dict[str, Any]) -> str:
    info = spec.get("info", {})
    title = escape(f"{info.get('title', 'API')} {info.get('version', '')}".strip())
    out = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{title}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{title}</h1>",
        f"<p>{escape(info.get('description', ''))}</p>",
        '<p>Machine-readable: <a href="/openapi.json">/openapi.json</a> '
        "(OpenAPI 3.1).</p>",
        "<h2>Operations</h2>",
    ]
    for path, methods in spec.get("paths", {}).items():
        for method, op in methods.items():
            out.append(_operation(path, method, op))
    out.append("<h2>Schemas</h2>")
    for name, schema in spec.get("components", {}).get("schemas", {}).items():
        out.append(f'<h3 id="{_anchor(name)}">{escape(name)}</h3>')
        out.append(_schema_html(schema))
    out.append("</body></html>")
    return "\n".join(out)
