"""The versiond container: the devshard process manager of gonka v0.2.12+ (upstream `versioned/`).

What upstream's versiond does (v0.2.13, `versioned/cmd/versiond/main.go`, `internal/config`,
`internal/process/manager.go`, `internal/proxy/proxy.go`, `internal/health/health.go`):

* needs VERSIOND_ORACLE_URL (else `fatal error="VERSIOND_ORACLE_URL is required"`, exit 1);
* listens on :8080 (hard-coded): `GET /healthz` is a JSON list `[{name, port, status}]` of its
  children; `/<version>/...` is proxied to that version's child, no prefix is a 400, an unknown
  version a 404;
* asks the oracle (the api's :9100/versions: the chain-approved devshard versions) at start and
  every VERSIOND_POLL_INTERVAL (30 s), and runs one `devshardd` child per approved version, on
  ports from 5000 up, restarted with a back-off (1 s doubling to 60 s) when it exits.

versiond itself never opens the keyring: its children do. Each devshardd inherits the container's
environment and opens the file keyring at KEYRING_DIR with KEYRING_PASSWORD to sign as KEY_NAME
(`decentralized-api/cmd/devshardd/main.go`); a password that does not open it ends the child with
`log.Fatalf` (exit 1), which versiond logs as `child exited` before restarting it. So a wrong
KEYRING_PASSWORD shows only once a version is approved: in the log and as status "stopped" in
/healthz, while the versiond container itself keeps running. The simulation does the same; the
approved list comes from the simulated api (knob `devshard_versions`, empty by default as long as
no devshard version is approved).
"""

from __future__ import annotations

import io
import json
import threading
import time
import urllib.parse

from .behaviour import Behaviour, get_json
from .keyring import Keyring, KeyringError, LineReader
from .responses import Fatal, Response, json_response, text_response

BASE_PORT = 5000
MAX_BACKOFF = 60.0


def golog(level: str, msg: str, **kv) -> str:
    """A line of Go's default slog handler (versiond never sets its own): `2026/05/26 12:00:00 INFO msg k=v`."""
    parts = " ".join(f"{k}={json.dumps(str(v)) if (' ' in str(v) or not str(v)) else v}" for k, v in kv.items())
    return f"{time.strftime('%Y/%m/%d %H:%M:%S')} {level} {msg} {parts}".rstrip()


def _duration(text: str, default: float) -> float:
    """A Go duration like 30s / 1m / 500ms (anything else: the default, as upstream's parseDuration)."""
    for unit, factor in (("ms", 0.001), ("s", 1.0), ("m", 60.0), ("h", 3600.0)):
        if text.endswith(unit):
            try:
                value = float(text[: -len(unit)]) * factor
            except ValueError:
                return default
            return value if value > 0 else default
    return default


