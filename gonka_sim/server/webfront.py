"""The containers in front: proxy (nginx to api, explorer and its own /health), explorer, and the
monitoring stack (prometheus, node-exporter, grafana)."""

from __future__ import annotations

import time
import urllib.error
import urllib.parse
import urllib.request

from . import simenv
from .behaviour import NGINX, Behaviour, forward, not_found
from .responses import Response, json_response, text_response

# ----------------------------------------------------------------------------- proxy

class Proxy(Behaviour):
    def setup(self):
        self.rt.log("/docker-entrypoint.sh: Configuration complete; ready for start up")
        self.chain_rpc = self.env.get("DISABLE_CHAIN_RPC", "true").lower() != "true"
        self.chain_api = self.env.get("DISABLE_CHAIN_API", "true").lower() != "true"

    def listener(self, cport):
        return ("http", self.http, NGINX) if cport == 80 else None

    def http(self, method, path, headers, body) -> Response:
        p = urllib.parse.urlsplit(path).path
        if p == "/health":  # proxy/nginx.unified.conf.template: `location = /health` -> 200 "healthy"
            return text_response("healthy\n")
        if p.startswith(("/v1/", "/v2/", "/api/")) or p == "/v1":
            return forward(method, path, headers, body, self.rt.upstream("api", int(self.env.get("GONKA_API_PORT", 9000))))
        if p.startswith("/chain-rpc"):
            if not self.chain_rpc:
                return not_found()
            sub = path[len("/chain-rpc"):] or "/"
            return forward(method, sub, headers, body, self.rt.upstream("node", 26657))
        if p.startswith("/chain-api"):
            if not self.chain_api:
                return not_found()
            return forward(method, path[len("/chain-api"):] or "/", headers, body, self.rt.upstream("node", 1317))
        return forward(method, path, headers, body, self.rt.upstream("explorer", int(self.env.get("DASHBOARD_PORT", 5173))))


class Explorer(Behaviour):
    PAGE = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Gonka Explorer</title></head>
<body>
<div id="app"><h1>Gonka Dashboard</h1><p>Network: gonka-mainnet</p></div>
</body>
</html>
"""

    def setup(self):
        self.rt.log("  VITE v5.4.10  ready in 412 ms")
        self.rt.log("  ➜  Network: http://0.0.0.0:5173/")

    def listener(self, cport):
        return ("http", lambda m, p, h, b: Response(200, self.PAGE, "text/html"), "") if cport == 5173 else None


# ----------------------------------------------------------------------------- monitoring

class Prometheus(Behaviour):
    def setup(self):
        self.rt.log('ts=' + simenv.rfc3339(nanos=False) + ' caller=main.go:1165 level=info msg="Server is ready to receive web requests."')

    def listener(self, cport):
        return ("http", self.http, "") if cport == 9090 else None

    def http(self, method, path, headers, body) -> Response:
        p = urllib.parse.urlsplit(path).path
        if p == "/-/healthy":
            return text_response("Prometheus Server is Healthy.\n")
        if p == "/-/ready":
            return text_response("Prometheus Server is Ready.\n")
        if p.startswith("/api/v1/targets"):
            return json_response({"status": "success", "data": {"activeTargets": [], "droppedTargets": []}})
        if p.startswith("/api/v1/"):
            return json_response({"status": "success", "data": {"resultType": "vector", "result": []}})
        return Response(302, "", "text/html", {"Location": "/query"}) if p == "/" else \
            Response(200, "<html><title>Prometheus Time Series Collection and Processing Server</title></html>",
                     "text/html")


class NodeExporter(Behaviour):
    def setup(self):
        self.rt.log('ts=' + simenv.rfc3339(nanos=False) + ' caller=tls_config.go:313 level=info msg="Listening on" address=[::]:9100')

    def listener(self, cport):
        return ("http", self.http, "") if cport == 9100 else None

    def http(self, method, path, headers, body) -> Response:
        if urllib.parse.urlsplit(path).path == "/metrics":
            return text_response("# HELP node_boot_time_seconds Node boot time, in unixtime.\n"
                                 "# TYPE node_boot_time_seconds gauge\n"
                                 f"node_boot_time_seconds {int(time.time()) - 3600}\n", ctype="text/plain; version=0.0.4")
        return Response(200, "<html><head><title>Node Exporter</title></head><body><h1>Node Exporter</h1></body></html>",
                        "text/html")


class Grafana(Behaviour):
    def listener(self, cport):
        return ("http", self.http, "") if cport == 3000 else None

    def http(self, method, path, headers, body) -> Response:
        if urllib.parse.urlsplit(path).path == "/api/health":
            return json_response({"database": "ok", "version": "11.2.0"})
        return Response(302, "", "text/html", {"Location": "/login"})
