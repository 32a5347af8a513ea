"""The network node's admin API (port 9200, loopback only) and its public API, reached through the SSH
connection: `curl` runs on the network node against 127.0.0.1, never over the internet.

Upstream: decentralized-api v0.2.13 `internal/server/admin/server.go` (routes `/admin/v1/nodes`,
`nodes/batch`, `nodes/:id`, `nodes/:id/enable|disable`), `node_handlers.go`; public
`/v1/epochs/latest` (`get_epoch.go`) and `/v1/epochs/current/participants`. Request bodies travel
over stdin (`--data-binary @-`); the HTTP status is the answer's last line.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from typing import Any

from gonka_tasks.errors import DeployError

ADMIN_URL = "http://127.0.0.1:9200"
TIMEOUT_S = 30


@dataclass(frozen=True)
class Answer:
    status: int  # 0: no HTTP answer (curl could not connect or timed out)
    data: Any  # the JSON body, or None when it was not JSON
    text: str

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


def curl_command(method: str, url: str, *, body: bool) -> str:
    """curl on the server: body from stdin when `body`, the status on a last line of its own."""
    data = "--data-binary @- " if body else ""
    return (f"curl -sS -m {TIMEOUT_S} -X {shlex.quote(method)} -H 'Content-Type: application/json' {data}"
            f"-w '\\n%{{http_code}}' {shlex.quote(url)}")


def parse_answer(text: str) -> Answer:
    """curl's output (`curl_command`) -> status and JSON body."""
    body, _, last = (text or "").rstrip("\n").rpartition("\n")
    if not last.strip().isdigit():
        body, last = text or "", "0"
    try:
        data = json.loads(body) if body.strip() else None
    except ValueError:
        data = None
    return Answer(int(last.strip()), data, body.strip()[:2000])


def admin_path(*parts: str) -> str:
    """`/admin/v1/nodes/<id>/...`: each part URL-safe (ids are validated as [A-Za-z0-9_.-])."""
    for p in parts:
        if not p or any(not (c.isalnum() or c in "_.-") for c in p):
            raise DeployError(f"not a valid ML node id for the admin API: {p!r}", "use letters, digits, '.', '_' or '-'")
    return "/".join(("/admin/v1/nodes", *parts))


def call(remote, method: str, path: str, body: Any = None, *, what: str, base: str = ADMIN_URL) -> Answer:
    """One request from the network node to itself. GET is a probe; anything else a change (refused in
    plan mode by Remote). No HTTP answer at all is an error naming the URL."""
    url = base + path
    cmd = curl_command(method, url, body=body is not None)
    payload = json.dumps(body) + "\n" if body is not None else None
    if method == "GET":
        r = remote.probe(cmd, what=what, input=payload)
    else:
        r = remote.run(cmd, what=what, input=payload, ok_codes=tuple(range(100)), show_output=False)
    ans = parse_answer(r.stdout)
    if ans.status == 0:
        raise DeployError(f"{what}: no answer from {url} on the network node ({(r.stderr or r.stdout).strip()[-200:]})",
                          "check that the network node's api container runs (`fab status` / `fab verify` on it)")
    return ans


def public_url(api_port: int | str) -> str:
    """The network node's public API as the server itself reaches it (the proxy on API_PORT)."""
    return f"http://127.0.0.1:{int(api_port)}"


def error_of(ans: Answer) -> str:
    """The API's error message (`{"error": ...}`, nested for batches), else the body."""
    key = next((k for k in ("error", "message") if isinstance(ans.data, dict) and k in ans.data), None)
    if key:  # echo's HTTPError answers {"message": ...}; the handlers' own errors {"error": ...}
        err = ans.data[key]
        return json.dumps(err) if not isinstance(err, str) else err
    return ans.text[:300] or f"HTTP {ans.status}"
