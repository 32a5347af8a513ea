"""What each simulated container program does: files it creates, endpoints it answers, log lines.

tmkms      creates .tmkms/ (consensus key) once, then connects to node:26658 and hands over its key
node       first start: .inference/config/{config,app,client}.toml, node_key.json, genesis, data/;
           every start: re-applies p2p.external_address, rpc.laddr, priv_validator_laddr, statesync
           and CONFIG_<section>__<key> env vars (never persistent_peers or pruning); RPC :26657
api        node-config.json read once into .dapi/gonka.db; admin :9200, ML callback :9100, public :9000
proxy      nginx in front of api (/v1), explorer (/) and its own /health
mlnode     uvicorn-style ML node: /health, /api/v1/state, /api/v1/gpu/devices, /v1/models
inference  nginx per the mounted nginx.conf, forwarding to the ML node
explorer, prometheus, node-exporter, grafana: small pages; anything else idles
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import io
import json
import os
import secrets
import socket
import socketserver
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

import tomllib

from . import chainfiles, chainkeys, gpu, simenv, tomledit
from .keyring import Keyring, KeyringError, LineReader
from .runtime import Fatal, Response, json_response, text_response

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
    req = urllib.request.Request(simenv.sim_url(url))
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


# ----------------------------------------------------------------------------- tmkms

def consensus_pub(secret_b64: str) -> str:
    """Public key of a softsign secret (a stand-in derivation; nobody checks ed25519 math here)."""
    return base64.b64encode(hashlib.sha512(base64.b64decode(secret_b64)).digest()[:32]).decode()


class Tmkms(Behaviour):
    TOML = """# tmkms configuration (softsign provider), written by the image's entrypoint on first start

## Chain Configuration
[[chain]]
id = "{chain}"
key_format = {{ type = "bech32", account_key_prefix = "gonkapub", consensus_key_prefix = "gonkavalconspub" }}
state_file = "/root/.tmkms/state/priv_validator_state.json"

## Signing Provider Configuration
[[providers.softsign]]
chain_ids = ["{chain}"]
key_type = "consensus"
path = "/root/.tmkms/secrets/priv_validator_key.softsign"

