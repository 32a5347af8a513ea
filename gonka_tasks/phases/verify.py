"""Phase 7, verification: PASS / WARN / FAIL checks of the running host, each with a one-line detail.

Checks whose answer may still be coming (registration, RPC, HTTP) are retried with bounded
backoff. Results go to `nodes/<KEY_NAME>/verification.txt` (the console lines, timestamped) and
`verification.json`; any FAIL ends the task with exit code 1.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable

from gonka_tasks import facts
from gonka_tasks.connectors import seed
from gonka_tasks.connectors.artefacts import write_artefact
from gonka_tasks.connectors.httpclient import HttpError, request
from gonka_tasks.core import participant
from gonka_tasks.core.checks import LOG_LEVEL, Check
from gonka_tasks.core.checks import counts as count_results
from gonka_tasks.core.preflight import parse_listen_ports
from gonka_tasks.core.shell import COMPOSE_ALL, q
from gonka_tasks.errors import DeployError
from gonka_tasks.phases.common import compose, expected_services

RPC_PORT = 26657
EXPOSURE_PORTS = (5050, 8080, 9100, 9200, RPC_PORT)
LOG_TAIL = 200
# the most specific label first: a line is quoted once, under the first pattern it matches
ERROR_PATTERNS = [
    ("panic", re.compile(r"\bpanic\b|\bpanicked\b", re.I)),
    ("CUDA error", re.compile(r"CUDA error|cuda.*(failed|error)|no CUDA-capable device", re.I)),
    ("out of memory", re.compile(r"out of memory|OutOfMemory|\bOOM\b", re.I)),
    ("error", re.compile(r"\bERROR\b|\blevel=error\b|\bERR\b")),
]
REFUSED = re.compile(r"connection refused", re.I)
# transient by nature: a client that says it reconnects (tmkms after a node restart) is not trouble
BENIGN = re.compile(r"reconnect", re.I)
REFUSED_STORM = 10
# `docker compose logs` prefixes each line with its container: "api-1   | text"
LOG_PREFIX = re.compile(r"^(?P<svc>[\w.-]+)\s+\| ?(?P<line>.*)$")


def retrying(fn: Callable[[], Check], *, attempts: int = 3, wait_s: float = 2.0) -> Check:
    """Re-run a check that FAILs because its answer may still be coming; the last answer counts.

    A WARN is an answer (a node catching up does not catch up in seconds): it is not retried.
    """
    c = fn()
    for i in range(1, attempts):
        if c.result != "FAIL":
            break
        time.sleep(wait_s * i)
        c = fn()
    return c


def mlnode_service(services: list[str]) -> str | None:
    return next((s for s in services if s.startswith("mlnode")), None)


# ---------------------------------------------------------------------------- checks
def check_registered(run) -> Check:
    """The cold key is a participant (/v2/participants) with PUBLIC_URL; its account balance shown."""
    cfg = run.cfg
    try:
        found = seed.lookup_participant(cfg, attempts=3)
    except HttpError as e:
        return Check("registration", "FAIL", f"seed unreachable: {e.message}")
    except ValueError as e:
        return Check("registration", "FAIL", f"unexpected answer from {participant.participant_url(cfg)}: {e}")
    try:
        account = seed.lookup_account(cfg, attempts=2)
    except HttpError:
        account = participant.Account("unknown", detail="seed did not answer")
    if found is None:
        if account.exists:
            held = (f"balance {participant.balance_text(account)}" if account.state == "present"
                    else "funded, never signed")
            return Check("registration", "FAIL",
                         f"{cfg.cold_address} not listed at the seed (HTTP 404 on /v2/participants) although its "
                         f"account exists ({held}): register-new-participant cannot register an existing account; "
                         "register it with the cold key: `inferenced tx inference submit-new-participant "
                         f"{cfg['PUBLIC_URL']} --validator-key <CONSENSUS_KEY> --from {cfg['COLD_KEY_NAME']} ...` "
                         "(see `fab start-base`)")
        return Check("registration", "FAIL",
                     f"{cfg.cold_address} not listed at the seed (HTTP 404 on /v2/participants)")
    if not participant.same_url(found.inference_url, cfg["PUBLIC_URL"]):
        return Check("registration", "FAIL",
                     f"{cfg.cold_address} is registered with {found.inference_url}, PUBLIC_URL is {cfg['PUBLIC_URL']}: "
                     "change it with the cold key (`inferenced tx inference submit-new-participant "
                     f"{cfg['PUBLIC_URL']} --from {cfg['COLD_KEY_NAME']} ...`) or set PUBLIC_URL back")
    bal = f", cold account balance {participant.balance_text(account)}" if account.state == "present" else ""
    return Check("registration", "PASS",
                 f"{cfg.cold_address} listed at the seed ({found.status}, {found.inference_url}){bal}")


def seed_height(run) -> int | None:
    try:
        r = request(f"{run.cfg.seed_api_url}/chain-rpc/status", attempts=2, what="seed chain status")
        return facts.parse_rpc_status(r.text).height if r.status == 200 else None
    except (HttpError, facts.FactError):
        return None


def check_rpc(run) -> Check:
    r = run.remote.probe(facts.RPC_STATUS_PROBE)
    if not r.ok:
        return Check("node RPC", "FAIL", "no answer from the node's RPC (docker exec node ... :26657/status)")
    try:
        s = facts.parse_rpc_status(r.stdout)
    except facts.FactError as e:
        return Check("node RPC", "FAIL", str(e))
    detail = f"chain {s.network or '?'}, height {s.height}"
    if not s.validator_pubkey:
        return Check("node RPC", "FAIL", detail + ", no validator key (tmkms not connected)")
    if s.catching_up:
        top = seed_height(run)
        gap = f", {top - s.height} blocks behind the seed ({top})" if top else ""
        return Check("node RPC", "WARN", detail + f", catching up{gap}")
    return Check("node RPC", "PASS", detail + ", in sync")


def server_url(run, port: int | str, path: str) -> str:
    host = run.cfg.server_ip
    return f"http://{f'[{host}]' if ':' in host else host}:{port}{path}"


def check_http(run, path: str, name: str, url: str = "") -> Check:
    url = url or server_url(run, run.cfg.api_port, path)
    try:
        r = request(url, attempts=2, timeout=5, what=name)
    except HttpError as e:
        return Check(name, "FAIL", f"{url}: {e.message.split(': ', 1)[-1]}")
    if r.status == 200:
        return Check(name, "PASS", f"{url} HTTP 200")
    return Check(name, "FAIL", f"{url} HTTP {r.status}")


def published_rpc_port(ps: list[facts.Container]) -> int | None:
    """The host port the node's RPC (26657) is published on for other machines, if it is."""
    for c in ps:
        if c.service != "node":
            continue
        for p in c.publishers:
            if (isinstance(p, dict) and p.get("TargetPort") == RPC_PORT and isinstance(p.get("PublishedPort"), int)
                    and p["PublishedPort"] > 0 and not str(p.get("URL", "")).startswith(("127.", "::1"))):
                return p["PublishedPort"]
    return None


