"""Small threaded HTTP server base shared by the runner-side simulations (seed, hub, package index).

Each simulation is a :class:`SimServer` subclass: it owns one or more listening sockets (stdlib
``ThreadingHTTPServer``, bound to ``0.0.0.0`` by default so sandbox hosts reach it at their
``runner_ip``), a knob object (plain dataclass, edited by tests between requests) and counters.

The base handles what every simulation needs the same way: request counting, and the fault knobs
of :class:`Knobs` (delays, dropped connections, rate limiting, injected 5xx), applied before the
request reaches the subclass's ``handle``.

One module on purpose (~480 lines): the HTTP base every simulated service shares (routing,
knobs, faults, bandwidth); splitting it would scatter one server's request path.
"""

from __future__ import annotations

import collections
import contextlib
import copy
import dataclasses
import json
import math
import re
import socket
import threading
import time
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

__all__ = [
    "Knobs",
    "Request",
    "RequestRecord",
    "SimHandler",
    "SimServer",
    "TokenBucket",
    "route",
]


SIM_PREFIX = "/gonka-sim/"  # routes of the sandbox itself, never of a modelled service


@dataclasses.dataclass
class Knobs:
    """Fault knobs common to every simulated server. All default to "behave normally".

    Counting knobs (``*_next_n``) are decremented by the request they hit. ``*_match`` restricts a
    fault to request paths containing that substring ("" = every path).
    """

    delay_s: float = 0.0
    """Sleep this long before answering every request."""
    fail_next_n: int = 0
    """Answer the next N matching requests with ``fail_status``."""
    fail_status: int = 503
    fail_match: str = ""
    rate_limit_next_n: int = 0
    """Answer the next N matching requests with 429 and ``Retry-After: retry_after_s``."""
    rate_limit_per_min: int = 0
    """Sliding one-minute limit per client IP (0 = off); requests over it get 429 + Retry-After."""
    retry_after_s: int = 2
    rate_limit_match: str = ""
    drop_connection_next_n: int = 0
    """Close the socket of the next N matching requests without sending any response."""
    drop_connection_match: str = ""


@dataclasses.dataclass(frozen=True)
class RequestRecord:
    """One request as the server saw it (for assertions in tests)."""

    t: float
    listener: str
    client: str
    method: str
    path: str
    query: str
    headers: dict[str, str]
    status: int | None
    """Status sent, or None when the connection was dropped without a response."""


@dataclasses.dataclass
class Request:
    """What a subclass's ``handle`` gets: the parsed request and the handler to answer through."""

    handler: SimHandler
    method: str
    path: str
    """Raw (still percent-encoded) path without the query string."""
    query: dict[str, list[str]]
    body: bytes
    listener: str

    @property
    def headers(self):
        return self.handler.headers

    @property
    def client(self) -> str:
        return self.handler.client_address[0]

    def arg(self, name: str, default: str | None = None) -> str | None:
        """First value of a query parameter."""
        vals = self.query.get(name)
        return vals[0] if vals else default

    def json(self) -> Any:
        """The body parsed as JSON; raises ValueError on bad JSON."""
        return json.loads(self.body.decode("utf-8") if self.body else "null")

    def host_name(self) -> str:
        """The host part of the Host header (what address the client used to reach us)."""
        host = self.handler.headers.get("Host") or self.handler.server.server_address[0]
        if host.startswith("["):  # IPv6 literal
            return host[: host.index("]") + 1]
        return host.rsplit(":", 1)[0] if ":" in host else host


class TokenBucket:
    """Byte-rate limiter; ``take(n)`` sleeps until ``n`` bytes fit under ``rate`` bytes/s.

    Shared between threads when used as a global limit. The burst is one tenth of a second of rate,
    so measured throughput matches the rate closely even for short transfers.
    """

    def __init__(self, rate: float):
        self.rate = float(rate)
        self.burst = max(1.0, self.rate / 10)
        self._level = 0.0  # start empty: no initial burst beyond one chunk
        self._last = time.monotonic()
        self._lock = threading.Lock()

    def take(self, n: int, stop: threading.Event | None = None) -> None:
        while True:
            with self._lock:
                now = time.monotonic()
                self._level = min(self.burst, self._level + (now - self._last) * self.rate)
                self._last = now
                # Allow a request larger than the burst once the bucket is full, going negative.
                if self._level >= min(n, self.burst):
                    self._level -= n
                    return
                wait = (min(n, self.burst) - self._level) / self.rate
            if stop is not None and stop.wait(min(wait, 0.2)):
                return
            if stop is None:
                time.sleep(min(wait, 0.2))