## Validator Configuration
[[validator]]
chain_id = "{chain}"
addr = "{addr}"
secret_key = "/root/.tmkms/secrets/kms-identity.key"
protocol_version = "v0.34"
reconnect = true
"""

    def setup(self):
        home = self.rt.path("/root/.tmkms")
        cfg = home / "tmkms.toml"
        key = home / "secrets" / "priv_validator_key.softsign"
        self.addr = self.env.get("VALIDATOR_LISTEN_ADDRESS", "tcp://node:26658")
        log = self.rt.log
        if not cfg.exists():
            if key.exists():
                log(rlog("INFO", "tmkms::commands::init", "keeping the existing consensus key"))
            (home / "secrets").mkdir(parents=True, exist_ok=True)
            (home / "state").mkdir(parents=True, exist_ok=True)
            cfg.write_text(self.TOML.format(chain="gonka-mainnet", addr=self.addr))
            if not key.exists():
                _write_secret(key, base64.b64encode(secrets.token_bytes(32)).decode())
                _write_secret(home / "secrets" / "kms-identity.key", base64.b64encode(secrets.token_bytes(32)).decode())
                log(rlog("INFO", "tmkms::commands::softsign::keygen", f"Wrote random Ed25519 consensus key to: {key}"))
            (home / "state" / "priv_validator_state.json").write_text(chainfiles.priv_validator_state())
        if not key.is_file():
            raise Fatal(rlog("ERROR", "tmkms::application",
                             "couldn't load signing key from /root/.tmkms/secrets/priv_validator_key.softsign: "
                             "No such file or directory (os error 2)"))
        self.pub = consensus_pub(key.read_text().strip())
        log(rlog("INFO", "tmkms::commands::start", "tmkms 0.14.0 starting up..."))
        log(rlog("INFO", "tmkms::keyring", "[keyring:softsign] added consensus Ed25519 key: "
                 + chainkeys.bech32("gonkavalconspub", base64.b64decode(self.pub))))

    def start(self):
        self.thread(self.loop)

    def loop(self):
        parts = urllib.parse.urlsplit(self.addr)
        host, port = simenv.sim_addr(parts.hostname or "node", parts.port or 26658)
        failures = 0
        while not self.rt.stop_event.is_set():
            try:
                sock = socket.create_connection((host, port), timeout=2)
            except OSError as e:
                if failures % 10 == 0:
                    reason = f"{e.strerror} (os error {e.errno})" if e.errno else str(e)
                    self.rt.log(rlog("ERROR", "tmkms::client", f"[gonka-mainnet@{self.addr}] I/O error: {reason}"))
                failures += 1
                self.rt.sleep(1)
                continue
            failures = 0
            with sock:
                sock.sendall(json.dumps({"pub_key": {"type": "tendermint/PubKeyEd25519", "value": self.pub}}).encode()
                             + b"\n")
                self.rt.log(rlog("INFO", "tmkms::session", f"[gonka-mainnet@{self.addr}] connected to validator "
                                 "successfully"))
                sock.settimeout(1)
                while not self.rt.stop_event.is_set():
                    try:
                        if not sock.recv(4096):
                            break
                    except TimeoutError:
                        continue
                    except OSError:
                        break
            if not self.rt.stop_event.is_set():
                self.rt.log(rlog("ERROR", "tmkms::client", f"[gonka-mainnet@{self.addr}] connection closed; "
                                 "reconnecting"))
                self.rt.sleep(1)


def _write_secret(path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text + "\n")


# ----------------------------------------------------------------------------- node

NETWORK_BASE_HEIGHT = 1_850_000


class Node(Behaviour):
    def setup(self):
        rt, env = self.rt, self.env
        self.home = rt.path("/root/.inference")
        cfgdir = self.home / "config"
        genesis = rt.path("/root/genesis.json")
        if genesis.is_dir():
            raise Fatal("Error: couldn't read GenesisDoc file: read /root/genesis.json: is a directory")
        if not genesis.is_file():
            raise Fatal("Error: couldn't read GenesisDoc file: open /root/genesis.json: no such file or directory")
        try:
            self.chain_id = json.loads(genesis.read_text()).get("chain_id") or "gonka-mainnet"
        except ValueError as e:
            raise Fatal(f"Error: error reading GenesisDoc at /root/genesis.json: {e}") from None
        if not (cfgdir / "config.toml").exists():
            self.init_home(cfgdir, genesis.read_text())
        self.apply_start_settings(cfgdir)
        cfg = self.load_toml(cfgdir / "config.toml")
        app = self.load_toml(cfgdir / "app.toml")
        self.check_pruning(app)
        self.moniker = cfg.get("moniker", "")
        self.p2p = cfg.get("p2p", {})
        self.metrics = bool(cfg.get("instrumentation", {}).get("prometheus"))
        try:
            self.node_id = chainfiles.node_id(json.loads((cfgdir / "node_key.json").read_text()))
        except (OSError, ValueError, KeyError):
            raise Fatal("Error: failed to load node key: open /root/.inference/config/node_key.json: "
                        "no such file or directory") from None
        chain = self.home / "data" / "sim-chain.json"
        self.first_start = (simenv.read_json(chain) or {}).get("first_start")
        if not self.first_start:
            self.first_start = time.time()
            simenv.write_json(chain, {"first_start": self.first_start})
        self.validator: str | None = None
        self.signer_lock = threading.Lock()
        log = rt.log
        log(zlog("INF", "starting node with ABCI CometBFT in-process", module="server"))
        log(zlog("INF", "loaded p2p config", external_address=self.p2p.get("external_address", ""),
                 persistent_peers=self.p2p.get("persistent_peers", ""), seeds=self.p2p.get("seeds", ""),
                 module="p2p"))
        log(zlog("INF", "pruning options", strategy=app.get("pruning", "default"),
                 **{"keep-recent": app.get("pruning-keep-recent", "0"), "interval": app.get("pruning-interval", "0")},
                 module="server"))
        log(zlog("INF", "Version info", tendermint_version=chainfiles.COMETBFT_VERSION, abci="2.0.0",
                 block=11, p2p=8, commit_hash="", module="server"))
        log(zlog("INF", "Starting RPC HTTP server on [::]:26657", module="rpc-server"))
        log(zlog("INF", "Waiting for remote signer connection", addr=f"tcp://0.0.0.0:{env.get('TMKMS_PORT', '26658')}",
                 module="privval"))

    def init_home(self, cfgdir, genesis_text: str) -> None:
        moniker = self.env.get("KEY_NAME") or self.env.get("HOSTNAME") or "node"
        self.rt.log(zlog("INF", "initializing node home", home="/root/.inference", moniker=moniker))
        cfgdir.mkdir(parents=True, exist_ok=True)
        (self.home / "data" / "application.db").mkdir(parents=True, exist_ok=True)
        (self.home / "data" / "blockstore.db").mkdir(parents=True, exist_ok=True)
        (cfgdir / "config.toml").write_text(chainfiles.config_toml(moniker))
        if not (cfgdir / "app.toml").exists():
            (cfgdir / "app.toml").write_text(chainfiles.app_toml())
        if not (cfgdir / "client.toml").exists():
            (cfgdir / "client.toml").write_text(chainfiles.client_toml(self.chain_id))
        if not (cfgdir / "node_key.json").exists():
            doc, _ = chainfiles.node_key()
            fd = os.open(cfgdir / "node_key.json", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                json.dump(doc, f)
        (cfgdir / "genesis.json").write_text(genesis_text)
        pvs = self.home / "data" / "priv_validator_state.json"
        if not pvs.exists():
            pvs.write_text(chainfiles.priv_validator_state())

    def apply_start_settings(self, cfgdir) -> None:
        """What the image's start script sets on every start (and nothing else)."""
        env = self.env
        path = cfgdir / "config.toml"
        text = old = path.read_text()
        settings = [("p2p", "external_address", env.get("P2P_EXTERNAL_ADDRESS", "")),
                    ("rpc", "laddr", "tcp://0.0.0.0:26657"),
                    ("", "priv_validator_laddr", f"tcp://0.0.0.0:{env.get('TMKMS_PORT') or 26658}")]
        if env.get("SYNC_WITH_SNAPSHOTS", "").lower() == "true":
            servers = ",".join(u for u in (env.get("RPC_SERVER_URL_1"), env.get("RPC_SERVER_URL_2")) if u)
            settings += [("statesync", "enable", "true"), ("statesync", "rpc_servers", servers),
                         ("statesync", "trust_period", env.get("TRUSTED_BLOCK_PERIOD_DURATION", "168h0m0s"))]
        for key, val in sorted(env.items()):
            if key.startswith("CONFIG_") and "__" in key:
                section, name = key[len("CONFIG_"):].split("__", 1)
                settings.append((section, name, val))
        for section, key, val in settings:
            text = tomledit.set_from_env(text, section, key, val)
        if text != old:
            path.write_text(text)
        app_path = cfgdir / "app.toml"
        app = old_app = app_path.read_text()
        if env.get("SNAPSHOT_INTERVAL"):
            app = tomledit.set_from_env(app, "state-sync", "snapshot-interval", env["SNAPSHOT_INTERVAL"])
        if env.get("SNAPSHOT_KEEP_RECENT"):
            app = tomledit.set_from_env(app, "state-sync", "snapshot-keep-recent", env["SNAPSHOT_KEEP_RECENT"])
        if app != old_app:
            app_path.write_text(app)

    @staticmethod
    def load_toml(path) -> dict:
        try:
            return tomllib.loads(path.read_text())
        except (OSError, tomllib.TOMLDecodeError) as e:
            raise Fatal(f"Error: failed to read in {path.name}: While parsing config: toml: {e}") from None

    @staticmethod
    def check_pruning(app: dict) -> None:
        strategy = str(app.get("pruning", "default"))
        if strategy not in ("default", "nothing", "everything", "custom"):
            raise Fatal(f"Error: unknown pruning strategy {strategy}")
        if strategy != "custom":
            return
        try:
            keep = int(str(app.get("pruning-keep-recent", "0")))
            interval = int(str(app.get("pruning-interval", "0")))
        except ValueError as e:
            raise Fatal(f"Error: invalid pruning options: {e}") from None
        if interval < 10:
            raise Fatal("Error: 'pruning-interval' must not be less than 10. For the most aggressive pruning, "
                        'select pruning = "everything"')
        if keep < 2:
            raise Fatal("Error: 'pruning-keep-recent' must not be less than 2. For the most aggressive pruning, "
                        'select pruning = "everything"')

    # -- chain view --------------------------------------------------------------------------------

    def chain(self) -> dict:
        now = time.time()
        bt = max(float(self.rt.knob("block_time_s", 1.0)), 0.001)
        elapsed = now - self.first_start
        network = NETWORK_BASE_HEIGHT + int(elapsed / bt)
        catching = bool(self.rt.knob("catching_up")) or elapsed < float(self.rt.knob("sync_s", 0))
        if catching:
            height = max(1, min(network - 1000, 1 + int(elapsed * 50)))
            block_time = now - 86400 * 30 + elapsed * 50 * 6
        else:
            height = network
            block_time = now - (elapsed % bt)
        return {"height": height, "time": block_time, "catching_up": catching}

    def status(self) -> dict:
        c = self.chain()
        h = c["height"]
        val = self.validator
        return {
            "node_info": {
                "protocol_version": {"p2p": "8", "block": "11", "app": "0"},
                "id": self.node_id, "listen_addr": "tcp://0.0.0.0:26656", "network": self.chain_id,
                "version": chainfiles.COMETBFT_VERSION, "channels": "40202122233038606100", "moniker": self.moniker,
                "other": {"tx_index": "on", "rpc_address": "tcp://0.0.0.0:26657"},
            },
            "sync_info": {
                "latest_block_hash": _hash(f"{self.chain_id}:block:{h}"),
                "latest_app_hash": _hash(f"{self.chain_id}:app:{h}"),
                "latest_block_height": str(h),
                "latest_block_time": simenv.rfc3339(c["time"]),
                "earliest_block_hash": _hash(f"{self.chain_id}:block:1"),
                "earliest_app_hash": _hash(f"{self.chain_id}:app:1"),
                "earliest_block_height": "1",
                "earliest_block_time": "2025-08-27T12:00:00.000000000Z",
                "catching_up": c["catching_up"],
            },
            "validator_info": {
                "address": chainfiles.validator_address(val) if val else "",
                "pub_key": {"type": "tendermint/PubKeyEd25519", "value": val} if val else None,
                "voting_power": "0",
            },
        }

    def rpc(self, method, path, headers, body) -> Response:
        url = urllib.parse.urlsplit(path)
        name = url.path.strip("/")
        rid = -1
        if method == "POST":
            try:
                req = json.loads(body or b"{}")
                name, rid = req.get("method", ""), req.get("id", -1)
            except ValueError:
                return json_response({"jsonrpc": "2.0", "id": -1,
                                      "error": {"code": -32700, "message": "Parse error. Invalid JSON"}}, 500)
        results = {
            "status": self.status,
            "health": dict,
            "net_info": self.net_info,
            "abci_info": lambda: {"response": {"data": "inference", "version": simenv.version_of(
                self.rt.state.get("image", "")), "last_block_height": str(self.chain()["height"])}},
            "validators": lambda: {"block_height": str(self.chain()["height"]), "validators": [], "count": "0",
                                   "total": "0"},
        }
        if name == "" and method == "GET":
            links = "".join(f'<a href="//{headers.get("Host", "")}/{n}">//{headers.get("Host", "")}/{n}</a></br>'
                            for n in results)
            return Response(200, f"<html><body><br>Available endpoints:<br>{links}</body></html>", "text/html")
        fn = results.get(name)
        if fn is None:
            return json_response({"jsonrpc": "2.0", "id": rid, "error": {"code": -32601, "message": "Method not found"}},
                                 404 if method == "GET" else 200)
        return Response(200, json.dumps({"jsonrpc": "2.0", "id": rid, "result": fn()}, indent=2) + "\n")

    def net_info(self) -> dict:
        peers = [p for p in str(self.p2p.get("persistent_peers", "")).split(",") if p.strip()]
        return {"listening": True, "listeners": ["Listener(@)"], "n_peers": str(len(peers)),
                "peers": [{"node_info": {"id": p.split("@")[0], "moniker": ""},
                           "remote_ip": p.split("@")[-1].split(":")[0]} for p in peers]}

    def metrics_page(self, method, path, headers, body) -> Response:
        c = self.chain()
        text = (f'# HELP cometbft_consensus_height Height of the chain.\n# TYPE cometbft_consensus_height gauge\n'
                f'cometbft_consensus_height{{chain_id="{self.chain_id}"}} {c["height"]}\n'
                f'cometbft_consensus_latest_block_height{{chain_id="{self.chain_id}"}} {c["height"]}\n')
        return text_response(text, ctype="text/plain; version=0.0.4")

    def privval_handler(self):
        node = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self):
                for line in self.rfile:
                    try:
                        msg = json.loads(line)
                    except ValueError:
                        continue
                    pk = (msg.get("pub_key") or {}).get("value")
                    if pk:
                        first = node.validator is None
                        node.validator = pk
                        node.rt.log(zlog("INF", "remote signer connected", pubkey=pk, module="privval"))
                        if first:
                            node.rt.log(zlog("INF", "This node is not a validator", addr=chainfiles.validator_address(pk),
                                             pubKey=pk, module="consensus"))
                    self.wfile.write(b'{"ok":true}\n')
                node.rt.log(zlog("ERR", "remote signer connection lost; waiting for it to reconnect", module="privval"))

        return Handler

    def listener(self, cport):
        if cport == 26657:
            return ("http", self.rpc, "")
        if cport == int(self.env.get("TMKMS_PORT") or 26658):
            return ("tcp", self.privval_handler())
        if cport == 26660 and self.metrics:
            return ("http", self.metrics_page, "")
        return None

    def start(self):
        self.thread(self.block_log)

    def block_log(self):
        while not self.rt.sleep(5):
            c = self.chain()
            if c["catching_up"]:
                self.rt.log(zlog("INF", "received complete proposal block", height=c["height"], module="consensus"))
            else:
                self.rt.log(zlog("INF", "committed state", height=c["height"], num_txs=0,
                                 app_hash=_hash(f"{self.chain_id}:app:{c['height']}"), module="state"))