class Versiond(Behaviour):
    """versiond: oracle polling, one simulated devshardd per approved version, /healthz on :8080."""

    def setup(self):
        self.oracle = self.env.get("VERSIOND_ORACLE_URL", "")
        if not self.oracle:
            raise Fatal(golog("ERROR", "fatal", error="VERSIOND_ORACLE_URL is required"))
        self.poll = _duration(self.env.get("VERSIOND_POLL_INTERVAL", ""), 30.0)
        self.binary = self.env.get("VERSIOND_BINARY_NAME") or "devshard"
        self.children: dict[str, dict] = {}  # version -> {"port", "status", "next_try", "backoff"}
        self.ports: dict[str, int] = {}
        self.lock = threading.Lock()
        self.rt.log(golog("INFO", "starting proxy server", addr=":8080"))

    def listener(self, cport):
        return ("http", self.http, "") if cport == 8080 else None

    # -- HTTP ------------------------------------------------------------------------------

    def http(self, method, path, headers, body) -> Response:
        p = urllib.parse.urlsplit(path).path
        if p == "/healthz":
            with self.lock:
                return json_response([{"name": n, "port": c["port"], "status": c["status"]}
                                      for n, c in self.children.items()])
        version = p.lstrip("/").split("/", 1)[0]
        if not version:
            return text_response("version prefix required\n", 400)
        with self.lock:
            child = self.children.get(version)
        if not child or child["status"] != "running":
            return text_response(f"version {json.dumps(version)} not found\n", 404)
        return text_response("devshardd (simulated)\n")

    # -- the oracle and the children -------------------------------------------------------------

    def start(self):
        self.thread(self.loop)

    def fetch(self) -> list[dict] | None:
        try:
            status, data = get_json(self.oracle, timeout=10.0)
        except OSError as e:
            self.rt.log(golog("ERROR", "oracle fetch failed, keeping current versions",
                              error=f"fetch versions: Get {json.dumps(self.oracle)}: {e}"))
            return None
        if status != 200 or not isinstance(data, dict):
            self.rt.log(golog("ERROR", "oracle fetch failed, keeping current versions",
                              error=f"oracle returned status {status}"))
            return None
        return [v for v in data.get("versions") or [] if isinstance(v, dict) and v.get("name")]

    def loop(self):
        next_poll = 0.0
        while True:
            now = time.time()
            if now >= next_poll:
                versions = self.fetch()
                if versions is not None:
                    self.reconcile(versions)
                next_poll = now + self.poll
            self.tend()
            if self.rt.sleep(0.5):
                return

    def reconcile(self, versions: list[dict]) -> None:
        wanted = {v["name"] for v in versions}
        with self.lock:
            if not wanted and self.children:
                self.rt.log(golog("WARN", "oracle returned empty version list, keeping current versions"))
                return
            for name in [n for n in self.children if n not in wanted]:
                self.rt.log(golog("INFO", "stopping removed version", version=name))
                del self.children[name]
            for v in versions:
                if v["name"] in self.children:
                    continue
                if not v.get("sha256") and "checksum=sha256:" not in str(v.get("binary", "")):
                    self.rt.log(golog("ERROR", "cannot resolve sha256, skipping", version=v["name"],
                                      error=f"no checksum for version {v['name']}: sha256 field empty and "
                                            "no ?checksum=sha256: in URL"))
                    continue
                port = self.ports.setdefault(v["name"], BASE_PORT + len(self.ports))
                self.children[v["name"]] = {"port": port, "status": "starting", "next_try": 0.0, "backoff": 1.0}

    def tend(self) -> None:
        """Start children that are due; a child whose keyring does not open exits at once."""
        now = time.time()
        with self.lock:
            due = [(n, c) for n, c in self.children.items() if c["status"] != "running" and c["next_try"] <= now]
        for name, child in due:
            self.rt.log(golog("INFO", "starting child", version=name, port=child["port"]))
            error = self.devshardd_signer(name)
            with self.lock:
                if error is None:
                    child["status"], child["backoff"] = "running", 1.0
                    continue
                child["status"] = "stopped"
                self.rt.log(golog("ERROR", "child exited", version=name, error="exit status 1"))
                self.rt.log(golog("INFO", "restarting child after backoff", version=name,
                                  backoff=f"{child['backoff']:g}s"))
                child["next_try"] = now + child["backoff"]
                child["backoff"] = min(child["backoff"] * 2, MAX_BACKOFF)

    def devshardd_signer(self, version: str) -> str | None:
        """What a devshardd child does first: open the keyring and load KEY_NAME (None when it can)."""
        env = self.env
        backend = env.get("KEYRING_BACKEND") or "file"
        kdir = env.get("KEYRING_DIR") or "/root/.inference"
        key = env.get("KEY_NAME", "")
        password = env.get("KEYRING_PASSWORD", "")
        # devshardd hands the password to the SDK keyring as its input: one line, then end of input
        reader = LineReader(io.BytesIO((password + "\n").encode()))
        try:
            Keyring(self.rt.path(kdir), backend, reader).get(key)
        except (KeyringError, ValueError) as e:
            # devshardd's log.Fatalf line (its stderr is versiond's)
            self.rt.log(f"{time.strftime('%Y/%m/%d %H:%M:%S')} api account: {e}")
            return str(e)
        self.rt.log(golog("INFO", "devshardd starting", selected_version=version, port=self.ports[version]))
        return None