def check_published_rpc(run, port: int) -> Check:
    """The node's RPC from outside, as other machines see it (only checked when it is published)."""
    url = server_url(run, port, "/status")
    name = "node RPC (published)"
    try:
        r = request(url, attempts=2, timeout=5, what=name)
    except HttpError as e:
        return Check(name, "FAIL", f"{url}: {e.message.split(': ', 1)[-1]}")
    if r.status != 200:
        return Check(name, "FAIL", f"{url} HTTP {r.status}")
    try:
        st = facts.parse_rpc_status(r.text)
    except facts.FactError as e:
        return Check(name, "FAIL", f"{url}: {e}")
    return Check(name, "PASS", f"{url} answers: chain {st.network or '?'}, height {st.height}")


def check_admin(run, mlnode_id: str) -> list[Check]:
    r = run.remote.probe_many({
        "nodes": "curl -fsS -m 5 http://127.0.0.1:9200/admin/v1/nodes || wget -qO- -T 5 http://127.0.0.1:9200/admin/v1/nodes",
        "report": "curl -fsS -m 5 http://127.0.0.1:9200/admin/v1/setup/report || "
                  "wget -qO- -T 5 http://127.0.0.1:9200/admin/v1/setup/report",
    })
    out = []
    if not r["nodes"].ok:
        out.append(Check("admin API nodes", "FAIL", "http://127.0.0.1:9200/admin/v1/nodes does not answer"))
    else:
        text = r["nodes"].stdout
        found = f'"{mlnode_id}"' in text
        out.append(Check("admin API nodes", "PASS" if found else "FAIL",
                         f"ML node {mlnode_id} {'listed' if found else 'NOT listed'}"))
    if r["report"].ok:
        try:
            rep = json.loads(r["report"].stdout)
            checks = rep.get("checks", []) if isinstance(rep, dict) else []
            failing = [str(c.get("id") or c.get("name") or "?") for c in checks
                       if isinstance(c, dict) and c.get("status") == "FAIL"]
            overall = rep.get("overall_status", "?") if isinstance(rep, dict) else "?"
            out.append(Check("setup report", "PASS" if not failing else "WARN",
                             f"overall {overall}, {len(checks)} checks" + (f", failing: {', '.join(failing)}" if failing else "")))
        except ValueError:
            out.append(Check("setup report", "WARN", "not JSON"))
    return out


