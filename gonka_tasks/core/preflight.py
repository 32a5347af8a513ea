"""Preflight: every prerequisite of a Gonka host, checked read-only in one round trip.

`probes(cfg)` are the server commands (nothing they run changes the server); `evaluate()` turns
their answers into PASS / WARN / FAIL checks, each with a fix line. Pure apart from `probes`
naming the commands, so every verdict is table-tested. Any FAIL stops a deploy before its first
change (see `phases.preflight_gate`).

Sources of the thresholds (upstream gonka-docs `host/quickstart.md`, v0.2.13 `deploy/join`):
64 GB RAM for a network node and 1.5x the GPUs' memory on an ML-node server; CUDA 12.6-12.9;
Compose v2 with `depends_on.required` (Compose 2.20+), used by the proxy service; amd64 images.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from gonka_tasks.core import recipes
from gonka_tasks.core.checks import Check
from gonka_tasks.core.shell import COMPOSE_ALL, COMPOSE_MLNODE, q

GIB = 1024 ** 3
MIN_COMPOSE = (2, 20)  # `depends_on: {required: false}` in deploy/join/docker-compose.yml
MIN_DOCKER = (24, 0)
CUDA_RANGE = ((12, 6), (12, 9))  # quickstart: CUDA between 12.6 and 12.9
NETWORK_NODE_RAM_GB = 64
PROBE_TIMEOUT_S = 10


@dataclass
class Needs:
    """What this node needs from its server (computed from the config, the hub and the seed)."""

    ports: dict[int, tuple[str, str]] = field(default_factory=dict)
    """host port -> (address it is published on, what publishes it), e.g. 8000: ("0.0.0.0", "proxy (API_PORT)")."""
    model: str = ""
    gov: recipes.GovModel | None = None
    """The approved model's governance entry (v_ram, model_args); None = unknown."""
    model_args: tuple[str, ...] = ()
    model_bytes: int | None = None
    """Bytes of the model still to download onto the data disk; None = unknown."""
    image_bytes: int | None = None
    """Bytes of the images still to pull into Docker's data root; None = unknown."""
    data_disk: str = ""
    chain_bytes: int = 200 * 10 ** 9
    """Room kept for the chain's data on a fresh node (CHAIN_DATA_GB)."""
    gated: bool = False
    """HF_TOKEN is set: a 401/403 from the hub is a gated model, checked with the token later."""
    urls: dict[str, str] = field(default_factory=dict)
    """What the reach checks asked ("git", "hub", "seed"), named in their lines."""
    network_node: bool = True
    """False on an ML-node server (NODE_KIND=mlnode): no 64 GB RAM floor, no seed to reach."""


def _reach(url: str) -> str:
    """GET one URL: its body, then its HTTP status on the last line (000 when it cannot connect).
    curl, or python3 where curl is missing."""
    # a 5xx is retried twice (a seed busy for a moment is not a missing prerequisite)
    py = ("import sys,time,urllib.request as u,urllib.error as e\n"
          "for i in range(3):\n"
          f" try: r=u.urlopen(sys.argv[1],timeout={PROBE_TIMEOUT_S}); print(r.read(1<<20).decode('utf-8','replace')); "
          "print(r.status); break\n"
          " except e.HTTPError as x:\n"
          "  if x.code < 500 or i == 2: print(); print(x.code); break\n"
          "  time.sleep(1)\n"
          " except Exception: print(); print('000'); break")
    return (f"if command -v curl >/dev/null; then curl -s -m {PROBE_TIMEOUT_S} --retry 2 --retry-delay 1 "
            f"-w '\\n%{{http_code}}' {q(url)}; else python3 -c {q(py)} {q(url)}; fi")




