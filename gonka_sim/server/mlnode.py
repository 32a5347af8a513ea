"""The ML node (uvicorn api.app on 8080: /health, /api/v1/state, /api/v1/gpu/devices, /v1/models,
models/status + models/download, inference/up) and its nginx `inference`, forwarding per the mounted
nginx.conf.

Written from upstream mlnode (packages/api/src/api at gonka 8a35022b, image 3.0.13):
- `models/manager.py` `is_model_exist`: the repo's files listed ONLINE for the asked revision
  (None = main), each then looked up OFFLINE as `hf_hub_download(local_files_only=True)` does
  (see hfcache.py); status DOWNLOADING (a task) > DOWNLOADED > PARTIAL (any revision of the repo
  cached) > NOT_FOUND. A download runs `snapshot_download` in the background (a thread here).
- `inference/vllm/runner.py`: tp and pp are read from `--tensor-parallel-size N` /
  `--pipeline-parallel-size N` as SEPARATE tokens only (`--x=N` counts as 1); each vLLM instance
  gets tp*pp GPUs and `gpu_count // (tp*pp)` instances start. `inference/up` waits for them: 200
  `{"status":"OK"}`, or 500 `{"detail": ...}` when vLLM fails.
- vLLM itself (simulated): a model whose weights (the index's `metadata.total_size`) do not fit in
  one instance's GPUs x `--gpu-memory-utilization` (default 0.9) fails with CUDA out of memory.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

from . import gpu, hfcache
from .behaviour import NGINX, Behaviour, forward
from .responses import Fatal, Response, json_response

MIB = 1 << 20
GIB = 1 << 30
MAX_INSTANCES = 128  # runner.py INFERENCE_MAX_INSTANCES
VLLM_PORT = 5000
INDEX = "model.safetensors.index.json"


def arg_value(args: list[str], name: str, default, cast=int):
    """runner.py `_get_arg_value`: the token after `name`, if it converts; else the default."""
    if name in args:
        try:
            return cast(args[args.index(name) + 1])
        except (ValueError, IndexError):
            pass
    return default


# ----------------------------------------------------------------------------- ML node and its nginx

class MLNode(Behaviour):
    def setup(self):
        log = self.rt.log
        log("INFO:     Started server process [1]")
        log("INFO:     Waiting for application startup.")
        self.cache = self.rt.path(self.env.get("HF_HOME") or "/root/.cache") / "hub"
        log(f"INFO:     ModelManager initialized with cache_dir: {self.env.get('HF_HOME') or '/root/.cache'}/hub")
        if not gpu.gpus():
            log("WARNING:  CUDA is not available - no GPU support detected")
        log("INFO:     Application startup complete.")
        log("INFO:     Uvicorn running on http://0.0.0.0:8080 (Press CTRL+C to quit)")
        self.lock = threading.Lock()
        self.tasks: dict[str, dict] = {}  # task id -> {"model", "status", "error_message", "start_time"}
        self.running: dict | None = None  # {"model", "args", "instances"} once inference/up succeeded
        self.startup: dict = {"status": "not_started"}
        # knob ``mlnode_broken_images`` {image: "exit" | "unhealthy"}: this host's ML node of that
        # image exits at start (a crash loop under restart: always) or never answers /health with 200
        broken = (self.rt.knob("mlnode_broken_images") or {}).get(self.rt.state.get("image", ""))
        if broken == "exit":
            raise Fatal("RuntimeError: CUDA error: no kernel image is available for execution on the device "
                        "(gonka-sim knob mlnode_broken_images)")
        self.unhealthy = broken == "unhealthy"

    def listener(self, cport):
        return ("http", self.http, "uvicorn") if cport in (8080, 5000) else None

    def devices(self) -> dict:
        devs = [{"index": g["index"], "name": g["name"], "total_memory_mb": g["memory_total_mib"],
                 "free_memory_mb": g["memory_total_mib"] - g["memory_used_mib"], "used_memory_mb": g["memory_used_mib"],
                 "utilization_percent": g["utilization"], "temperature_c": g["temperature"], "is_available": True,
                 "error_message": None} for g in gpu.gpus()]
        return {"devices": devs, "count": len(devs)}

    def http(self, method, path, headers, body) -> Response:
        resp = self.route(method, urllib.parse.urlsplit(path).path.rstrip("/") or "/", body)
        self.rt.log(f'INFO:     {headers.get("X-Real-IP", "172.18.0.1")}:0 - "{method} {path} HTTP/1.1" {resp.status}')
        return resp

    def route(self, method: str, p: str, body: bytes) -> Response:
        if p == "/health" and getattr(self, "unhealthy", False):
            return json_response({"status": "unhealthy", "detail": "gonka-sim knob mlnode_broken_images"}, 503)
        if p == "/health":
            d = self.devices()
            return json_response({"status": "healthy", "gpu": {"available": bool(d["count"]), "count": d["count"],
                                                               "devices": d["devices"]}})
        if p == "/api/v1/state":
            if self.running:
                return json_response({"state": "INFERENCE", "inference_healthy": True,
                                      "loaded_model": self.running["model"]})
            return json_response({"state": "STOPPED"})
        if p == "/api/v1/gpu/devices":
            return json_response(self.devices())
        if p == "/v1/models":
            data = [{"id": self.running["model"], "object": "model"}] if self.running else []
            return json_response({"object": "list", "data": data})
        if p == "/api/v1/inference/up/status":
            return json_response({**self.startup, "is_starting": False, "is_running": bool(self.running)})
        if method != "POST":
            return json_response({"detail": "Not Found"}, 404)
        try:
            req = json.loads(body or b"{}")
        except ValueError:
            return json_response({"detail": "invalid JSON body"}, 422)
        if p == "/api/v1/models/status":
            model = self.model_of(req)
            return json_response({"model": model, **self.model_status(model)}) if model else _missing("hf_repo")
        if p == "/api/v1/models/download":
            model = self.model_of(req)
            return self.download(model) if model else _missing("hf_repo")
        if p == "/api/v1/inference/up":
            return self.inference_up(req)
        if p in ("/api/v1/inference/down", "/api/v1/stop"):
            self.running = None
            return json_response({"status": "OK"})
        if p.startswith("/api/v1/"):
            return json_response({"status": "OK"})
        return json_response({"detail": "Not Found"}, 404)

    # -- models (models/manager.py) ----------------------------------------------------------------

    @staticmethod
    def model_of(req) -> dict | None:
        if not isinstance(req, dict) or not req.get("hf_repo"):
            return None
        return {"hf_repo": str(req["hf_repo"]), "hf_commit": req.get("hf_commit") or None}

    @staticmethod
    def task_id(model: dict) -> str:
        return f"{model['hf_repo']}:{model['hf_commit'] or 'latest'}"

    def is_model_exist(self, model: dict) -> bool:
        repo, rev = model["hf_repo"], model["hf_commit"]
        try:
            files = hfcache.list_repo_files(hfcache.endpoint(self.env), repo, rev)
        except hfcache.HubError as e:
            self.rt.log(f"DEBUG:    Failed to get file list from HuggingFace for {repo}@{rev or 'main'}: {e}")
            return False
        missing = [f for f in files if hfcache.offline_file(self.cache, repo, f, rev) is None]
        if not files or missing:
            self.rt.log(f"DEBUG:    Model {repo}@{rev or 'main'} incomplete: {len(missing)}/{len(files)} files "
                        f"missing/corrupt. Examples: {missing[:5]}")
            return False
        self.rt.log(f"INFO:     Model {repo}@{rev or 'main'} verified complete with all {len(files)} files present "
                    "and valid")
        return True

    def model_status(self, model: dict) -> dict:
        with self.lock:
            task = self.tasks.get(self.task_id(model))
        if task:
            progress = ({"start_time": task["start_time"], "elapsed_seconds": time.time() - task["start_time"]}
                        if task["status"] == "DOWNLOADING" else None)
            return {"status": task["status"], "progress": progress, "error_message": task.get("error_message")}
        if self.is_model_exist(model):
            status = "DOWNLOADED"
        else:
            revs = hfcache.revisions(self.cache, model["hf_repo"])
            partial = model["hf_commit"] in revs if model["hf_commit"] else bool(revs)
            status = "PARTIAL" if partial else "NOT_FOUND"
        return {"status": status, "progress": None, "error_message": None}

    def download(self, model: dict) -> Response:
        tid = self.task_id(model)
        with self.lock:
            if self.tasks.get(tid, {}).get("status") == "DOWNLOADING":
                return json_response({"detail": f"Model {tid} is already downloading"}, 409)
        if self.is_model_exist(model):
            with self.lock:
                self.tasks[tid] = {"status": "DOWNLOADED", "start_time": time.time()}
            return json_response({"task_id": tid, "status": "DOWNLOADED", "model": model}, 202)
        task = {"status": "DOWNLOADING", "start_time": time.time(), "error_message": None}
        with self.lock:
            self.tasks[tid] = task
        self.rt.log(f"INFO:     Starting download of {tid}")

        def run():
            try:
                hfcache.snapshot_download(hfcache.endpoint(self.env), self.cache, model["hf_repo"],
                                          model["hf_commit"], log=lambda m: self.rt.log(f"INFO:     {m}"))
                task["status"] = "DOWNLOADED" if self.is_model_exist(model) else "PARTIAL"
                self.rt.log(f"INFO:     Download of {tid} finished: {task['status']}")
            except (hfcache.HubError, OSError, KeyError) as e:
                task.update(status="PARTIAL", error_message=str(e))
                self.rt.log(f"ERROR:    Download of {tid} failed: {e}")
        self.thread(run)
        return json_response({"task_id": tid, "status": "DOWNLOADING", "model": model}, 202)

    # -- inference (inference/vllm/runner.py + what vLLM does) ---------------------------------------

    def inference_up(self, req) -> Response:
        if self.running:
            return json_response({"detail": "VLLM is already running. Use /inference/down to stop it first."}, 409)
        model = str(req.get("model") or "") if isinstance(req, dict) else ""
        args = [str(a) for a in (req.get("additional_args") or [])] if isinstance(req, dict) else []
        log = self.rt.log
        tp = arg_value(args, "--tensor-parallel-size", 1)
        pp = arg_value(args, "--pipeline-parallel-size", 1)
        per = max(1, tp * pp)
        gpus = gpu.gpus()
        instances = min(MAX_INSTANCES, max(1, max(len(gpus), 1) // per))
        log(f"INFO:     gpus per instance: {per} (tp_size: {tp}, pp_size: {pp})")
        log(f"INFO:     total available gpus: {max(len(gpus), 1)}")
        log(f"INFO:     instances to start: {instances}")
        for i in range(instances):
            log(f"INFO:     Starting vLLM instance {i} on port {VLLM_PORT + i + 1} with GPUs "
                f"{','.join(str(g) for g in range(i * per, i * per + per))}")
        error = self.vllm_error(model, args, gpus, per)
        if error:
            for line in error[1]:
                log(line)
            self.startup = {"status": "failed", "error": error[0]}
            detail = f"vLLM failed to start within the expected timeout: {error[0]}"
            log(f"ERROR:    Failed to start VLLM: {detail}")
            return json_response({"detail": detail}, 500)
        self.running = {"model": model, "args": args, "instances": instances}
        self.startup = {"status": "completed", "error": None}
        log(f"INFO:     vLLM is up and running with {instances} instance(s).")
        return json_response({"status": "OK"})

    def weight_bytes(self, model: str, revision: str | None) -> int | None:
        """The weights vLLM would load: the index's metadata.total_size, from the cache or the hub."""
        path = hfcache.offline_file(self.cache, model, INDEX, revision)
        try:
            if path is not None:
                data = json.loads(path.read_text())
            else:  # vLLM downloads what is not cached; reading the index is enough here
                ep = hfcache.endpoint(self.env)
                rev = urllib.parse.quote(revision or "main", safe="")
                with urllib.request.urlopen(f"{ep}/{model}/resolve/{rev}/{INDEX}", timeout=10) as r:
                    data = json.loads(r.read())
            return int(data["metadata"]["total_size"])
        except (OSError, ValueError, KeyError, TypeError, urllib.error.URLError):
            return None

    def vllm_error(self, model: str, args: list[str], gpus: list[dict], per: int) -> tuple[str, list[str]] | None:
        """(error, log lines) of a vLLM start that fails on these GPUs; None when it loads."""
        if not gpus:
            msg = "RuntimeError: No CUDA GPUs are available"
            return msg, [f"ERROR {msg}"]
        if per > len(gpus):
            msg = ("ValueError: The number of required GPUs exceeds the total number of available GPUs in the "
                   f"placement group (required {per}, available {len(gpus)})")
            return msg, [f"ERROR {msg}"]
        weights = self.weight_bytes(model, arg_value(args, "--revision", None, str))
        if weights is None:
            msg = f"OSError: {model} is not a local folder and is not a valid model identifier"
            return msg, [f"ERROR {msg}"]
        util = arg_value(args, "--gpu-memory-utilization", 0.9, float)
        total = gpus[0]["memory_total_mib"] * MIB
        share = weights / per
        if share > total * util:
            msg = (f"torch.OutOfMemoryError: CUDA out of memory. Tried to allocate {share / GIB:.2f} GiB. GPU 0 has a "
                   f"total capacity of {total / GIB:.2f} GiB of which {total * util / GIB:.2f} GiB may be used "
                   f"(gpu_memory_utilization {util}); {model} needs {weights / GIB:.2f} GiB of weights over "
                   f"{per} GPU(s) per instance")
            return msg, [f"INFO:     Loading weights of {model} ({weights / GIB:.2f} GiB) with tensor parallel {per}",
                         f"ERROR {msg}"]
        return None


def _missing(field: str) -> Response:
    return json_response({"detail": [{"type": "missing", "loc": ["body", field], "msg": "Field required"}]}, 422)


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
