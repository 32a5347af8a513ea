"""Docker Compose: `docker compose ps --format json` and the services a compose file runs by default."""

from __future__ import annotations

from dataclasses import dataclass, field

from gonka_tasks.facts.base import FactError, load_json


@dataclass
class Container:
    name: str
    service: str
    state: str
    exit_code: int = 0
    health: str = ""
    publishers: list[dict] = field(default_factory=list)

    @property
    def running(self) -> bool:
        return self.state == "running"


def parse_compose_ps(text: str) -> list[Container]:
    """`docker compose ps --format json`: one JSON object per line (v2.21+) or one JSON array (older)."""
    text = text.strip()
    if not text:
        return []
    items: list = []
    if text.startswith("["):
        data = load_json(text, "compose ps")
        if not isinstance(data, list):
            raise FactError("compose ps: not a list")
        items = data
    else:
        for line in text.splitlines():
            line = line.strip()
            if line:
                items.append(load_json(line, "compose ps"))
    out = []
    for it in items:
        if not isinstance(it, dict):
            raise FactError("compose ps: entry is not an object")
        pubs = it.get("Publishers") or []
        code = it.get("ExitCode", 0)
        out.append(Container(
            name=str(it.get("Name", "")), service=str(it.get("Service", "")),
            state=str(it.get("State", "")).lower(), exit_code=code if isinstance(code, int) else 0,
            health=str(it.get("Health", "") or ""), publishers=pubs if isinstance(pubs, list) else [],
        ))
    return out


def compose_services(yaml_text: str) -> list[str]:
    """Service names of a compose file that run by default (services with `profiles` are opt-in)."""
    import yaml  # noqa: PLC0415 - only phases that read compose files need it

    try:
        data = yaml.safe_load(yaml_text)
    # PyYAML's scalar constructors raise more than YAMLError: ValueError (`2001-02-30`, `!!int x`, a
    # 5000-digit int), KeyError (`!!bool x`), IndexError (`!!int`), AttributeError (`!!timestamp x`);
    # deep nesting raises RecursionError.
    except (yaml.YAMLError, ValueError, LookupError, AttributeError, TypeError, RecursionError) as e:
        raise FactError(f"compose file: not YAML ({e.__class__.__name__})") from None
    if not isinstance(data, dict) or not isinstance(data.get("services"), dict):
        raise FactError("compose file: no services")
    return [str(name) for name, svc in data["services"].items()
            if not (isinstance(svc, dict) and svc.get("profiles"))]