def _images_probe(repo: str, ref: str, files: tuple[str, ...] = COMPOSE_ALL) -> str:
    """The compose files' images at GONKA_REF, read from the git remote into a temporary directory
    (removed again), each with the registry's manifest (asked in parallel), or `present` when
    Docker already has it."""
    shows = " ".join(f"FETCH_HEAD:deploy/join/{f}" for f in files)
    return (f"t=$(mktemp -d) && trap 'rm -rf \"$t\"' EXIT && git init -q \"$t/g\" && "
            f"timeout {PROBE_TIMEOUT_S * 6} git -C \"$t/g\" fetch -q --depth 1 {q(repo)} {q(ref)} && "
            f"git -C \"$t/g\" show {shows} | sed -n 's/^[[:space:]]*image:[[:space:]]*//p' | tr -d '\"'\\'' ' | "
            "sort -u > \"$t/images\" && "
            "have=$(docker image inspect --format '{{index .RepoTags 0}}' $(cat \"$t/images\") 2>/dev/null); i=0; "
            "while read -r img; do i=$((i+1)); "
            "if printf '%s\\n' \"$have\" | grep -qxF \"$img\"; then echo \"== $img present\" > \"$t/m$i\"; else "
            f"{{ echo \"== $img\"; timeout {PROBE_TIMEOUT_S * 3} docker manifest inspect -v \"$img\" 2>&1 | "
            "head -c 200000; echo; } > \"$t/m$i\" & fi; done < \"$t/images\"; wait; "
            "j=1; while [ $j -le $i ]; do cat \"$t/m$j\"; j=$((j+1)); done")


def reach_urls(cfg) -> dict[str, str]:
    """The remote, hub and seed URLs the reach checks ask."""
    hf = (cfg["HF_ENDPOINT"] or "https://huggingface.co").rstrip("/")
    return {"git": cfg["GONKA_REPO"], "hub": f"{hf}/api/models/{cfg['MODEL']}/revision/{cfg['MODEL_REVISION']}",
            "seed": f"{cfg.seed_api_url}/chain-rpc/status"}


def probes(cfg) -> dict[str, str]:
    """The read-only commands of one preflight (name -> command)."""
    urls = reach_urls(cfg)
    mlnode = getattr(cfg, "is_mlnode", False)
    out = {
        "os": ". /etc/os-release && echo \"$ID $VERSION_ID\" && uname -m",
        "docker": "docker version --format '{{.Server.Version}}' 2>&1",
        "compose": "docker compose version --short 2>&1",
        "runtimes": "docker info --format '{{json .Runtimes}}'",
        "docker_root": "d=$(docker info --format '{{.DockerRootDir}}' 2>/dev/null); d=${d:-/var/lib/docker}; "
                       "while [ ! -e \"$d\" ]; do d=$(dirname \"$d\"); done; df -PB1 \"$d\" | tail -n 1",
        "gpus": "nvidia-smi --query-gpu=name,memory.total --format=csv,noheader,nounits 2>&1",
        "cuda": "nvidia-smi 2>/dev/null | grep -o 'CUDA Version: [0-9.]*'",
        "mem": "grep -E '^MemTotal:' /proc/meminfo",
        "ports": "ss -Hltn 2>/dev/null || netstat -ltn 2>/dev/null | tail -n +3",
        "ours": "docker ps --format '{{.Names}} {{.Ports}}'",
        "git": f"timeout {PROBE_TIMEOUT_S * 2} git ls-remote -q --exit-code {q(cfg['GONKA_REPO'])} HEAD >/dev/null 2>&1; echo $?",
        "hub": _reach(urls["hub"] + "?blobs=true"),
        "seed": _reach(urls["seed"]),
        "registry": _images_probe(cfg["GONKA_REPO"], cfg["GONKA_REF"], COMPOSE_MLNODE if mlnode else COMPOSE_ALL),
        "data": f"df -PB1 {q(cfg.mount_point)} | tail -n 1; findmnt -n -o SOURCE --mountpoint {q(cfg.mount_point)}",
        "disk": f"lsblk -b -n -o SIZE,FSTYPE {q(cfg.data_disk)}",
        "cached": f"du -sb {q(cfg.hf_home + '/hub/models--' + cfg['MODEL'].replace('/', '--'))}",
        "chain": f"ls -d {q(cfg.join_dir + '/.inference/data')}",
    }
    if mlnode:  # an ML-node server runs no chain and never asks the seed
        del out["seed"], out["chain"]
    return out


