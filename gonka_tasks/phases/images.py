"""The images of both compose files, pulled by a detached job on the server while the model downloads.

Image pulls are 20-50 GB (the ML node's image alone is most of it) and used to be one blocking
`compose up` with no output, thrown away on a timeout. Here phase 2 starts `pull_job.py` next to
the model download; the job survives a dropped SSH connection and keeps the layers it finished.
start-base and launch wait for it (with progress: layers and bytes) only when they need images;
a failure names the image and the registry's error.
"""

from __future__ import annotations

import hashlib
import json
import time
from importlib import resources

from gonka_tasks.core.shell import q
from gonka_tasks.errors import DeployError
from gonka_tasks.phases.common import compose_files, human

JOB_NAME = "pull_job.py"
JOB_DIR = "/var/lib/gonka-deploy/pull"
PYTHON = "python3"


def job_script() -> str:
    return resources.files("gonka_tasks.server_scripts").joinpath(JOB_NAME).read_text()


def _running_probe() -> str:
    """Exit 0 when the job of the pid file runs (its command line names the job)."""
    return (f"p=$(cat {JOB_DIR}/pid 2>/dev/null) && kill -0 \"$p\" 2>/dev/null && "
            f"tr '\\0' ' ' < /proc/$p/cmdline | grep -q {JOB_NAME}")


def present_probe(run, files: tuple[str, ...] | None = None, services: tuple[str, ...] = ()) -> str:
    """Exit 0 when Docker has every image the compose files (default: the node's) name (or those of `services`)."""
    fs = " ".join(f"-f {f}" for f in files or compose_files(run))
    only = "".join(f" {q(s)}" for s in services)
    return (f"cd {q(run.cfg.join_dir)} && imgs=$(docker compose {fs} config --images{only}) && [ -n \"$imgs\" ] && "
            "docker image inspect $imgs >/dev/null 2>&1")


def poll(run, files: tuple[str, ...] | None = None, services: tuple[str, ...] = ()) -> tuple[bool, dict, bool]:
    """(job alive, state.json, the images of `files` (or `services`) all present) in one round trip;
    liveness first (the job writes its end state, then exits)."""
    present = f"if ( {present_probe(run, files, services)} ) >/dev/null 2>&1; then echo present; else echo absent; fi; " \
        if files else "echo absent; "
    r = run.remote.probe(f"if ( {_running_probe()} ) >/dev/null 2>&1; then echo alive; else echo gone; fi; "
                         f"{present}cat {JOB_DIR}/state.json 2>/dev/null")
    lines = r.stdout.split("\n", 2)
    rest = lines[2] if len(lines) > 2 else ""
    try:
        state = json.loads(rest) if rest.strip() else {}
    except ValueError:
        state = {}
    return (lines[0].strip() == "alive", state if isinstance(state, dict) else {},
            len(lines) > 1 and lines[1].strip() == "present")


def start(run, files: tuple[str, ...] | None = None) -> None:
    """Upload the job when it changed, then start it detached (every fd redirected, a pid file) for the
    images of `files` (default: the node's compose files)."""
    script = job_script()
    have = run.remote.probe(f"sha256sum {JOB_DIR}/{JOB_NAME}").out
    if not have.startswith(hashlib.sha256(script.encode()).hexdigest()):
        run.remote.write_file(f"{JOB_DIR}/{JOB_NAME}", script, mode=0o644, what="upload the image pull job")
    names = files or compose_files(run)
    args = " ".join(f"--file {q(f)}" for f in names)
    run.remote.run(f"cd {JOB_DIR} && rm -f state.json && {{ setsid nohup {PYTHON} {JOB_NAME} pull --dir "
                   f"{q(run.cfg.join_dir)} {args} --state-dir {JOB_DIR} </dev/null >>job.log 2>&1 & echo $! > pid; }}",
                   what=f"start the image pull job ({', '.join(names)})")


def ensure_pull(run, *, wait: bool, snap=None) -> None:
    """Step: every image of both compose files in Docker. Starts (or re-attaches to) the job.
    `snap`: a phase snapshot holding `present_probe` as "images" (saves a round trip)."""
    def check():
        ok = snap["images"].ok if snap is not None else run.remote.probe(present_probe(run)).ok
        return ok, "all images present" if ok else "images to pull"

    def act():
        alive, _, _ = poll(run)
        if alive:
            run.log.info("an image pull job is already running on the server: attaching to it")
        else:
            start(run)
        if wait:
            wait_pull(run)

    name = "images of both compose files pulled" if not run.cfg.is_mlnode else "ML node images pulled"
    run.steps.run(name, check, act, recheck=wait)


def progress_line(state: dict) -> str:
    done, total = state.get("done", 0), state.get("total", 0)
    pulling = [i.rsplit("/", 1)[-1] for i, s in (state.get("images") or {}).items() if s.get("state") == "pulling"]
    now = f", pulling {', '.join(pulling)}" if pulling else ""
    return (f"image pull: {state.get('layers_done', 0)}/{state.get('layers_total', 0)} layers, "
            f"{human(done)} / {human(total)}{now}")


def failure(state: dict) -> DeployError:
    return DeployError(f"image pull failed: {state.get('error') or 'see the job log'}",
                       f"check the image name and the server's access to its registry (see {JOB_DIR}/job.log); "
                       "rerun to resume the pull (finished layers are kept)")


def wait_pull(run, files: tuple[str, ...] | None = None, services: tuple[str, ...] = (), *, poll_s: float = 1.0,
              report_s: float = 5.0) -> None:
    """Follow the job until it completes, or until the images of `files` are there (the rest may
    still be pulling); its failure (or death) stops the run with the reason."""
    started = time.monotonic()
    last = 0.0
    pause = 0.2
    with run.log.progress("image pull", unit="bytes") as update:
        while True:
            alive, state, present = poll(run, files, services)
            s = state.get("state")
            if s == "complete" or present:
                update(state.get("done", 0), state.get("total") or None, "")
                break
            if s == "failed":
                raise failure(state)
            if not alive and (state or time.monotonic() - started > 10):
                raise DeployError("the image pull job stopped without finishing",
                                  f"see {JOB_DIR}/job.log on the server; rerun to resume the pull")
            if state:
                line = None
                if time.monotonic() - last >= report_s:
                    line, last = progress_line(state), time.monotonic()
                update(state.get("done", 0), state.get("total") or None,
                       f"{state.get('layers_done', 0)}/{state.get('layers_total', 0)} layers", line=line)
            time.sleep(pause)
            pause = min(poll_s, pause * 1.6)
    if s == "complete":
        run.log.ok(f"images pulled: {human(state.get('total', 0))}")
    else:
        run.log.ok("the images needed now are pulled (the job goes on with the rest)")


def require_images(run, files: tuple[str, ...], services: tuple[str, ...] = ()) -> None:
    """Before a `compose up`: the images it needs (of `services`, else all of `files`) are there,
    waiting for the pull job if it runs. A stand-alone task (no job started yet) starts one and waits."""
    if run.plan:
        return
    alive, state, present = poll(run, files, services)
    if present:
        return
    if not alive and state.get("state") == "failed":
        raise failure(state)
    if not alive:
        start(run, files)
    run.log.info("waiting for the image pull before starting containers")
    wait_pull(run, files, services)