def check_gpu(run, svc: str | None) -> list[Check]:
    if not svc:
        return [Check("CUDA", "FAIL", "no ML node service in docker-compose.mlnode.yml"),
                Check("PyTorch CUDA", "FAIL", "no ML node service")]
    r = run.remote.probe_many({
        "smi": compose(run, f"exec -T {svc} nvidia-smi --query-gpu=name,memory.total --format=csv,noheader", COMPOSE_ALL),
        "torch": compose(run, f"exec -T {svc} sh -c {q('python3 -c ' + q('import torch; print(torch.cuda.is_available())'))}",
                         COMPOSE_ALL),
    })
    smi = r["smi"]
    if smi.ok and smi.out:
        gpus = [ln.strip() for ln in smi.out.splitlines() if ln.strip()]
        cuda = Check("CUDA", "PASS", f"{len(gpus)} GPU(s): {'; '.join(gpus)}")
    else:
        cuda = Check("CUDA", "FAIL", f"nvidia-smi failed in {svc}: {(smi.out.splitlines() or ['no output'])[-1][:120]}")
    torch_out = r["torch"].out.splitlines()[-1:] or [""]
    ok = r["torch"].ok and torch_out[0].strip() == "True"
    torch = Check("PyTorch CUDA", "PASS" if ok else "FAIL",
                  "torch.cuda.is_available() is True" if ok else f"torch.cuda.is_available(): {torch_out[0][:120] or 'no answer'}")
    return [cuda, torch]


def mlnode_url(run, path: str) -> str:
    """An ML node endpoint as the server reaches it: the inference nginx publishes the ML node's API
    (8080) at PORT on INTERNAL_BIND_ADDRESS."""
    addr = run.cfg["INTERNAL_BIND_ADDRESS"] or "127.0.0.1"
    return f"http://{'127.0.0.1' if addr in ('0.0.0.0', '::') else addr}:{run.cfg['PORT']}{path}"


def _model_state(run) -> dict:
    """One round trip: the api's node state, and the ML node's model status and vLLM startup status."""
    body = json.dumps({"hf_repo": run.cfg["MODEL"], "hf_commit": None})  # what the api asks (nil = latest)
    r = run.remote.probe_many({
        "nodes": "curl -fsS -m 5 http://127.0.0.1:9200/admin/v1/nodes",
        "models": f"curl -sS -m 60 -X POST -H 'Content-Type: application/json' -d {q(body)} "
                  f"{q(mlnode_url(run, '/api/v1/models/status'))}",
        "up": f"curl -sS -m 5 {q(mlnode_url(run, '/api/v1/inference/up/status'))}",
    })
    out = {}
    for k in ("nodes", "models", "up"):
        try:
            out[k] = json.loads(r[k].stdout) if r[k].ok else None
        except ValueError:
            out[k] = None
    return out