def http_status(text: str) -> str:
    """The status line `_reach` prints last."""
    last = (text or "").rstrip().splitlines()[-1:] or [""]
    return last[0].strip()[-3:]


def model_bytes(text: str) -> int | None:
    """Sum of the siblings' sizes in a hub model-info answer (`?blobs=true`), or None."""
    body = "\n".join((text or "").rstrip().splitlines()[:-1])
    try:
        doc = json.loads(body)
        return sum(int(s.get("size") or 0) for s in doc.get("siblings", []) if isinstance(s, dict))
    except (ValueError, AttributeError, TypeError):
        return None


# ------------------------------------------------------------------------------------ parsing
def version_tuple(text: str) -> tuple[int, ...] | None:
    m = re.search(r"(\d+)\.(\d+)(?:\.(\d+))?", text or "")
    return tuple(int(x) for x in m.groups() if x is not None) if m else None


def parse_gpus(text: str) -> list[tuple[str, int]]:
    """`nvidia-smi --query-gpu=name,memory.total --format=csv,noheader,nounits` -> [(name, MiB)]
    ([] when it printed something else, e.g. an error)."""
    try:
        return [(g.name, g.memory_mib) for g in recipes.parse_gpus(text or "")]
    except ValueError:
        return []


def parse_df_avail(line: str) -> tuple[int, int, str] | None:
    """One `df -PB1` data line -> (size, available, mount point)."""
    parts = (line or "").split()
    if len(parts) >= 6 and parts[1].isdigit() and parts[3].isdigit():
        return int(parts[1]), int(parts[3]), parts[5]
    return None


def parse_listen_ports(text: str) -> dict[int, list[str]]:
    """`ss -Hltn` -> {port: [local addresses]}."""
    out: dict[int, list[str]] = {}
    for line in (text or "").splitlines():
        parts = line.split()
        if len(parts) < 4:
            continue
        addr, _, port = parts[3].rpartition(":")
        if port.isdigit():
            out.setdefault(int(port), []).append(addr.strip("[]"))
    return out


WILDCARDS = ("0.0.0.0", "::", "*", "")


def clashes(ours: str, theirs: str) -> bool:
    """Whether publishing on address `ours` collides with a listener on `theirs` (same port): the
    same address, or either one every address."""
    return ours in WILDCARDS or theirs in WILDCARDS or ours == theirs


def published_by_containers(text: str) -> dict[int, str]:
    """`docker ps --format '{{.Names}} {{.Ports}}'` -> {host port: container}."""
    out: dict[int, str] = {}
    for line in (text or "").splitlines():
        name, _, ports = line.strip().partition(" ")
        for m in re.finditer(r":(\d+)->\d+/", ports):
            out[int(m.group(1))] = name
    return out


def manifest_bytes(text: str) -> dict[str, int | str]:
    """`docker manifest inspect -v IMG` outputs, each after an `== IMG` line -> {image: bytes | error}.

    The verbose form lists each platform's manifest with its layers; the amd64 one counts (the
    Gonka images are built for linux/amd64)."""
    out: dict[str, int | str] = {}
    blocks = re.split(r"^== (\S+)( present)?\s*$", text or "", flags=re.M)
    for i in range(1, len(blocks) - 2, 3):
        image, present, body = blocks[i], blocks[i + 1], blocks[i + 2].strip()
        if present:
            out[image] = 0  # already pulled: nothing to transfer
            continue
        try:
            doc = json.loads(body)
        except ValueError:
            out[image] = (body.splitlines() or ["no answer"])[-1][:200]
            continue
        entries = doc if isinstance(doc, list) else [doc]
        size = None
        for e in entries:
            if not isinstance(e, dict):
                continue
            plat = ((e.get("Descriptor") or {}).get("platform") or {})
            if plat and (plat.get("architecture"), plat.get("os")) != ("amd64", "linux"):
                continue
            man = e.get("SchemaV2Manifest") or e.get("OCIManifest") or {}
            layers = man.get("layers") or []
            size = sum(int(la.get("size", 0)) for la in layers if isinstance(la, dict))
            break
        out[image] = size if size is not None else "no linux/amd64 manifest"
    return out


