"""The process that stands for a running container (``container-init <name>``).

It reads the container's state file, applies the start knobs (``fail_start``, ``slow_start``,
``log_inject``), lets the service's behaviour set up its files, binds every address of the
container's listen plan (threaded HTTP or raw TCP; ports nobody serves just accept and close,
like a published port whose process does not listen), marks itself ready and waits for SIGTERM.
Its stdout/stderr are the container log. It never busy-waits.
"""

from __future__ import annotations

import os
import signal
import socket
import socketserver
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from . import engine, services, simenv
from .responses import Fatal, text_response


class _ReuseMixin:
    """SO_REUSEPORT on every sim socket: a container's own address and a port published on
    0.0.0.0 by another container can both listen (the more specific address wins)."""

    allow_reuse_address = True
    daemon_threads = True

    def server_bind(self):
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        super().server_bind()


class HTTPServer(_ReuseMixin, ThreadingHTTPServer):
    pass


class TCPServer(_ReuseMixin, socketserver.ThreadingTCPServer):
    pass


def http_handler(app, server_header: str):
    """A request handler class calling ``app(method, path, headers, body) -> Response``."""

    class Handler(BaseHTTPRequestHandler):
        server_version = server_header
        sys_version = ""

        def _do(self, method: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            try:
                resp = app(method, self.path, self.headers, body)
            except Exception as e:  # a bug in a simulated service: answer 500, keep running
                print(f"internal error on {method} {self.path}: {e!r}", flush=True)
                resp = text_response(f"internal error: {e}\n", 500)
            try:
                self.send_response(resp.status)
                for k, v in resp.headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(resp.body)))
                self.end_headers()
                if method != "HEAD":
                    self.wfile.write(resp.body)
            except (BrokenPipeError, ConnectionResetError):
                pass

        def do_GET(self):
            self._do("GET")

        def do_HEAD(self):
            self._do("HEAD")

        def do_POST(self):
            self._do("POST")

        def do_PUT(self):
            self._do("PUT")

        def do_DELETE(self):
            self._do("DELETE")

        def log_message(self, *args):
            pass

    return Handler


class _Holder(socketserver.BaseRequestHandler):
    """Accept and close: a port that is bound but has no program behind it."""

    def handle(self):
        pass


class Runtime:
    def __init__(self, name: str):
        self.name = name
        st = simenv.read_json(engine.state_path(name))
        if not st:
            raise SystemExit(f"gonka-sim: no container state for {name}")
        self.state: dict = st
        self.env = os.environ
        self.stop_event = threading.Event()
        self.servers: list[socketserver.BaseServer] = []

    # -- helpers for behaviours ----------------------------------------------------------------

    @property
    def service(self) -> str:
        return self.state["service"]

    @property
    def project(self) -> str:
        return self.state["project"]

    def path(self, cpath: str) -> Path:
        return engine.host_path_of(self.state, cpath)

    def log(self, line: str) -> None:
        print(line, flush=True)

    def knob(self, name: str, default=None):
        return simenv.knob(name, default)

    def upstream(self, host: str, port: int) -> tuple[str, int] | None:
        return engine.upstream(self.project, host, port)

    def sleep(self, seconds: float) -> bool:
        """Sleep unless stopped; True if the container is stopping."""
        return self.stop_event.wait(seconds)

    # -- life cycle ------------------------------------------------------------------------------

    def _on_signal(self, signum, frame):
        self.stop_event.set()

    def _matches(self, spec) -> bool:
        names = {self.service, self.name}
        if isinstance(spec, str):
            return spec in names
        return bool(names & set(spec or []))

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        k = simenv.knobs()
        if self._matches(k.get("fail_start")):
            self.log(f"Error: {self.service} failed to start (gonka-sim knob fail_start)")
            return 1
        slow = (k.get("slow_start") or {})
        delay = slow.get(self.service, slow.get(self.name, 0)) if isinstance(slow, dict) else 0
        behaviour = services.make(self)
        try:
            behaviour.setup()
        except Fatal as e:
            self.log(str(e))
            return 1
        inject = (k.get("log_inject") or {})
        lines = inject.get(self.service, inject.get(self.name)) if isinstance(inject, dict) else None
        for line in [lines] if isinstance(lines, str) else (lines or []):
            self.log(line)
        if delay and self.sleep(float(delay)):
            return 0
        try:
            self._bind(behaviour)
        except OSError as e:
            self.log(f"Error: listen: {e}")
            self._close()
            return 1
        behaviour.start()
        simenv.run_dir().mkdir(parents=True, exist_ok=True)
        engine.run_file(self.name, "ready").write_text(f"{time.time()}\n")
        while not self.stop_event.wait(3600):
            pass
        behaviour.stop()
        self._close()
        return 0

    def _bind(self, behaviour) -> None:
        for ip, port, cport in self.state.get("listen", []):
            spec = behaviour.listener(cport)
            if spec is None:
                srv = TCPServer((ip, port), _Holder)
            elif spec[0] == "http":
                srv = HTTPServer((ip, port), http_handler(spec[1], spec[2] if len(spec) > 2 else "gonka"))
            else:
                srv = TCPServer((ip, port), spec[1])
            self.servers.append(srv)
            threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.5}, daemon=True).start()

    def _close(self) -> None:
        # The process exits right after: closing the sockets is enough (serve threads are daemons).
        for srv in self.servers:
            srv.server_close()


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv if argv is None else argv)
    name = argv[1]
    code = 1
    try:
        code = Runtime(name).run()
    finally:
        try:
            simenv.run_dir().mkdir(parents=True, exist_ok=True)
            engine.run_file(name, "exit").write_text(f"{code}\n")
        except OSError:
            pass
        sys.stdout.flush()
    return code