def model_checks(run, st: dict) -> tuple[Check, Check]:
    """(ML node inference, ML node model cache) from `_model_state`'s answers."""
    cfg = run.cfg
    nid, model = cfg["ML_NODE_ID"], cfg["MODEL"]
    entry = next((n for n in st.get("nodes") or [] if isinstance(n, dict)
                  and (n.get("node") or {}).get("id") == nid), None)
    state = (entry or {}).get("state") or {}
    up = st.get("up") if isinstance(st.get("up"), dict) else {}
    current, reason = state.get("current_status"), state.get("failure_reason") or ""
    name = "ML node inference"
    if entry is None:
        inference = Check(name, "FAIL", f"ML node {nid} not in the api's node list (admin API)")
    elif current == "FAILED":
        inference = Check(name, "FAIL", f"{nid} is FAILED: {reason or 'no reason given'}"
                                        + (f"; vLLM: {up['error'][:300]}" if up.get("error") else ""))
    elif current == "INFERENCE":
        inference = Check(name, "PASS", f"{nid} serves {model} (INFERENCE)")
    elif up.get("status") == "failed":
        inference = Check(name, "FAIL", f"{nid} is {current}: vLLM did not start {model}: {up.get('error', '')[:300]}")
    else:
        inference = Check(name, "WARN", f"{nid} is {current or 'unknown'} (intended {state.get('intended_status')}); "
                                        f"vLLM start {up.get('status', 'unknown')}")
    status = (st.get("models") or {}).get("status") if isinstance(st.get("models"), dict) else None
    name = "ML node model cache"
    if status == "DOWNLOADED":
        cache = Check(name, "PASS", f"{model} found offline at main in {cfg.hf_home}")
    elif status == "DOWNLOADING":
        cache = Check(name, "WARN", f"the ML node is downloading {model} again: it did not find main offline in "
                                    f"{cfg.hf_home} (refs/main and its snapshot)")
    elif status in ("NOT_FOUND", "PARTIAL"):
        cache = Check(name, "WARN", f"the ML node does not find {model} at main offline ({status}): the api will "
                                    "have it downloaded again; rerun `fab download-model` to write refs/main")
    else:
        cache = Check(name, "WARN", f"no answer from the ML node's models/status at {mlnode_url(run, '')}")
    return inference, cache


def check_model_served(run) -> list[Check]:
    """The api's state of the ML node (FAILED names its reason) and whether the ML node finds the model
    in its cache. A vLLM start still under way is asked again for a short while."""
    for i in range(6):
        inference, cache = model_checks(run, _model_state(run))
        if inference.result != "WARN" or i == 5:
            return [inference, cache]
        time.sleep(1 + i)
    return [inference, cache]


def check_containers(run, services: list[str]) -> tuple[Check, list[facts.Container]]:
    r = run.remote.probe(compose(run, "ps -a --format json", COMPOSE_ALL))
    try:
        ps = facts.parse_compose_ps(r.stdout) if r.ok else []
    except facts.FactError as e:
        return Check("containers", "FAIL", str(e)), []
    if not services:
        return Check("containers", "FAIL", f"no services found in the compose files in {run.cfg.join_dir}"), ps
    by_service = {c.service: c for c in ps}
    down = [f"{s} ({by_service[s].state}, exit {by_service[s].exit_code})" if s in by_service else f"{s} (absent)"
            for s in services if not (s in by_service and by_service[s].running)]
    names = " ".join(q(c.name) for c in ps if c.name)
    restarts = {}
    if names:
        ins = run.remote.probe(f"docker inspect {names}")
        try:
            for item in json.loads(ins.stdout) if ins.ok else []:
                if isinstance(item, dict) and item.get("RestartCount"):
                    restarts[str(item.get("Name", "")).lstrip("/")] = item["RestartCount"]
        except ValueError:
            pass
    rs = f"; restarts: {', '.join(f'{k} {v}' for k, v in restarts.items())}" if restarts else ", no restarts"
    if down:
        return Check("containers", "FAIL", f"not running: {', '.join(down)}{rs}"), ps
    return Check("containers", "WARN" if restarts else "PASS", f"{len(services)} services running{rs}"), ps


def scan_logs(text: str, redact: Callable[[str], str]) -> list[str]:
    """Lines that look like trouble, quoted with their container (secrets masked).

    A line repeated (a container that restarts prints its error each time) is quoted once with
    its count; 'connection refused' counts only as a storm of REFUSED_STORM lines or more in one
    container.
    """
    hits: dict[tuple[str, str, str], int] = {}
    refused: dict[str, int] = {}
    for raw in text.splitlines():
        m = LOG_PREFIX.match(raw)
        svc, line = (m["svc"], m["line"].strip()) if m else ("", raw.strip())
        if REFUSED.search(line):
            refused[svc] = refused.get(svc, 0) + 1
            continue
        if BENIGN.search(line):
            continue
        for label, pat in ERROR_PATTERNS:
            if pat.search(line):
                # masked before cutting, so a cut can never leave part of a secret behind
                key = (svc, label, redact(line)[:160])
                hits[key] = hits.get(key, 0) + 1
                break
    out = [f"{label}{f' in {svc}' if svc else ''}: {quoted!r}{f' (x{n})' if n > 1 else ''}"
           for (svc, label, quoted), n in hits.items()]
    out += [f"connection refused storm{f' in {svc}' if svc else ''}: {n} lines"
            for svc, n in refused.items() if n >= REFUSED_STORM]
    return out


