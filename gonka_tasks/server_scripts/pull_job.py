"""Image pull job, uploaded by gonka-deploy and run ON THE SERVER with the system python3.

    pull_job.py pull --dir DEPLOY_JOIN --file docker-compose.yml --file ... --state-dir DIR

Pulls every image the compose files name that Docker does not have yet, up to PARALLEL images at
once, with `docker pull` (the daemon keeps the layers it finished: a pull cut short and started
again fetches only the rest). Progress (layers and bytes, from the registry's manifests) goes to
`state.json` in DIR, written atomically; the deployer shows it while anything waits. A failure
names the image and the registry's error; network trouble is retried with backoff, refusals
(denied, unknown manifest) are not. Started detached (setsid, every fd redirected), so a dropped
SSH connection does not stop it. Standard library only.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

PARALLEL = int(os.environ.get("GONKA_PULL_PARALLEL", "3"))
ATTEMPTS = int(os.environ.get("GONKA_PULL_ATTEMPTS", "5"))
MAX_WAIT_S = float(os.environ.get("GONKA_PULL_MAX_WAIT_S", "20"))
FINAL = re.compile(r"denied|unauthorized|manifest unknown|not found|no such host|invalid reference|"
                   r"no matching manifest", re.I)
LAYER = re.compile(r"^([0-9a-f]{12}): (Pull complete|Already exists)\s*$")


class State:
    """state.json: overall state plus one entry per image; every change written at once, atomically."""

    def __init__(self, path: Path, images: dict[str, dict]):
        self.path, self.images, self.lock = path, images, threading.Lock()
        self.state, self.error = "running", ""
        self.started = time.time()

    def update(self, image: str | None = None, **changes) -> None:
        with self.lock:
            if image:
                self.images[image].update(changes)
            doc = {"state": self.state, "error": self.error, "images": self.images,
                   "done": sum(i["bytes_done"] for i in self.images.values()),
                   "total": sum(i["bytes_total"] for i in self.images.values()),
                   "layers_done": sum(i["layers_done"] for i in self.images.values()),
                   "layers_total": sum(i["layers_total"] for i in self.images.values()),
                   "pid": os.getpid(), "started": self.started, "updated": time.time()}
            tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps(doc))
            os.replace(tmp, self.path)


def docker(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def compose_images(join: str, files: list[str]) -> list[str]:
    argv = ["compose", *[a for f in files for a in ("-f", f)], "config", "--images"]
    r = subprocess.run(["docker", *argv], cwd=join, capture_output=True, text=True, timeout=120,
                       stdin=subprocess.DEVNULL)
    if r.returncode:
        raise RuntimeError(f"docker compose config --images failed: {(r.stderr.strip().splitlines() or ['?'])[-1]}")
    return sorted({ln.strip() for ln in r.stdout.splitlines() if ln.strip()})


def layers_of(image: str) -> dict[str, int]:
    """{short digest: bytes} of the linux/amd64 manifest ({} when the registry does not say)."""
    r = docker("manifest", "inspect", "-v", image, timeout=60)
    try:
        doc = json.loads(r.stdout)
    except ValueError:
        return {}
    for entry in doc if isinstance(doc, list) else [doc]:
        plat = (entry.get("Descriptor") or {}).get("platform") or {}
        if plat and (plat.get("architecture"), plat.get("os")) != ("amd64", "linux"):
            continue
        layers = (entry.get("SchemaV2Manifest") or entry.get("OCIManifest") or {}).get("layers") or []
        return {la["digest"].split(":", 1)[-1][:12]: int(la.get("size", 0)) for la in layers}
    return {}


def pull_one(image: str, state: State) -> None:
    """`docker pull` with retries; layer lines move the progress."""
    sizes = layers_of(image)
    state.update(image, state="pulling", layers_total=len(sizes), bytes_total=sum(sizes.values()))
    last = ""
    for attempt in range(1, ATTEMPTS + 1):
        seen: set[str] = set()
        proc = subprocess.Popen(["docker", "pull", image], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                stdin=subprocess.DEVNULL)
        out = []
        for line in proc.stdout:
            out.append(line.rstrip())
            m = LAYER.match(line.strip())
            if m and m.group(1) not in seen:
                seen.add(m.group(1))
                state.update(image, layers_done=len(seen), bytes_done=sum(sizes.get(d, 0) for d in seen))
        if proc.wait() == 0:
            state.update(image, state="done", layers_done=len(sizes), bytes_done=sum(sizes.values()), error="")
            return
        last = next((ln for ln in reversed(out) if ln.strip()), f"docker pull exited {proc.returncode}")
        last = last.removeprefix("Error response from daemon: ")
        if FINAL.search(last) or attempt == ATTEMPTS:
            break
        wait = random.uniform(0.5, 1.0) * min(MAX_WAIT_S, 2 ** attempt)
        state.update(image, error=f"attempt {attempt} failed ({last}); retrying in {wait:.0f} s")
        time.sleep(wait)
    state.update(image, state="failed", error=last)
    raise RuntimeError(f"{image}: {last}")


def pull(args) -> int:
    d = Path(args.state_dir)
    d.mkdir(parents=True, exist_ok=True)
    state = State(d / "state.json", {})
    try:
        wanted = compose_images(args.dir, args.file)
    except (RuntimeError, OSError, subprocess.SubprocessError) as e:
        state.state, state.error = "failed", str(e)
        state.update()
        return 1
    missing = [i for i in wanted if docker("image", "inspect", i).returncode != 0]
    state.images.update({i: {"state": "waiting", "layers_done": 0, "layers_total": 0, "bytes_done": 0,
                             "bytes_total": 0, "error": ""} for i in missing})
    state.update()
    errors: list[str] = []
    queue = list(missing)
    qlock = threading.Lock()

    def worker() -> None:
        while True:
            with qlock:
                if not queue or errors:  # the first failure ends the job; what runs finishes
                    return
                image = queue.pop(0)
            try:
                pull_one(image, state)
            except (RuntimeError, OSError, subprocess.SubprocessError) as e:
                with qlock:
                    errors.append(str(e))

    threads = [threading.Thread(target=worker) for _ in range(max(1, min(PARALLEL, len(missing))))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    state.state = "failed" if errors else "complete"
    state.error = errors[0] if errors else ""
    state.update()
    return 1 if errors else 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="pull_job.py")
    sub = p.add_subparsers(dest="cmd", required=True)
    pp = sub.add_parser("pull")
    pp.add_argument("--dir", required=True)
    pp.add_argument("--file", action="append", required=True)
    pp.add_argument("--state-dir", required=True)
    args = p.parse_args(argv)
    return pull(args)


if __name__ == "__main__":
    sys.exit(main())