def _hash(s: str) -> str:
    return hashlib.sha256(s.encode()).hexdigest().upper()


# ----------------------------------------------------------------------------- api

class Api(Behaviour):
    def setup(self):
        rt, env = self.rt, self.env
        self.home = rt.path("/root/.inference")
        dapi = rt.path("/root/.dapi")
        dapi.mkdir(parents=True, exist_ok=True)
        self.db_path = dapi / "gonka.db"
        self.lock = threading.Lock()
        self.report_cache: tuple[float, dict] | None = None
        log = rt.log
        version = simenv.version_of(rt.state.get("image", ""))
        log(slog("INFO", "Starting decentralized-api", version=version))
        shown = {k: v for k, v in sorted(env.items()) if k.startswith(("DAPI_", "KEY", "ACCOUNT", "NODE_CONFIG"))}
        if not rt.knob("api_log_password", True):
            shown.pop("KEYRING_PASSWORD", None)
        log(slog("INFO", "Loaded environment", **shown))
        if not self.db_path.exists():
            cpath = env.get("NODE_CONFIG_PATH", "/root/node_config.json")
            src = rt.path(cpath)
            if src.is_dir():
                raise Fatal(slog("ERROR", "failed to load node config", path=cpath,
                                 error=f"read {cpath}: is a directory"))
            try:
                nodes = json.loads(src.read_text())
            except OSError:
                raise Fatal(slog("ERROR", "failed to load node config", path=cpath,
                                 error=f"open {cpath}: no such file or directory")) from None
            except ValueError as e:
                raise Fatal(slog("ERROR", "failed to parse node config", path=cpath, error=str(e))) from None
            if not isinstance(nodes, list):
                raise Fatal(slog("ERROR", "failed to parse node config", path=cpath,
                                 error="json: cannot unmarshal object into Go value of type []apiconfig.InferenceNodeConfig"))
            self.nodes = [self.normal(n) for n in nodes]
            self.save()
            log(slog("INFO", "Imported ML nodes from node config into the database", count=len(self.nodes),
                     path=cpath))
        else:
            self.nodes = (simenv.read_json(self.db_path) or {}).get("nodes", [])
            log(slog("INFO", "Loaded ML nodes from database (node config file not re-read)", count=len(self.nodes)))
        key = env.get("KEY_NAME", "")
        if (self.home / "keyring-file" / f"{key}.info").exists():
            log(slog("INFO", "Signer key found in keyring", key_name=key, backend="file"))
        else:
            log(slog("ERROR", "Signer key not found in keyring", key_name=key, backend="file"))
        log(slog("INFO", "Admin server listening", addr=":9200"))
        log(slog("INFO", "ML server listening", addr=":9100"))
        log(slog("INFO", "Public server listening", addr=":9000"))

    @staticmethod
    def normal(n: dict) -> dict:
        out = {"id": "", "host": "", "inference_segment": "", "inference_port": 5000, "poc_segment": "",
               "poc_port": 8080, "models": {}, "max_concurrent": 500, "hardware": []}
        out.update(n if isinstance(n, dict) else {})
        return out

    def save(self) -> None:
        simenv.write_json(self.db_path, {"nodes": self.nodes, "schema": 1, "updated_at": simenv.rfc3339()})

    def listener(self, cport):
        return {9000: ("http", self.public, ""), 9100: ("http", self.ml, ""), 9200: ("http", self.admin, "")}.get(cport)

    # -- chain and ml-node probes ----------------------------------------------------------------

    def node_status(self) -> dict | None:
        url = (self.env.get("DAPI_CHAIN_NODE__URL") or "http://node:26657").rstrip("/") + "/status"
        try:
            _s, data = get_json(url)
            return data["result"]
        except (OSError, TypeError, KeyError):
            return None

    def ml_health(self, n: dict) -> tuple[bool, str, dict | None]:
        base = f"http://{n.get('host')}:{n.get('poc_port')}"
        try:
            status, data = get_json(base + "/health", timeout=2)
        except OSError as e:
            return False, f'Get "{base}/health": dial tcp: {getattr(e, "reason", e)}', None
        if status != 200:
            return False, f"HTTP {status}", None
        try:
            _s, devs = get_json(base + "/api/v1/gpu/devices", timeout=2)
        except OSError:
            devs = None
        return True, "", devs if isinstance(devs, dict) else None

    def cold(self) -> tuple[str, bytes] | None:
        try:
            raw = base64.b64decode(self.env.get("ACCOUNT_PUBKEY", ""), validate=True)
        except ValueError:
            return None
        if len(raw) != 33:
            return None
        return chainkeys.address(raw), raw

    # -- endpoints ---------------------------------------------------------------------------------

    def admin(self, method, path, headers, body) -> Response:
        p = urllib.parse.urlsplit(path).path.rstrip("/")
        if p == "/admin/v1/nodes" and method == "GET":
            return json_response([{"node": n, "state": self.node_state(n)} for n in self.nodes])
        if p == "/admin/v1/nodes" and method == "POST":
            try:
                n = self.normal(json.loads(body))
            except ValueError:
                return json_response({"message": "invalid node"}, 400)
            with self.lock:
                self.nodes = [x for x in self.nodes if x.get("id") != n["id"]] + [n]
                self.save()
            return json_response(n)
        if p.startswith("/admin/v1/nodes/") and method in ("PUT", "DELETE", "GET"):
            nid = urllib.parse.unquote(p.rsplit("/", 1)[1])
            with self.lock:
                idx = next((i for i, x in enumerate(self.nodes) if x.get("id") == nid), None)
                if idx is None:
                    return json_response({"message": f"node {nid} not found"}, 404)
                if method == "GET":
                    return json_response({"node": self.nodes[idx], "state": self.node_state(self.nodes[idx])})
                if method == "DELETE":
                    gone = self.nodes.pop(idx)
                    self.save()
                    return json_response(gone)
                try:
                    n = self.normal({**json.loads(body), "id": nid})
                except ValueError:
                    return json_response({"message": "invalid node"}, 400)
                self.nodes[idx] = n
                self.save()
                return json_response(n)
        if p == "/admin/v1/setup/report" and method == "GET":
            return json_response(self.report())
        return json_response({"message": "Not Found"}, 404)

    def node_state(self, n: dict) -> dict:
        ok, err, _ = self.ml_health(n)
        return {"intended_status": "INFERENCE", "current_status": "INFERENCE" if ok else "FAILED",
                "poc_intended_status": "IDLE", "poc_current_status": "IDLE", "lock_count": 0,
                "failure_reason": "" if ok else err, "status_timestamp": simenv.rfc3339(),
                "epoch_models": {}, "epoch_ml_nodes": {}}

    def public(self, method, path, headers, body) -> Response:
        p = urllib.parse.urlsplit(path).path.rstrip("/")
        if p == "/v1/status":
            st = self.node_status() or {}
            sync = st.get("sync_info", {})
            cold = self.cold()
            return json_response({"status": "ok", "version": simenv.version_of(self.rt.state.get("image", "")),
                                  "key_name": self.env.get("KEY_NAME", ""),
                                  "account_address": cold[0] if cold else "",
                                  "public_url": self.env.get("DAPI_API__PUBLIC_URL", ""),
                                  "block_height": int(sync.get("latest_block_height", 0) or 0),
                                  "catching_up": sync.get("catching_up"), "ml_nodes": len(self.nodes)})
        if p in ("/v1/health", "/health"):
            return json_response({"status": "ok"})
        return json_response({"message": "Not Found"}, 404)

    def ml(self, method, path, headers, body) -> Response:
        if urllib.parse.urlsplit(path).path.rstrip("/") == "/versions":
            return json_response({"versions": []})
        return json_response({})

    def report(self) -> dict:
        ttl = float(self.rt.knob("report_cache_s", 15))
        now = time.time()
        if self.report_cache and now < self.report_cache[0]:
            return self.report_cache[1]
        report = self.build_report(now)
        report["cached_until"] = simenv.rfc3339(now + ttl)
        self.report_cache = (now + ttl, report)
        return report

    def build_report(self, now: float) -> dict:
        checks: list[dict] = []
        all_pass = bool(self.rt.knob("report_all_pass"))

        def add(cid, status, message, details=None):
            c = {"id": cid, "status": status, "message": message}
            if details is not None:
                c["details"] = details
            checks.append(c)

        cold = self.cold()
        if cold:
            add("cold_key_configured", "PASS", "Cold key is configured",
                {"address": cold[0], "pubkey": self.env.get("ACCOUNT_PUBKEY")})
            in_ring = (self.home / "keyring-file" / f"{chainkeys.account_id(cold[1]).hex()}.address").exists()
            add("cold_key_not_in_keyring", "FAIL" if in_ring else "PASS",
                "Cold key is in keyring (should only be in environment config)" if in_ring
                else "Cold key correctly NOT in keyring")
        else:
            add("cold_key_configured", "FAIL", "Cold key is not configured")
        key = self.env.get("KEY_NAME", "")
        if (self.home / "keyring-file" / f"{key}.info").exists():
            add("warm_key_in_keyring", "PASS", f"Warm key '{key}' found in keyring")
            kr = Keyring(self.home, "file", LineReader(io.BytesIO()))
            kr.password = self.env.get("KEYRING_PASSWORD", "")
            try:
                kr.get(key)
                add("warm_key_address_match", "PASS", "Warm key address matches signer address")
            except KeyringError as e:
                add("warm_key_address_match", "UNAVAILABLE", f"Failed to get public key from keyring: {e}")
        else:
            add("warm_key_in_keyring", "FAIL", f"Warm key '{key}' not found in keyring: {key}.info: key not found")
        chain_ok = "PASS" if all_pass else "UNAVAILABLE"
        add("permissions_granted", chain_ok, "All 27 required permissions granted" if all_pass else
            "Unable to check permissions: rpc error: code = Unavailable desc = authz query not simulated")
        add("feegrant_allowance", chain_ok, "Fee allowance from cold to warm key is configured" if all_pass else
            "Unable to check feegrant allowance: rpc error: code = Unavailable desc = feegrant query not simulated")
        status = self.node_status()
        registered = None
        seed = self.env.get("DAPI_CHAIN_NODE__SEED_API_URL", "").rstrip("/")
        if cold and seed:
            try:
                code, data = get_json(f"{seed}/v1/participants/{cold[0]}", timeout=3)
                registered = data if code == 200 else False
            except OSError:
                registered = None
        pk = ((status or {}).get("validator_info") or {}).get("pub_key") or {}
        if status is None:
            add("consensus_key_match", "UNAVAILABLE", "Failed to get node status: connection refused")
        elif not registered:
            add("consensus_key_match", "UNAVAILABLE", "Failed to query participant: rpc error: code = NotFound desc "
                "= participant not found")
        else:
            want = registered.get("validator_key") if isinstance(registered, dict) else None
            if want and want != pk.get("value"):
                add("consensus_key_match", "FAIL", f"Consensus key mismatch: local={pk.get('value')}, registered={want}",
                    {"consensus_pubkey": pk.get("value"), "registered_pubkey": want})
            else:
                add("consensus_key_match", "PASS", "Consensus key matches participant registration",
                    {"consensus_pubkey": pk.get("value")})
        epoch = 100 + int((now - 1.7e9) / 86400)
        if registered:
            add("active_in_epoch", "PASS" if all_pass else "FAIL",
                f"Participant is active in epoch {epoch} with weight 1" if all_pass
                else f"Participant is NOT active in epoch {epoch}", {"epoch": epoch})
        else:
            add("active_in_epoch", "UNAVAILABLE", f"Failed to query active participants for epoch {epoch}")
        if status is not None:
            add("validator_in_set", "PASS" if all_pass else "FAIL",
                "Validator is active in consensus validator set" if all_pass else
                "Validator is NOT in consensus validator set (may need to register or unjail)",
                {"consensus_pubkey": pk.get("value")})
        if registered:
            add("missed_requests_threshold", "PASS", "Missed requests: 0.0% (below 10% threshold)",
                {"inference_count": 0, "missed_requests": 0, "total_requests": 0, "missed_percentage": 0})
        else:
            add("missed_requests_threshold", "UNAVAILABLE", "Unable to query participant stats: participant not found")
        for n in self.nodes:
            ok, err, devs = self.ml_health(n)
            gpus = [{"index": d.get("index"), "name": d.get("name"),
                     "total_memory_gb": round(d.get("total_memory_mb", 0) / 1024, 2),
                     "free_memory_gb": round(d.get("free_memory_mb", 0) / 1024, 2),
                     "used_memory_gb": round(d.get("used_memory_mb", 0) / 1024, 2),
                     "available": d.get("is_available", False)} for d in (devs or {}).get("devices", [])]
            add(f"mlnode_{n.get('id')}", "PASS" if ok else "FAIL",
                "MLNode is healthy" if ok else f"MLNode health check failed: {err}",
                {"id": n.get("id"), "host": n.get("host"), "models": sorted(n.get("models") or {}), "gpus": gpus})
        if status is None:
            add("block_sync", "UNAVAILABLE", "Failed to get node status: connection refused")
        else:
            sync = status.get("sync_info", {})
            h = int(sync.get("latest_block_height", 0))
            age = _age(sync.get("latest_block_time", ""), now)
            ok = age < 60
            add("block_sync", "PASS" if ok else "FAIL",
                f"Chain is synced. Latest block: {h}, age: {int(age)}s" if ok else
                f"Chain appears stalled. Latest block: {h}, age: {int(age)}s (> 60s)",
                {"latest_height": h, "latest_block_time": sync.get("latest_block_time"),
                 "seconds_since_block": int(age)})
        counts = {s: sum(1 for c in checks if c["status"] == s) for s in ("PASS", "FAIL", "UNAVAILABLE")}
        overall = "FAIL" if counts["FAIL"] else "UNAVAILABLE" if counts["UNAVAILABLE"] else "PASS"
        issues = [c["message"] if c["status"] == "FAIL" else f"Check unavailable: {c['message']}"
                  for c in checks if c["status"] != "PASS"]
        return {"experimental": True, "generated_at": simenv.rfc3339(now), "overall_status": overall, "checks": checks,
                "summary": {"total_checks": len(checks), "passed_checks": counts["PASS"],
                            "failed_checks": counts["FAIL"], "unavailable_checks": counts["UNAVAILABLE"],
                            "issues": issues, "recommendations": []}}


def _age(stamp: str, now: float) -> float:
    import datetime as dt

    try:
        t = dt.datetime.strptime(stamp[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=dt.timezone.utc).timestamp()
    except ValueError:
        return 1e9
    return max(0.0, now - t)


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
        if p == "/health":
            return text_response("OK\n")
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


CLASSES = {"tmkms": Tmkms, "node": Node, "api": Api, "proxy": Proxy, "explorer": Explorer, "mlnode": MLNode,
           "inference": Inference, "prometheus": Prometheus, "node-exporter": NodeExporter, "grafana": Grafana}


def make(rt) -> Behaviour:
    return CLASSES.get(rt.state.get("kind", "generic"), Idle)(rt)
