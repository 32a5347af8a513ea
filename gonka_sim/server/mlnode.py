"""The ML node (uvicorn-style: /health, /api/v1/state, /api/v1/gpu/devices, /v1/models) and its
nginx `inference`, forwarding per the mounted nginx.conf."""

from __future__ import annotations

import urllib.error
import urllib.parse
import urllib.request

from . import gpu
from .behaviour import NGINX, Behaviour, forward
from .runtime import Fatal, Response, json_response

# ----------------------------------------------------------------------------- ML node and its nginx

class MLNode(Behaviour):
    def setup(self):
        log = self.rt.log
        log("INFO:     Started server process [1]")
        log("INFO:     Waiting for application startup.")
        if not gpu.gpus():
            log("WARNING:  CUDA is not available - no GPU support detected")
        log("INFO:     Application startup complete.")
        log("INFO:     Uvicorn running on http://0.0.0.0:8080 (Press CTRL+C to quit)")
        self.state = "STOPPED"

    def listener(self, cport):
        return ("http", self.http, "uvicorn") if cport in (8080, 5000) else None

    def devices(self) -> dict:
        devs = [{"index": g["index"], "name": g["name"], "total_memory_mb": g["memory_total_mib"],
                 "free_memory_mb": g["memory_total_mib"] - g["memory_used_mib"], "used_memory_mb": g["memory_used_mib"],
                 "utilization_percent": g["utilization"], "temperature_c": g["temperature"], "is_available": True,
                 "error_message": None} for g in gpu.gpus()]
        return {"devices": devs, "count": len(devs)}

    def http(self, method, path, headers, body) -> Response:
        p = urllib.parse.urlsplit(path).path.rstrip("/") or "/"
        self.rt.log(f'INFO:     {headers.get("X-Real-IP", "172.18.0.1")}:0 - "{method} {path} HTTP/1.1" 200 OK')
        if p == "/health":
            d = self.devices()
            return json_response({"status": "healthy", "gpu": {"available": bool(d["count"]), "count": d["count"],
                                                               "devices": d["devices"]}})
        if p == "/api/v1/state":
            return json_response({"state": self.state})
        if p == "/api/v1/gpu/devices":
            return json_response(self.devices())
        if p == "/v1/models":
            return json_response({"object": "list", "data": []})
        if method == "POST" and p.startswith("/api/v1/"):
            return json_response({"status": "OK"})
        return json_response({"detail": "Not Found"}, 404)


class Inference(Behaviour):
    """nginx reading its mounted nginx.conf: each `listen` port forwards to its upstream server."""

    def setup(self):
        conf = self.rt.path("/etc/nginx/nginx.conf")
        self.routes: dict[int, tuple[str, int]] = {}
        self.welcome = False
        if conf.is_dir():
            raise Fatal('nginx: [emerg] open() "/etc/nginx/nginx.conf" failed (21: Is a directory)')
        if not conf.is_file():
            self.welcome = True  # the image's own default.conf: the welcome page on port 80
        else:
            self.routes = parse_nginx(conf.read_text())
        self.rt.log("/docker-entrypoint.sh: Configuration complete; ready for start up")

    def listener(self, cport):
        if cport in self.routes:
            return ("http", lambda m, p, h, b, port=cport: self.http(port, m, p, h, b), NGINX)
        if self.welcome and cport == 80:
            return ("http", lambda m, p, h, b: Response(200, "<h1>Welcome to nginx!</h1>", "text/html"), NGINX)
        return None

    def http(self, port, method, path, headers, body) -> Response:
        host, uport = self.routes[port]
        parts = path.split("/", 2)
        if len(parts) > 2 and parts[1].startswith("v") and parts[1][1:2].isdigit() and "." in parts[1]:
            path = "/" + parts[2]  # location /v3.0.8/ { proxy_pass http://upstream/; } strips the prefix
        return forward(method, path, headers, body, self.rt.upstream(host, uport))


def parse_nginx(text: str) -> dict[int, tuple[str, int]]:
    """listen port -> (host, port) of the first upstream server it proxies to."""
    import re

    text = re.sub(r"#[^\n]*", "", text)
    upstreams = {}
    for m in re.finditer(r"upstream\s+(\S+)\s*\{([^}]*)\}", text):
        srv = re.search(r"server\s+([^;\s]+)", m.group(2))
        if srv:
            upstreams[m.group(1)] = srv.group(1)
    routes = {}
    listens = list(re.finditer(r"listen\s+(?:[\d.]+:)?(\d+)[^;]*;", text))
    for i, m in enumerate(listens):
        chunk = text[m.end(): listens[i + 1].start() if i + 1 < len(listens) else len(text)]
        pp = re.search(r"proxy_pass\s+https?://([^/;\s]+)", chunk)
        if not pp:
            continue
        target = upstreams.get(pp.group(1), pp.group(1))
        host, _, port = target.partition(":")
        routes[int(m.group(1))] = (host, int(port or 80))
    return routes