def check_logs(run) -> Check:
    r = run.remote.probe(compose(run, f"logs --tail {LOG_TAIL} --no-color", COMPOSE_ALL), log_output=False)
    hits = scan_logs(r.stdout + r.stderr, run.log.redact)
    if not hits:
        return Check("logs", "PASS", f"no error patterns in the last {LOG_TAIL} lines of each container")
    more = f" (+{len(hits) - 3} more)" if len(hits) > 3 else ""
    return Check("logs", "WARN", "; ".join(hits[:3]) + more)


def check_exposure(run) -> list[Check]:
    r = run.remote.probe("ss -Hltn 2>/dev/null || netstat -ltn 2>/dev/null | tail -n +3")
    ports = parse_listen_ports(r.stdout)
    out = []
    for p in EXPOSURE_PORTS:
        addrs = [a for a in ports.get(p, []) if not (a.startswith("127.") or a in ("::1", "localhost"))]
        if addrs:
            out.append(Check(f"port {p}", "WARN", f"listens on {', '.join(addrs)}: reachable from outside unless "
                                                  "a firewall in front blocks it (Docker bypasses UFW)"))
    if not out:
        out.append(Check("exposure", "PASS", f"ports {', '.join(map(str, EXPOSURE_PORTS))} not on public interfaces"))
    return out


# ---------------------------------------------------------------------------- driver
def run_checks(run) -> list[Check]:
    """Every check, in the order of the report. Containers are looked at first: a check of a service
    whose container is not running is not retried (its answer is not coming)."""
    cfg = run.cfg
    try:
        services = expected_services(run)
    except facts.FactError as e:
        services = []
        run.log.warn(f"cannot read the compose files: {e}")
    containers, ps = check_containers(run, services)
    up = {c.service for c in ps if c.running}

    def answer(fn: Callable[[], Check], needs: str | None = None) -> Check:
        return retrying(fn) if needs is None or needs in up else fn()

    checks = [answer(lambda: check_registered(run)), answer(lambda: check_rpc(run), "node")]
    port = published_rpc_port(ps)
    if port:
        checks.append(answer(lambda: check_published_rpc(run, port), "node"))
    checks.append(answer(lambda: check_http(run, "/", "dashboard"), "proxy"))
    checks.append(answer(lambda: check_http(run, "/health", "proxy health"), "proxy"))
    # what the network uses: behind NAT or a port forward it is not SERVER_IP:API_PORT
    public = cfg["PUBLIC_URL"].rstrip("/") + "/health"
    if public != server_url(run, cfg.api_port, "/health"):
        checks.append(answer(lambda: check_http(run, "/health", "public URL", url=public), "proxy"))
    checks += check_admin(run, cfg["ML_NODE_ID"])
    checks += check_gpu(run, mlnode_service(services))
    checks += check_model_served(run)
    checks.append(containers)
    checks.append(check_logs(run))
    checks += check_exposure(run)
    return checks


def verify(run) -> None:
    """Phase 7: every check, written to verification.txt/.json; any FAIL stops with exit 1."""
    cfg = run.cfg
    t0 = time.monotonic()
    run.remote.step = "verify"
    checks = run_checks(run)
    took = time.monotonic() - t0
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    lines = []
    for c in checks:
        line = f"{c.result:4} {c.name}: {c.detail}"
        lines.append(f"[{stamp}] {line}")
        # one line per check in the log; on a terminal the console shows the table below instead
        run.log.event(LOG_LEVEL[c.result], f"verify {line}", console=not run.log.rich)
    run.log.table(f"verify {cfg.key_name} ({cfg.server_ip})", ("result", "check", "detail"),
                  [(c.result, c.name, c.detail) for c in checks])
    counts = count_results(checks)
    summary = f"verification: {counts['PASS']} PASS, {counts['WARN']} WARN, {counts['FAIL']} FAIL in {took:.1f} s"
    lines.append(f"[{stamp}] {summary}")
    write_artefact(cfg.artefacts, "verification.txt", run.log.redact("\n".join(lines) + "\n"))
    write_artefact(cfg.artefacts, "verification.json", run.log.redact(json.dumps({
        "node": cfg.key_name, "server": cfg.server_ip, "time": stamp, "seconds": round(took, 2),
        "counts": counts, "checks": [{"name": c.name, "result": c.result, "detail": c.detail} for c in checks]}, indent=2) + "\n"))
    run.verification = counts
    if counts["FAIL"]:
        raise DeployError(f"{summary}; see {cfg.artefacts}/verification.txt")
    run.log.ok(summary)
