"""The part of Go's text/template that ``docker ... --format`` users write.

Supports ``{{.A.B}}``, ``{{json .}}``, ``{{json .A}}``, ``{{index .Labels "k"}}``,
``{{.Label "k"}}``, ``{{upper .X}}``/``{{lower .X}}``, the ``table`` prefix and ``\\t``/``\\n``.
"""

from __future__ import annotations

import json
import re

ACTION = re.compile(r"\{\{-?\s*(.*?)\s*-?\}\}")


class TemplateError(Exception):
    pass


def _path(obj, path: str):
    if path in (".", ""):
        return obj
    cur = obj
    for part in path.lstrip(".").split("."):
        if isinstance(cur, dict) and part in cur:
            cur = cur[part]
        else:
            raise TemplateError(f'template: :1: executing "" at <{path}>: can\'t evaluate field {part}')
    return cur


def _fmt(v) -> str:
    if v is None:
        return "<no value>"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, dict):
        return "map[" + " ".join(f"{k}:{_fmt(x)}" for k, x in sorted(v.items())) + "]"
    if isinstance(v, list):
        return "[" + " ".join(_fmt(x) for x in v) + "]"
    return str(v)


def _eval(expr: str, obj):
    tokens = re.findall(r'"[^"]*"|\S+', expr)
    if not tokens:
        return ""
    head, args = tokens[0], tokens[1:]
    if head == "json":
        return json.dumps(_path(obj, args[0] if args else "."), separators=(",", ":"))
    if head in ("upper", "lower", "title"):
        s = str(_path(obj, args[0]))
        return {"upper": s.upper(), "lower": s.lower(), "title": s.title()}[head]
    if head == "index":
        container = _path(obj, args[0])
        key = args[1].strip('"')
        if isinstance(container, list):
            return container[int(key)]
        return (container or {}).get(key, "")
    if head == "println":
        return " ".join(_fmt(_path(obj, a)) for a in args) + "\n"
    if head.startswith("."):
        if args and head.endswith(".Label"):  # {{.Label "com.docker.compose.service"}}
            labels = obj.get("LabelsMap") or {}
            return labels.get(args[0].strip('"'), "")
        return _path(obj, head)
    raise TemplateError(f'template: :1: function "{head}" not defined')


def render(template: str, obj) -> str:
    template = template.replace("\\t", "\t").replace("\\n", "\n")

    def sub(m):
        v = _eval(m.group(1), obj)
        return v if isinstance(v, str) else _fmt(v)

    return ACTION.sub(sub, template)


def header(template: str) -> str:
    """The header row of a ``table ...`` template: field names upper-cased like docker does."""
    template = template.replace("\\t", "\t").replace("\\n", "\n")

    def name(m):
        expr = m.group(1).split()[-1] if m.group(1).split() else ""
        field = expr.lstrip(".").split(".")[-1]
        return {"ID": "CONTAINER ID", "Names": "NAMES", "RunningFor": "CREATED", "CreatedAt": "CREATED AT"}.get(
            field, re.sub(r"(?<!^)(?=[A-Z])", " ", field).upper())

    return ACTION.sub(name, template)
