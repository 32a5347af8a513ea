"""The base of every simulated container program: its log formats (zerolog, slog, Rust-style),
HTTP helpers and the `Behaviour` class the programs extend."""

from __future__ import annotations

import http.client
import json
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

from . import simenv
from .responses import Response

NGINX = "nginx/1.28.0"




# ----------------------------------------------------------------------------- log styles

def _kv(**kv) -> str:
    parts = []
    for k, v in kv.items():
        v = str(v)
        parts.append(f"{k}={json.dumps(v) if (not v or ' ' in v or '=' in v or chr(34) in v) else v}")
    return " ".join(parts)


def zlog(level: str, msg: str, **kv) -> str:
    """Cosmos SDK / CometBFT console log line: ``4:12PM INF message key=value``."""
    stamp = time.strftime("%I:%M%p").lstrip("0")
    return f"{stamp} {level} {msg} {_kv(**kv)}".rstrip()


def slog(level: str, msg: str, **kv) -> str:
    """Go log/slog text line of the api: ``time=... level=INFO msg="..." k=v``."""
    return f"time={simenv.rfc3339(nanos=False)} level={level} msg={json.dumps(msg)} {_kv(**kv)}".rstrip()


def rlog(level: str, target: str, msg: str) -> str:
    """Rust tracing line of tmkms."""
    return f"{simenv.rfc3339()[:-4]}Z {level:>5} {target}: {msg}"


def get_json(url: str, timeout: float = 3.0):
    """(status, parsed JSON or None); raises OSError when nothing answers."""
    return _json_call(urllib.request.Request(simenv.sim_url(url)), timeout)


def post_json(url: str, obj, timeout: float = 10.0):
    """POST JSON: (status, parsed JSON or None); raises OSError when nothing answers."""
    return _json_call(urllib.request.Request(simenv.sim_url(url), data=json.dumps(obj).encode(), method="POST",
                                             headers={"Content-Type": "application/json"}), timeout)


def _json_call(req, timeout: float):
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            body, status = r.read(), r.status
    except urllib.error.HTTPError as e:
        body, status = e.read(), e.code
    try:
        return status, json.loads(body)
    except ValueError:
        return status, None


def forward(method: str, path: str, headers, body: bytes, target: tuple[str, int] | None,
            server: str = NGINX) -> Response:
    """Reverse-proxy one request (nginx's 502 page when the upstream is down)."""
    if target is None:
        return bad_gateway(server)
    conn = http.client.HTTPConnection(target[0], target[1], timeout=30)
    try:
        hdrs = {k: v for k, v in headers.items() if k.lower() not in ("host", "connection", "content-length")}
        conn.request(method, path, body=body or None, headers=hdrs)
        r = conn.getresponse()
        data = r.read()
        return Response(r.status, data, r.getheader("Content-Type") or "application/octet-stream")
    except OSError:
        return bad_gateway(server)
    finally:
        conn.close()


def bad_gateway(server: str = NGINX) -> Response:
    return Response(502, f"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad "
                         f"Gateway</h1></center>\r\n<hr><center>{server}</center>\r\n</body>\r\n</html>\r\n",
                    "text/html")


def not_found(server: str = NGINX) -> Response:
    return Response(404, f"<html>\r\n<head><title>404 Not Found</title></head>\r\n<body>\r\n<center><h1>404 Not "
                         f"Found</h1></center>\r\n<hr><center>{server}</center>\r\n</body>\r\n</html>\r\n",
                    "text/html")


# ----------------------------------------------------------------------------- base

class Behaviour:
    def __init__(self, rt):
        self.rt = rt
        self.env = rt.env

    def setup(self) -> None:
        pass

    def listener(self, cport: int):
        """("http", app, server_header) | ("tcp", handler_class) | None (accept and close)."""
        return None

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def thread(self, fn) -> None:
        threading.Thread(target=fn, daemon=True).start()


class Idle(Behaviour):
    def setup(self):
        self.rt.log(f"{self.rt.service}: started")