class _Listener(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(self, addr, handler_cls, sim: SimServer, name: str):
        self.sim = sim
        self.listener_name = name
        super().__init__(addr, handler_cls)


class SimHandler(BaseHTTPRequestHandler):
    """Request handler: counts, applies the fault knobs, then calls ``server.sim.handle``."""

    protocol_version = "HTTP/1.1"
    server_version = "gonka-sandbox"
    sys_version = ""
    server: _Listener

    # -- plumbing --------------------------------------------------------------------------------

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        """Silence the default stderr access log; the server keeps its own records."""

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _dispatch(self, method: str) -> None:
        sim = self.server.sim
        with sim.lock:
            sim._inflight += 1
        parts = urlsplit(self.path)
        self._status: int | None = None
        body = self._read_body()
        req = Request(
            handler=self,
            method=method,
            path=parts.path,
            query=parse_qs(parts.query, keep_blank_values=True),
            body=body,
            listener=self.server.listener_name,
        )
        # the sandbox's own plumbing (SIM_PREFIX routes, e.g. an api reporting its ML nodes to the seed)
        # is no part of the modelled API: no faults, no log entry a test would count
        plumbing = req.path.startswith(SIM_PREFIX)
        try:
            if plumbing or not sim._apply_faults(req):
                sim.handle(req)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception as exc:  # a bug in a simulation must show up as a 500, not a hang
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.send_json(500, {"message": f"simulation error: {type(exc).__name__}: {exc}"})
            sim.errors.append(exc)
        finally:
            if not plumbing:
                sim._record(req, self._status)
            with sim.lock:
                sim._inflight -= 1
                sim._idle.notify_all()

    def _read_body(self) -> bytes:
        """The request body, from Content-Length or chunked transfer encoding (Go clients use it)."""
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            parts = []
            while True:
                size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline().strip():  # trailers up to the blank line
                        pass
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline()  # CRLF after each chunk
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    # -- responses -------------------------------------------------------------------------------

    def send_response(self, code: int, message: str | None = None) -> None:
        self._status = code
        super().send_response(code, message)

    def send_body(
        self,
        status: int,
        body: bytes,
        content_type: str = "application/octet-stream",
        headers: dict[str, str] | Iterable[tuple[str, str]] | None = None,
    ) -> None:
        """Send a complete response (no body for HEAD, but the real Content-Length)."""
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for k, v in headers.items() if isinstance(headers, dict) else headers or ():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD" and body:
            self.wfile.write(body)

    def send_json(self, status: int, obj: Any, headers: dict[str, str] | None = None) -> None:
        self.send_body(status, json.dumps(obj).encode(), "application/json; charset=utf-8", headers)

    def send_text(self, status: int, text: str, headers: dict[str, str] | None = None) -> None:
        self.send_body(status, text.encode(), "text/plain; charset=utf-8", headers)

    def drop(self) -> None:
        """Close the connection abruptly (no response or the rest of one)."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.wfile.flush()
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)


class SimServer:
    """Base of the simulated servers: listeners in daemon threads, knobs, counters.

    Subclasses set ``knobs_class``, implement ``handle(req)`` and may override ``_reset_state``.
    Use as a context manager or call ``start()`` / ``close()``.
    """

    knobs_class: type[Knobs] = Knobs
    handler_class: type[SimHandler] = SimHandler

    def __init__(self, host: str = "0.0.0.0", port: int = 0, knobs: Knobs | None = None):
        self.host = host
        self._ports: dict[str, int] = {"main": port}
        self._initial_knobs = copy.deepcopy(knobs) if knobs is not None else self.knobs_class()
        self.knobs = copy.deepcopy(self._initial_knobs)
        self.lock = threading.RLock()
        self._idle = threading.Condition(self.lock)
        self._inflight = 0
        self.stopping = threading.Event()
        self._listeners: dict[str, _Listener] = {}
        self._threads: list[threading.Thread] = []
        self._rate_windows: dict[str, collections.deque] = collections.defaultdict(collections.deque)
        self.requests: collections.Counter[str] = collections.Counter()
        """Requests per path (raw path, no query), across listeners."""
        self.log: list[RequestRecord] = []
        self.errors: list[BaseException] = []
        """Exceptions raised inside ``handle`` (each also answered with a 500)."""
        self._reset_state()

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> SimServer:
        """Bind every listener and start serving in daemon threads. Returns self."""
        if self._listeners:
            return self
        self.stopping.clear()
        try:
            for name, port in self._ports.items():
                srv = _Listener((self.host, port), self.handler_class, self, name)
                self._listeners[name] = srv
                self._ports[name] = srv.server_address[1]
        except OSError:
            self.close()
            raise
        for name, srv in self._listeners.items():
            t = threading.Thread(
                target=srv.serve_forever,
                kwargs={"poll_interval": 0.1},
                name=f"{type(self).__name__}-{name}",
                daemon=True,
            )
            t.start()
            self._threads.append(t)
        return self

    def close(self) -> None:
        """Stop serving, close sockets, join the serving threads. Idempotent."""
        self.stopping.set()  # long transfers check this and abort
        for srv in self._listeners.values():
            srv.shutdown()
            srv.server_close()
        for t in self._threads:
            t.join(timeout=5)
        self._listeners.clear()
        self._threads.clear()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- addresses -------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        """Port of the main listener (known after ``start()`` when constructed with port 0)."""
        return self._ports["main"]

    def url_for(self, ip: str) -> str:
        """Base URL as seen by a client reaching this machine at ``ip`` (e.g. host.runner_ip)."""
        return f"http://{ip}:{self.port}"

    @property
    def url(self) -> str:
        """Base URL for clients on this machine (127.0.0.1)."""
        return self.url_for("127.0.0.1")

    # -- knobs and counters ----------------------------------------------------------------------

    def configure(self, **knobs: Any) -> SimServer:
        """Set knobs by name (unknown names raise AttributeError). Returns self."""
        fields = {f.name for f in dataclasses.fields(self.knobs)}
        with self.lock:
            for k, v in knobs.items():
                if k not in fields:
                    raise AttributeError(f"{type(self.knobs).__name__} has no knob {k!r}")
                setattr(self.knobs, k, v)
        return self

    def reset(self) -> None:
        """Restore the knobs given at construction and clear counters and simulated state."""
        with self.lock:
            self.knobs = copy.deepcopy(self._initial_knobs)
            self.requests.clear()
            self.log.clear()
            self.errors.clear()
            self._rate_windows.clear()
            self._reset_state()

    def wait_idle(self, timeout: float = 5.0) -> bool:
        """Wait until no request is being handled, so counters and logs are final.

        A client can have read a whole response before the server thread has recorded it; call
        this before asserting on counters. Returns False on timeout.
        """
        with self._idle:
            return self._idle.wait_for(lambda: self._inflight == 0, timeout)

    def count(self, path_prefix: str = "", method: str | None = None) -> int:
        """How many requests had a path starting with ``path_prefix`` (and ``method``, if given)."""
        with self.lock:
            return sum(
                1
                for r in self.log
                if r.path.startswith(path_prefix) and (method is None or r.method == method)
            )

    def _reset_state(self) -> None:
        """Subclass hook: clear simulated state (called under the lock by reset())."""

    def _record(self, req: Request, status: int | None) -> None:
        rec = RequestRecord(
            t=time.time(),
            listener=req.listener,
            client=req.client,
            method=req.method,
            path=req.path,
            query=urlsplit(req.handler.path).query,
            headers=dict(req.headers.items()),
            status=status,
        )
        with self.lock:
            self.requests[req.path] += 1
            self.log.append(rec)

    # -- faults ----------------------------------------------------------------------------------

    def _take(self, counter: str, match: str, path: str) -> bool:
        """Decrement knob ``counter`` if it is positive and ``match`` is in path; True if it fired."""
        with self.lock:
            n = getattr(self.knobs, counter)
            if n > 0 and match in path:
                setattr(self.knobs, counter, n - 1)
                return True
        return False

    def _rate_limited(self, req: Request) -> float | None:
        """Seconds to wait when the client is over ``rate_limit_per_min``, else None."""
        k = self.knobs
        if self._take("rate_limit_next_n", k.rate_limit_match, req.path):
            return float(k.retry_after_s)
        limit = k.rate_limit_per_min
        if limit <= 0 or k.rate_limit_match not in req.path:
            return None
        now = time.monotonic()
        with self.lock:
            window = self._rate_windows[req.client]
            while window and now - window[0] >= 60:
                window.popleft()
            if len(window) >= limit:
                return max(1.0, 60 - (now - window[0]))
            window.append(now)
        return None

    def _apply_faults(self, req: Request) -> bool:
        """Apply the common fault knobs; True when the request was answered (or dropped) here."""
        k = self.knobs
        if k.delay_s > 0:
            self.stopping.wait(k.delay_s)
        h = req.handler
        if self._take("drop_connection_next_n", k.drop_connection_match, req.path):
            h.drop()
            return True
        wait = self._rate_limited(req)
        if wait is not None:
            h.send_json(
                429,
                {"message": "Too Many Requests"},
                headers={"Retry-After": str(math.ceil(wait))},
            )
            return True
        if self._take("fail_next_n", k.fail_match, req.path):
            h.send_json(k.fail_status, {"message": f"simulated failure ({k.fail_status})"})
            return True
        return False

    def handle(self, req: Request) -> None:
        """Answer one request. Subclasses override."""
        req.handler.send_json(404, {"message": "Not Found"})


def route(table: list[tuple[str, str, Callable]], req: Request) -> tuple[Callable, tuple[str, ...]] | None:
    """Match ``req`` against ``(method, regex, fn)`` rows; return fn and the regex groups."""
    for method, pattern, fn in table:
        if method != req.method and not (method == "GET" and req.method == "HEAD"):
            continue
        m = re.fullmatch(pattern, req.path)
        if m:
            return fn, m.groups()
    return None
