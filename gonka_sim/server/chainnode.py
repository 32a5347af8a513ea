"""The chain's containers: tmkms (the consensus key, made once) and node (config files, genesis,
the RPC on :26657; every start re-applies what upstream's init-docker.sh sets, never
persistent_peers or pruning).

At ~400 lines it stays one module: the node's start and its RPC answers belong together."""

from __future__ import annotations

import base64
import hashlib
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

from . import chainfiles, chainkeys, cosmovisor, simenv, tomledit
from .behaviour import Behaviour, rlog, zlog
from .responses import Fatal, Response, json_response, text_response

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
        cosmovisor.init(self.home, "/root/.inference", "inferenced", simenv.version_of(rt.state.get("image", "")))
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
