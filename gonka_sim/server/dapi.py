"""The api container (decentralized-api): node-config.json read once into .dapi/gonka.db; the admin
API on :9200, the ML callback on :9100, the public API on :9000.

At ~290 lines: one class, the routes of its three servers."""

from __future__ import annotations

import base64
import contextlib
import io
import json
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

from . import chainkeys, cosmovisor, simenv
from .behaviour import Behaviour, get_json, post_json, slog
from .keyring import Keyring, KeyringError, LineReader
from .responses import Fatal, Response, json_response


def should_be_operational(admin: dict, latest_epoch: int, phase: str) -> bool:
    """broker.ShouldBeOperational (broker/broker.go)."""
    if admin.get("enabled", True):
        return latest_epoch > int(admin.get("epoch", 0)) or phase == "Inference"
    return int(admin.get("epoch", 0)) >= latest_epoch

# ----------------------------------------------------------------------------- api

class Api(Behaviour):
    def setup(self):
        rt, env = self.rt, self.env
        self.home = rt.path("/root/.inference")
        dapi = rt.path("/root/.dapi")
        dapi.mkdir(parents=True, exist_ok=True)
        cosmovisor.init(dapi, "/root/.dapi", "decentralized-api", simenv.version_of(rt.state.get("image", "")))
        self.db_path = dapi / "gonka.db"
        self.lock = threading.Lock()
        self.report_cache: tuple[float, dict] | None = None
        self.runtime: dict[str, dict] = {}  # node id -> broker state: failure_reason, last command
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
        # admin state lives in the broker's memory only: after a restart every node is enabled again
        self.admin_state: dict[str, dict] = {}
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

    @staticmethod
    def bind(n) -> dict:
        """echo's Bind into apiconfig.InferenceNodeConfig: absent fields are zero values."""
        if not isinstance(n, dict):
            raise ValueError("json: cannot unmarshal into Go value of type apiconfig.InferenceNodeConfig")
        out = {"host": "", "inference_segment": "", "inference_port": 0, "poc_segment": "", "poc_port": 0,
               "models": {}, "id": "", "max_concurrent": 0, "hardware": None}
        for k in out:
            if k in n and n[k] is not None:
                out[k] = n[k]
        for k in ("inference_port", "poc_port", "max_concurrent"):
            if not isinstance(out[k], int) or isinstance(out[k], bool):
                raise ValueError(f"json: cannot unmarshal into Go struct field InferenceNodeConfig.{k} of type int")
        if not isinstance(out["models"], dict):
            raise ValueError("json: cannot unmarshal into Go struct field InferenceNodeConfig.models")
        out["models"] = {m: {"args": list((c or {}).get("args") or [])} for m, c in out["models"].items()}
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
        """The node routes of upstream's admin server (internal/server/admin/server.go, node_handlers.go,
        broker/node_admin_commands.go). Errors are echo's {"message": ...}."""
        p = urllib.parse.urlsplit(path).path.rstrip("/")
        if p == "/admin/v1/nodes" and method == "GET":
            return json_response([self.node_json(n) for n in self.nodes])
        if p in ("/admin/v1/nodes", "/admin/v1/nodes/batch") and method == "POST" or \
                p.startswith("/admin/v1/nodes/") and p.count("/") == 4 and method == "PUT":
            try:
                data = json.loads(body or b"null")
                nodes = [self.bind(x) for x in data] if p.endswith("/batch") and isinstance(data, list) \
                    else [self.bind(data)]
            except ValueError as e:
                return json_response({"message": f"invalid request body: {e}"}, 400)
            if p.endswith("/batch"):
                return self.create_batch(nodes)
            # upsert; PUT takes the id from the body, not from the path (createNewNode for both)
            with self.lock:
                exists = any(x["id"] == nodes[0]["id"] for x in self.nodes)
            if exists:
                node, err = self.update_node(nodes[0])
                if err:
                    return json_response({"message": f"failed to update node: {err}"}, 500)
                return json_response(node)
            node, err = self.add_node(nodes[0])
            if err:
                return json_response({"message": f"failed to create node: {err}"}, 400)
            return json_response(node)
        parts = p.split("/")
        if len(parts) == 6 and p.startswith("/admin/v1/nodes/") and method == "POST" and parts[5] in ("enable", "disable"):
            nid = urllib.parse.unquote(parts[4])
            with self.lock:
                if not any(x["id"] == nid for x in self.nodes):
                    return json_response({"message": f"node not found: {nid}"}, 404)
                self.admin_state[nid] = {"enabled": parts[5] == "enable", "epoch": self.epoch()[0]}
            self.rt.log(slog("INFO", "Updated node admin state", node_id=nid, enabled=parts[5] == "enable"))
            return json_response({"message": f"node {parts[5]}d successfully", "node_id": nid})
        if len(parts) == 5 and p.startswith("/admin/v1/nodes/") and method == "DELETE":
            nid = urllib.parse.unquote(parts[4])
            with self.lock:
                before = len(self.nodes)
                self.nodes = [x for x in self.nodes if x["id"] != nid]
                self.admin_state.pop(nid, None)
                gone = len(self.nodes) < before
                if gone:
                    self.save()
            return json_response(gone)  # RemoveNode answers a bool
        if p == "/admin/v1/setup/report" and method == "GET":
            return json_response(self.report())
        return json_response({"message": "Not Found"}, 404)

    def validate(self, n: dict, exclude: str = "") -> str | None:
        """apiconfig.ValidateInferenceNodeBasic + the broker's host:port uniqueness checks."""
        errs = []
        if not str(n["id"]).strip():
            errs.append("node id is required and cannot be empty")
        if not str(n["host"]).strip():
            errs.append("host is required and cannot be empty")
        for k in ("inference_port", "poc_port"):
            if not 0 < n[k] <= 65535:
                errs.append(f"{k} must be between 1 and 65535, got {n[k]}")
        if n["max_concurrent"] <= 0:
            errs.append(f"max_concurrent must be greater than 0, got {n['max_concurrent']}")
        if not n["models"]:
            errs.append("at least one model must be specified")
        for k, what in (("inference_port", "inference"), ("poc_port", "PoC")):
            other = next((x for x in self.nodes if x["id"] != exclude and x["host"] == n["host"] and x[k] == n[k]), None)
            if other is not None:
                errs.append(f"duplicate {what} host+port combination: {n['host']}:{n[k]} "
                            f"(already used by node '{other['id']}')")
        return f"validation failed: {'; '.join(errs)}" if errs else None

    def governance_ids(self) -> set | None:
        """Ids of the governance models (None when the chain cannot be asked)."""
        gov = self.governance_models()
        return None if gov is None else {m.get("id") for m in gov if isinstance(m, dict)}

    def add_node(self, n: dict) -> tuple[dict | None, str | None]:
        """RegisterNode: validate, drop non-governance models, enabled from the current epoch."""
        with self.lock:
            err = self.validate(n)
        if err:
            return None, err
        ids = self.governance_ids()
        if ids is None:
            return None, "failed to get governance models"
        n = {**n, "models": {m: c for m, c in n["models"].items() if m in ids}}
        if not n["models"]:
            return None, f"node {n['id']} has no governance-valid models"
        with self.lock:
            self.nodes = [x for x in self.nodes if x["id"] != n["id"]] + [n]
            self.admin_state[n["id"]] = {"enabled": True, "epoch": self.epoch()[0]}
            self.save()
        self.rt.log(slog("INFO", "RegisterNode. Registered node", node_id=n["id"]))
        return n, None

    def update_node(self, n: dict) -> tuple[dict | None, str | None]:
        """UpdateNode: applied at once (no epoch or PoC check upstream); admin state kept."""
        with self.lock:
            err = self.validate(n, exclude=n["id"])
        if err:
            return None, err
        ids = self.governance_ids()
        if ids is None:
            return None, "failed to get governance models"
        bad = next((m for m in n["models"] if m not in ids), None)
        if bad is not None:
            return None, f"model {bad} is not a valid governance model"
        with self.lock:
            self.nodes = [n if x["id"] == n["id"] else x for x in self.nodes]
            self.save()
        self.runtime.pop(n["id"], None)  # the reconcile brings the new model up
        self.rt.log(slog("INFO", "UpdateNode. Updated node configuration", node_id=n["id"]))
        return n, None

    def create_batch(self, nodes: list[dict]) -> Response:
        """createNewNodes: 201 all, 206 {nodes, errors} some, 400 none (add only, no upsert)."""
        out, errors = [], []
        for i, n in enumerate(nodes):
            node, err = self.add_node(n)
            if err:
                errors.append(f"node[{i}] (id: {n['id']}): {err}")
            else:
                out.append(node)
        if errors and not out:
            return json_response({"message": {"error": "all nodes failed validation", "errors": errors}}, 400)
        if errors:
            return json_response({"nodes": out, "errors": errors}, 206)
        return json_response(out, 201)

    def epoch(self) -> tuple[int, str]:
        """(latest epoch index, phase) from the chain (the seed's /v1/epochs/latest here), cached 1 s."""
        now = time.time()
        cached = getattr(self, "_epoch_cache", None)
        if cached and now - cached[0] < 1.0:
            return cached[1]
        seed = self.env.get("DAPI_CHAIN_NODE__SEED_API_URL", "").rstrip("/")
        value = (0, "Inference")
        try:
            status, data = get_json(f"{seed}/v1/epochs/latest", timeout=3)
            if status == 200 and isinstance(data, dict):
                value = (int(data["latest_epoch"]["index"]), str(data["phase"]))
        except (OSError, KeyError, TypeError, ValueError):
            pass
        self._epoch_cache = (now, value)
        return value

    def node_json(self, n: dict) -> dict:
        """broker.NodeResponse: {node: broker.Node (with node_num), state: NodeState}."""
        num = next((i for i, x in enumerate(self.nodes, 1) if x["id"] == n["id"]), 0)
        node = {k: n.get(k) for k in ("host", "inference_segment", "inference_port", "poc_segment", "poc_port",
                                      "models", "id", "max_concurrent")}
        node.update(node_num=num, hardware=n.get("hardware"))
        return {"node": node, "state": self.node_state(n)}

    def node_state(self, n: dict) -> dict:
        """broker NodeState. current_status as broker.queryNodeStatus derives it: FAILED when the ML
        node does not answer, else its /api/v1/state (INFERENCE, STOPPED, POW -> POC); failure_reason
        is the last failed command's error (broker commands.go)."""
        ok, err, _ = self.ml_health(n)
        rt = self.runtime.get(n.get("id"), {})
        current, reason = "FAILED", err
        if ok:
            try:
                _s, st = get_json(f"http://{n.get('host')}:{n.get('poc_port')}/api/v1/state", timeout=2)
                current = {"INFERENCE": "INFERENCE", "STOPPED": "STOPPED", "POW": "POC"}.get(
                    (st or {}).get("state"), "UNKNOWN")
            except OSError as e:
                current = "FAILED"
                rt = {**rt, "failure_reason": f"Get state: {e}"}
            reason = rt.get("failure_reason", "")
            if reason:
                current = "FAILED"
        index, phase = self.epoch()
        admin = self.admin_state.setdefault(n.get("id"), {"enabled": True, "epoch": index})
        operational = should_be_operational(admin, index, phase)
        poc = {"PoCGenerate": "GENERATING", "PoCGenerateWindDown": "GENERATING", "PoCValidate": "VALIDATING",
               "PoCValidateWindDown": "VALIDATING"}.get(phase, "IDLE") if operational else "IDLE"
        intended = ("POC" if poc != "IDLE" else "INFERENCE") if operational else "STOPPED"
        if ok and not reason and poc != "IDLE":
            current = "POC"
        return {"intended_status": intended, "current_status": current,
                "poc_intended_status": poc, "poc_current_status": poc if ok else "IDLE", "lock_count": 0,
                "failure_reason": reason, "status_timestamp": simenv.rfc3339(),
                "admin_state": admin, "ml_node_version": "",
                "epoch_models": {}, "epoch_ml_nodes": {}, "preserved_models": None}

    # -- the broker's reconcile and the ML node background manager ---------------------------------

    def start(self):
        self.thread(self.manage_nodes)

    def governance_models(self) -> list[dict] | None:
        """The chain's governance models; the simulation asks the seed's API for them in place of the
        chain query (broker GetGovernanceModels)."""
        seed = self.env.get("DAPI_CHAIN_NODE__SEED_API_URL", "").rstrip("/")
        try:
            status, data = get_json(f"{seed}/v1/governance/models", timeout=5)
        except OSError:
            return None
        models = (data or {}).get("models") if status == 200 and isinstance(data, dict) else None
        return models if isinstance(models, list) else None

    def manage_nodes(self) -> None:
        """For each node, once its ML node answers: inference/up with the governance model's args
        merged with the node's (StartInferenceNodeCommand), then the model pre-download check
        (MLNodeBackgroundManager.checkNodeModels; upstream every 30 min, knob `model_check_s`)."""
        tried: dict[str, float] = {}  # node id -> time of the last inference/up
        last_check = 0.0
        while not self.rt.stop_event.is_set():
            due = time.time() - last_check >= float(self.rt.knob("model_check_s", 1800))
            checked = False
            for n in list(self.nodes):
                nid = n.get("id")
                if not self.ml_health(n)[0]:
                    continue
                # reconcile: a node that is not serving gets inference/up again (knob `reconcile_s`)
                if (nid not in tried or time.time() - tried[nid] >= float(self.rt.knob("reconcile_s", 60))) \
                        and self.node_state(n)["current_status"] != "INFERENCE":
                    tried[nid] = time.time()
                    self.inference_up(n)
                if due:
                    self.check_models(n)
                    checked = True
            if checked:
                last_check = time.time()
            self.report_nodes()
            if self.rt.sleep(1.0):
                return

    def report_nodes(self) -> None:
        """Tell the seed which ML nodes this participant runs and their admin state (the sandbox's
        stand-in for the PoC batches the api submits; gonka_sim/network/epochs.py)."""
        cold, seed = self.cold(), self.env.get("DAPI_CHAIN_NODE__SEED_API_URL", "").rstrip("/")
        if not cold or not seed:
            return
        # no epoch query here: this runs every second, and the seed is shared by the tests' hosts
        # (a node without an admin state is enabled since before any epoch, as after an api restart)
        nodes = [{"id": n["id"], "models": sorted(n.get("models") or {}), "healthy": self.ml_health(n)[0],
                  "admin_state": self.admin_state.get(n["id"], {"enabled": True})}
                 for n in list(self.nodes)]
        with contextlib.suppress(OSError):
            post_json(f"{seed}/gonka-sim/v1/ml-nodes", {"address": cold[0], "url": self.env.get("DAPI_API__PUBLIC_URL", ""),
                                                         "nodes": nodes}, timeout=3)

    def inference_up(self, n: dict) -> None:
        nid, log = n.get("id"), self.rt.log
        gov = self.governance_models()
        if gov is None:
            self.runtime[nid] = {"failure_reason": "failed to get governance models"}
            return
        ids = {m.get("id"): m for m in gov if isinstance(m, dict)}
        chosen = next((mid for mid in sorted(n.get("models") or {}) if mid in ids), None)
        if chosen is None:
            self.runtime[nid] = {"failure_reason": "No epoch models available for this node"}
            log(slog("ERROR", "No epoch models available for this node", node_id=nid))
            return
        local = ((n.get("models") or {}).get(chosen) or {}).get("args") or []
        merged = merge_model_args(ids[chosen].get("model_args") or [], local)
        url = f"http://{n.get('host')}:{n.get('poc_port')}/api/v1/inference/up"
        dto = {"model": chosen, "dtype": "auto", "additional_args": merged}
        log(slog("INFO", "Sending inference/up request to node", inferenceUpUrl=url, body=json.dumps(dto)))
        try:
            status, _ = post_json(url, dto, timeout=30)
        except OSError as e:
            # only a transport error is an error to the api: utils.SendPostJsonRequest does not look
            # at the status code, so a 500 from the ML node leaves the state to the status query
            self.runtime[nid] = {"failure_reason": f'Post "{url}": {e}'}
            log(slog("ERROR", "Failed to bring up inference", node_id=nid, error=str(e)))
            return
        self.runtime[nid] = {"inference_up_status": status}
        log(slog("INFO", "Successfully brought up inference on node", node_id=nid))

    def check_models(self, n: dict) -> None:
        base = f"http://{n.get('host')}:{n.get('poc_port')}/api/v1/models"
        for mid in n.get("models") or {}:
            model = {"hf_repo": mid, "hf_commit": None}  # nil = latest (mlnode_background_manager.go)
            try:
                _s, st = post_json(f"{base}/status", model, timeout=30)
                if (st or {}).get("status") in ("NOT_FOUND", "PARTIAL"):
                    self.rt.log(slog("INFO", "Pre-downloading model", model=mid, node_id=n.get("id")))
                    post_json(f"{base}/download", model, timeout=30)
            except OSError as e:
                self.rt.log(slog("WARN", "Failed to check model status", node_id=n.get("id"), model=mid,
                                 error=str(e)))

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
        if method == "GET" and p.startswith("/v1/epochs/"):
            # upstream answers these from its chain node's state; the sandbox's chain state is the seed's
            # (public/server.go: v1 GET epochs/:epoch/participants, epochs/latest)
            seed = self.env.get("DAPI_CHAIN_NODE__SEED_API_URL", "").rstrip("/")
            try:
                status, data = get_json(f"{seed}{p}", timeout=5)
            except OSError as e:
                return json_response({"message": f"chain query failed: {e}"}, 503)
            return json_response(data, status)
        return json_response({"message": "Not Found"}, 404)

    def ml(self, method, path, headers, body) -> Response:
        if urllib.parse.urlsplit(path).path.rstrip("/") == "/versions":
            # chain-approved devshard versions (none unless a test approves some with the knob)
            return json_response({"versions": self.rt.knob("devshard_versions", []) or []})
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
                # the participant (v2); v1 is only the account (decentralized-api public/server.go)
                code, data = get_json(f"{seed}/v2/participants/{cold[0]}", timeout=3)
                registered = (data or {}).get("participant") if code == 200 and isinstance(data, dict) else False
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


def merge_model_args(epoch: list[str], local: list[str]) -> list[str]:
    """broker.MergeModelArgs: every governance arg in order, then the local `--key [value]` pairs whose
    key (the exact token) governance does not set."""
    out, keys = [], set()
    i = 0
    while i < len(epoch):
        out.append(epoch[i])
        if epoch[i].startswith("--"):
            keys.add(epoch[i])
            if i + 1 < len(epoch) and not epoch[i + 1].startswith("--"):
                out.append(epoch[i + 1])
                i += 1
        i += 1
    i = 0
    while i < len(local):
        arg = local[i]
        has_value = i + 1 < len(local) and not local[i + 1].startswith("--")
        if arg.startswith("--") and arg not in keys:
            out += local[i:i + 2] if has_value else [arg]
        if arg.startswith("--") and has_value:
            i += 1
        i += 1
    return out


def _age(stamp: str, now: float) -> float:
    import datetime as dt

    try:
        t = dt.datetime.strptime(stamp[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=dt.timezone.utc).timestamp()
    except ValueError:
        return 1e9
    return max(0.0, now - t)