def gb(n: float) -> str:
    return f"{n / GIB:.1f} GiB" if n < 1024 * GIB else f"{n / GIB / 1024:.2f} TiB"


# ------------------------------------------------------------------------------------ verdicts
def evaluate(res: dict, needs: Needs) -> list[Check]:
    """The checks, in report order, from `probes()` results (name -> object with exit_code, stdout)."""
    def ok(name: str) -> bool:
        r = res.get(name)
        return r is not None and r.exit_code == 0

    def out(name: str) -> str:
        r = res.get(name)
        return (r.stdout if r is not None else "").strip()

    checks: list[Check] = []
    add = checks.append

    # OS and architecture
    words = out("os").split()
    arch = words[-1] if words else "?"
    if arch not in ("x86_64", "amd64"):
        add(Check("architecture", "FAIL", f"{arch}: the Gonka images are built for linux/amd64",
                  "use an x86_64 server"))
    elif words and words[0] in ("ubuntu", "debian"):
        add(Check("OS", "PASS", f"{' '.join(words[:2])}, {arch}"))
    else:
        add(Check("OS", "WARN", f"{' '.join(words[:2]) or 'unknown'}, {arch}: not Ubuntu/Debian (untested)",
                  "Ubuntu 22.04/24.04 is what the Gonka docs use"))

    # Docker Engine and Compose v2
    docker_out = out("docker")
    dv = version_tuple(docker_out) if ok("docker") else None
    if dv is None:
        if "not found" in docker_out or (res.get("docker") and res["docker"].exit_code == 127):
            add(Check("Docker Engine", "FAIL", "docker is not installed",
                      "install Docker Engine (docs.docker.com/engine/install) or rerun with --install-prereqs"))
        else:
            last = (docker_out.splitlines() or ["no answer"])[-1][:160]
            add(Check("Docker Engine", "FAIL", f"the Docker daemon does not answer: {last}",
                      "start it: systemctl enable --now docker"))
    elif dv < MIN_DOCKER:
        add(Check("Docker Engine", "WARN", f"{docker_out} is older than {'.'.join(map(str, MIN_DOCKER))}",
                  "upgrade Docker Engine"))
    else:
        add(Check("Docker Engine", "PASS", docker_out))
    cv = version_tuple(out("compose")) if ok("compose") else None
    if cv is None:
        add(Check("Compose v2 plugin", "FAIL", "`docker compose` is not available",
                  "apt-get install docker-compose-plugin (or rerun with --install-prereqs)"))
    elif cv < MIN_COMPOSE:
        add(Check("Compose v2 plugin", "FAIL", f"{out('compose')}: the gonka compose files need {'.'.join(map(str, MIN_COMPOSE))}+ "
                  "(depends_on.required)", "apt-get install --only-upgrade docker-compose-plugin"))
    else:
        add(Check("Compose v2 plugin", "PASS", out("compose")))

    # NVIDIA driver, GPUs, CUDA, container runtime
    gpus = parse_gpus(out("gpus")) if ok("gpus") else []
    if not ok("gpus"):
        last = (out("gpus").splitlines() or ["nvidia-smi not found"])[-1][:160]
        add(Check("NVIDIA driver", "FAIL", f"nvidia-smi: {last}",
                  "install the NVIDIA driver for the GPUs (apt: nvidia-driver-<version>) and reboot"))
    elif not gpus:
        add(Check("NVIDIA driver", "FAIL", "nvidia-smi lists no GPU", "check the GPUs and the driver (nvidia-smi)"))
    else:
        total = sum(m for _, m in gpus)
        names = sorted({n for n, _ in gpus})
        add(Check("GPUs", "PASS", f"{len(gpus)} x {', '.join(names)} ({total / 1024:.0f} GiB in all)"))
        cuda = version_tuple(out("cuda"))
        if cuda and not (CUDA_RANGE[0] <= cuda[:2] <= CUDA_RANGE[1]):
            add(Check("CUDA", "WARN", f"the driver reports CUDA {'.'.join(map(str, cuda))}; the docs ask for 12.6-12.9",
                      "install a driver whose CUDA version is in that range"))
    runtimes = out("runtimes")
    if dv is not None:
        try:
            known = json.loads(runtimes) if runtimes else {}
        except ValueError:
            known = {}
        if isinstance(known, dict) and "nvidia" in known:
            add(Check("NVIDIA container runtime", "PASS", "docker knows the nvidia runtime"))
        else:
            add(Check("NVIDIA container runtime", "FAIL",
                      f"docker's runtimes: {', '.join(sorted(known)) if isinstance(known, dict) and known else 'none'}",
                      "install nvidia-container-toolkit, then `nvidia-ctk runtime configure --runtime=docker` "
                      "and `systemctl restart docker` (or rerun with --install-prereqs)"))
    if gpus and needs.gov is not None:
        # the same recipe download-model and configure use: TP sized from v_ram and these GPUs
        try:
            recipe = recipes.derive(needs.model, list(needs.model_args), [recipes.Gpu(n, m) for n, m in gpus], needs.gov)
        except recipes.RecipeError as e:
            add(Check("GPU memory", "FAIL", e.message, e.hint))
        else:
            add(Check("GPU memory", "PASS", recipes.summary(needs.model, recipe, [recipes.Gpu(n, m) for n, m in gpus])))

    # memory
    m = re.search(r"MemTotal:\s+(\d+)\s*kB", out("mem"))
    if m:
        ram = int(m.group(1)) * 1024
        want = NETWORK_NODE_RAM_GB * 10 ** 9 if needs.network_node else 0
        gpu_total = sum(mb for _, mb in gpus) * 1024 ** 2
        if gpu_total:
            want = max(want, int(gpu_total * 1.5))
        if ram < want * 0.95:  # a "64 GB" server reports a little less
            add(Check("RAM", "WARN", f"{gb(ram)}; the docs ask for {gb(want)} (64 GB, and 1.5x the GPU memory)",
                      "expect the ML node to fail loading large models"))
        else:
            add(Check("RAM", "PASS", gb(ram)))

    # disk space: what is still to come (images not pulled, model bytes not in the cache)
    sizes = manifest_bytes(out("registry"))
    image_need = needs.image_bytes
    if image_need is None and sizes and all(isinstance(v, int) for v in sizes.values()):
        image_need = sum(v for v in sizes.values() if isinstance(v, int))
    model_need = needs.model_bytes
    if model_need is None and (total := model_bytes(out("hub"))) is not None:
        cached = out("cached").split()
        model_need = max(0, total - (int(cached[0]) if cached and cached[0].isdigit() else 0))
    chain_need = 0 if out("chain") else needs.chain_bytes
    root = parse_df_avail(out("docker_root"))
    if root is None:
        add(Check("disk (images)", "WARN", "cannot read the free space of Docker's data root", ""))
    elif image_need is None:
        add(Check("disk (images)", "WARN", f"{gb(root[1])} free at {root[2]}; image sizes unknown", ""))
    elif root[1] < image_need:
        add(Check("disk (images)", "FAIL", f"{gb(root[1])} free at {root[2]}, the images to pull need {gb(image_need)}",
                  f"free space on {root[2]} or move Docker's data-root to a bigger disk"))
    else:
        add(Check("disk (images)", "PASS", f"{gb(root[1])} free at {root[2]} for {gb(image_need)} of images to pull"))
    want_data = (model_need or 0) + chain_need
    data_lines = out("data").splitlines()
    mounted = len(data_lines) > 1 and data_lines[1].strip()
    data = parse_df_avail(data_lines[0]) if mounted else None
    disk_lines = [ln.split() for ln in out("disk").splitlines() if ln.strip()]
    blank = len(disk_lines) == 1 and len(disk_lines[0]) == 1 and disk_lines[0][0].isdigit()
    if data is not None:
        room, where = data[1], f"free on {data[2]}"
    elif blank:
        room, where = int(disk_lines[0][0]), f"on {needs.data_disk or 'the data disk'} (blank, not formatted yet)"
    else:
        room, where = None, ""
    if room is None and disk_lines:
        # a filesystem or partitions: prepare-server decides whether it may be used (never formats it)
        add(Check("disk (data)", "WARN", f"{needs.data_disk or 'DATA_DISK'} is not blank and MOUNT_POINT is not "
                  "mounted: its room is checked once prepare-server has mounted it", ""))
    elif room is None:
        add(Check("disk (data)", "WARN", "cannot read the data disk's size", "check DATA_DISK"))
    elif room < want_data:
        add(Check("disk (data)", "FAIL", f"{gb(room)} {where}; the model ({gb(model_need or 0)} still to download) "
                  f"and the chain ({gb(chain_need)} to start) need {gb(want_data)}", "use a bigger data disk"))
    elif model_need is None:
        add(Check("disk (data)", "WARN", f"{gb(room)} {where}; the model's size is unknown", ""))
    else:
        add(Check("disk (data)", "PASS", f"{gb(room)} {where} for {gb(want_data)} (model + chain)"))

    # ports the compose files publish
    listening = parse_listen_ports(out("ports"))
    ours = published_by_containers(out("ours"))
    busy = [f"{p} ({what})" for p, (addr, what) in sorted(needs.ports.items())
            if p not in ours and any(clashes(addr, other) for other in listening.get(p, []))]
    if busy:
        add(Check("ports", "FAIL", f"in use by another program: {', '.join(busy)}",
                  "stop what listens there (`ss -ltnp`), or change the port in the node config"))
    else:
        add(Check("ports", "PASS", f"{len(needs.ports)} published ports free or held by our containers"))

    # outbound reach
    def answered(name: str) -> str:
        code = http_status(out(name))
        return "no answer (cannot connect)" if code in ("", "000") else f"HTTP {code}"

    reach = [("git remote", out("git") == "0", f"{needs.urls.get('git', 'GONKA_REPO')}: git ls-remote fails",
              "check GONKA_REPO, DNS and the firewall"),
             ("model hub", http_status(out("hub")) == "200" or (needs.gated and http_status(out("hub")) in ("401", "403")),
              f"{needs.urls.get('hub', 'HF_ENDPOINT')}: {answered('hub')}",
              "check HF_ENDPOINT, MODEL, MODEL_REVISION, HF_TOKEN for gated models, and the firewall"),
             ("seed", http_status(out("seed")) == "200", f"{needs.urls.get('seed', 'SEED_API_URL')}: {answered('seed')}",
              "the seed fails (HTTP 5xx): try again later, or point SEED_API_URL at another seed"
              if http_status(out("seed")).startswith("5") else "check SEED_API_URL and the firewall")]
    for name, good, why, fix in [r for r in reach if r[0] != "seed" or "seed" in res]:  # no seed on an ML server
        add(Check(f"reach {name}", "PASS" if good else "FAIL", "reachable" if good else why, "" if good else fix))
    if "registry" in res:
        bad = {i: s for i, s in sizes.items() if not isinstance(s, int)}
        if bad and dv is None and all(re.search(r"not found|No such file", str(e)) for e in bad.values()):
            # no docker CLI to ask with: the Docker check says so
            add(Check("reach image registry", "WARN", "not asked: there is no docker CLI yet", ""))
        elif not sizes:
            add(Check("reach image registry", "WARN", "no image list: the compose files at GONKA_REF were not read",
                      "check GONKA_REPO and GONKA_REF"))
        elif bad:
            image, err = next(iter(bad.items()))
            add(Check("reach image registry", "FAIL", f"{image}: {err}",
                      "check the server's access to the registry (ghcr.io) and the image names in the compose files"))
        else:
            add(Check("reach image registry", "PASS", f"{len(sizes)} image manifests read"))
    return checks


def image_sizes(res: dict) -> dict[str, int]:
    """Image -> bytes, from the registry probe (only the ones that answered)."""
    r = res.get("registry")
    return {i: s for i, s in manifest_bytes(r.stdout if r else "").items() if isinstance(s, int)}
