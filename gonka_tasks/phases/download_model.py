"""Phase 2, gonka and models: the gonka checkout at GONKA_REF, the HF cache dir, huggingface_hub,
and the model download as a job on the server that survives the SSH connection dropping.

The download runs detached on the server (`setsid nohup`, every fd redirected, a pid file and a
log under `<HF_HOME>/.gonka-download/`). This phase starts it or re-attaches to a running one,
shows progress from the job's `state.json`, and returns when the cache holds every file of the
revision with the right size. `deploy` starts it early and waits only before `launch`.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import time
from importlib import resources
from urllib.parse import urlsplit

from gonka_tasks.core import aptget, bindings, recipes
from gonka_tasks.core.shell import COMPOSE_ALL, q
from gonka_tasks.errors import DeployError
from gonka_tasks.phases import images, recipe
from gonka_tasks.phases.common import Snapshot, human, require, write_tracked
from gonka_tasks.phases.prepare_server import require_mounted

PIPX_HOME = "/opt/gonka-deploy/pipx"
PIPX_PYTHON = f"{PIPX_HOME}/venvs/huggingface-hub/bin/python"
JOB_NAME = "hf_job.py"


def job_dir(run) -> str:
    return f"{run.cfg.hf_home}/.gonka-download"


def _python_probe() -> str:
    """Print the first Python that can import huggingface_hub and tenacity (ours, then the hf CLI's)."""
    return (
        f"for py in {PIPX_PYTHON} $(for c in hf huggingface-cli; do p=$(command -v $c) && "
        "head -1 \"$p\" | sed -n 's/^#!//p' | cut -d' ' -f1; done); do "
        "[ -x \"$py\" ] && \"$py\" -c 'import huggingface_hub, tenacity' 2>/dev/null && { echo \"$py\"; exit 0; }; "
        "done; exit 1"
    )


def _job_running_probe(run) -> str:
    """Exit 0 and print `<pid> <command line>` when the job of the pid file runs."""
    d = job_dir(run)
    return (f"p=$(cat {q(d + '/pid')} 2>/dev/null) && kill -0 \"$p\" 2>/dev/null && "
            f"{{ printf '%s ' \"$p\"; tr '\\0' ' ' < /proc/$p/cmdline; }} | grep {JOB_NAME}")


def running_job(probe_out: str) -> tuple[str, str, str]:
    """(pid, repo, revision) of the running job, from the output of `_job_running_probe`."""
    words = probe_out.split()

    def arg(name: str) -> str:
        return words[words.index(name) + 1] if name in words[:-1] else ""
    return (words[0] if words else "?"), arg("--repo"), arg("--revision")


def snapshot(run) -> Snapshot:
    """Everything phase 2 checks before asking the hub, in one round trip."""
    cfg = run.cfg
    d, ref = q(cfg.gonka_dir), q(cfg["GONKA_REF"] + "^{commit}")
    probes = {
        "mount": f"findmnt -n -o SOURCE --mountpoint {q(cfg.mount_point)}",
        "exists": f"test -e {d}",
        "origin": f"git -C {d} config --get remote.origin.url",
        "head": f"git -C {d} rev-parse HEAD",
        "want": f"git -C {d} rev-parse -q --verify {ref}",
        "dirty": f"git -C {d} status --porcelain --untracked-files=no",
        "hfdir": f"test -d {q(cfg.hf_home)}",
        "py": _python_probe(),
        "job": f"sha256sum {q(job_dir(run) + '/' + JOB_NAME)}",
        "running": _job_running_probe(run),
        "gpus": recipe.GPU_PROBE,  # the recipe is checked before the download starts
        "images": images.present_probe(run),
    }
    if cfg["HF_TOKEN"]:
        probes["token"] = f"sha256sum {q(cfg.hf_home + '/token')}"
    return Snapshot(run, probes, what=f"gonka checkout, {cfg.hf_home}, huggingface_hub, download job")


# ---------------------------------------------------------------------------- gonka repo
def gonka_repo(run, snap: Snapshot) -> None:
    """GONKA_REPO cloned at GONKA_REF; an existing checkout is checked, never reset or cleaned."""
    cfg = run.cfg
    d, repo, ref = cfg.gonka_dir, cfg["GONKA_REPO"], cfg["GONKA_REF"]
    name = f"gonka repository at {ref}"
    if run.plan and not snap["mount"].out:
        # prepare-server would mount the data disk first: what MOUNT_POINT holds now is not what this
        # phase will find, so plan it as on the blank disk
        run.log.info(f"{cfg.mount_point} is not mounted yet (prepare-server would mount it): "
                     "planning this phase for the empty data disk")
        run.steps.run(name, lambda: (False, f"{cfg.mount_point} not mounted yet"), lambda: None)
        return
    require_mounted(run, snap["mount"].out)
    if snap["exists"].ok and not snap["origin"].ok:
        raise DeployError(f"{d} exists but is not a git checkout", "move it aside and rerun download-model")
    if snap["origin"].ok and snap["origin"].out != repo:
        raise DeployError(f"{d} is a clone of {snap['origin'].out}, not of GONKA_REPO {repo}",
                          "fix GONKA_REPO, or move the directory aside and rerun")

    def at_ref():
        if not snap["origin"].ok:
            return False, "not cloned"
        head, want = snap["head"].out, snap["want"].out
        if snap["want"].ok and head == want:
            return True, f"at {ref} ({head[:12]})"
        return False, f"at {head[:12]}, GONKA_REF {ref} is {want[:12] or 'unknown here'}"

    def clone():
        run.remote.run(f"mkdir -p {q(cfg.mount_point)} && git clone -q {q(repo)} {q(d)} && "
                       f"git -C {q(d)} -c advice.detachedHead=false checkout -q {q(ref)}",
                       what=f"git clone {repo} at {ref}", timeout=1800,
                       hint="check GONKA_REPO and GONKA_REF, and that the server reaches the git host")

    def update():
        # The deployer's own edits of tracked files (port bindings, node-config.json) would make git
        # refuse the checkout: restore exactly those, refuse over anyone else's, re-bind right after.
        run.remote.run(f"git -C {q(d)} fetch -q --tags origin", what=f"fetch {repo}", timeout=900,
                       hint="check that the server reaches the git host")
        dirty = run.remote.probe(f"git -C {q(d)} diff --name-only HEAD --").out.splitlines()
        ours: list[str] = []
        if dirty:
            files = {f"f{i}": rel for i, rel in enumerate(dirty)}
            probes = {"record": f"cat {q(bindings.record_path(cfg))}"}
            for key, rel in files.items():
                probes[f"{key}.now"] = f"cat {q(d + '/' + rel)}"
                # hashed on the server: a batched probe's output loses a file's final newline
                probes[f"{key}.sha"] = f"sha256sum < {q(d + '/' + rel)} | cut -d' ' -f1"
                probes[f"{key}.head"] = f"git -C {q(d)} show {q('HEAD:' + rel)}"
            r = run.remote.probe_many(probes, what="local changes in the gonka checkout")
            derivable = set()
            for key, rel in files.items():
                now, head = r[f"{key}.now"].stdout, r[f"{key}.head"].stdout
                if posixpath.dirname(rel) == bindings.JOIN_REL and posixpath.basename(rel) in COMPOSE_ALL \
                        and r[f"{key}.head"].ok and now == bindings.bound_text(cfg, head):
                    derivable.add(rel)  # exactly the committed file with our bindings
            current = {rel: r[f"{key}.sha"].out for key, rel in files.items() if r[f"{key}.now"].ok}
            ours, theirs = bindings.classify(dirty, current, bindings.parse_record(r["record"].stdout), derivable)
            if theirs:
                raise DeployError(f"cannot move the gonka checkout {d} to {ref}: tracked file(s) changed by someone "
                                  f"else than gonka-deploy: {', '.join(theirs)}",
                                  f"keep or drop those changes yourself (e.g. `git -C {d} stash`, or `git -C {d} "
                                  f"diff` to see them), then rerun with --update-repo")
            run.log.info(f"restoring the deployer's own edits before the checkout (re-applied after it): "
                         f"{', '.join(ours)}")
        restore = f"git -C {q(d)} checkout -q -- {' '.join(q(f) for f in ours)} && " if ours else ""
        try:
            run.remote.run(f"{restore}git -C {q(d)} -c advice.detachedHead=false checkout -q {q(ref)}",
                           what=f"move gonka checkout to {ref}", timeout=900,
                           hint="see git's message above; local changes in tracked files block the checkout")
        finally:
            rebind()  # at once, whatever happened: the compose files are never left unbound

    def rebind():
        """The port bindings in the compose files now checked out (configure/launch redo the rest)."""
        join = f"{d}/{bindings.JOIN_REL}"
        r = run.remote.probe_many({name: f"cat {q(join + '/' + name)}" for name in COMPOSE_ALL})
        for name in COMPOSE_ALL:
            text = r[name].stdout
            if r[name].ok and text.strip() and bindings.bound_text(cfg, text) != text:
                write_tracked(run, f"{join}/{name}", bindings.bound_text(cfg, text), mode=0o644,
                                       what=f"re-apply the port bindings of {name}")

    if not snap["origin"].ok:
        run.steps.run(name, at_ref, clone, refresh=snap.refresh)
        return
    done, detail = at_ref()
    if not done and not run.opt("update_repo"):
        run.log.warn(f"gonka checkout {d} is {detail}; leaving it as it is (rerun with --update-repo to move it)")
        return
    run.steps.run(name, at_ref, update, refresh=snap.refresh)
    if snap["dirty"].ok and snap["dirty"].out:
        run.log.info(f"gonka checkout has local changes (kept): "
                     f"{', '.join(ln[3:] for ln in snap['dirty'].out.splitlines())}")


# ------------------------------------------------------------------------- HF tools
def hf_tools(run, snap: Snapshot) -> None:
    """The HF cache dir, and pipx + huggingface_hub (the `hf` CLI) + tenacity on the server."""
    cfg = run.cfg
    # not mounted only happens in plan mode (gonka_repo stops otherwise): the dir would be on the new disk
    run.steps.run(f"model cache dir {cfg.hf_home}", lambda: snap["hfdir"].ok and bool(snap["mount"].out),
                  lambda: run.remote.run(f"mkdir -p {q(cfg.hf_home)}", what=f"mkdir {cfg.hf_home}"),
                  refresh=snap.refresh)

    def check():
        if snap["py"].ok:
            return True, f"huggingface_hub at {snap['py'].out}"
        return False, "huggingface_hub (hf CLI) not installed"

    index = ""
    if cfg["PIP_INDEX_URL"]:
        index = f"PIP_INDEX_URL={q(cfg['PIP_INDEX_URL'])} "
        parts = urlsplit(cfg["PIP_INDEX_URL"])
        if parts.scheme == "http":  # pip refuses plain-http mirrors unless told to trust the host
            index += f"PIP_TRUSTED_HOST={q(parts.hostname or '')} "
    env = f"PIPX_HOME={PIPX_HOME} PIPX_BIN_DIR=/usr/local/bin {index}"

    def install():
        # under a lock, re-checked inside it: an install left running by an interrupted run is waited
        # for (and then found done) instead of colliding with a second one
        script = (f"( {_python_probe()} ) >/dev/null && exit 0; "
                  f"command -v pipx >/dev/null || {{ {aptget.install_script(['pipx'])}; }} && "
                  f"{env}pipx install --force huggingface_hub >/dev/null && {env}pipx inject huggingface_hub tenacity")
        run.remote.run(f"mkdir -p {PIPX_HOME} && flock -w 1800 {PIPX_HOME}/.install.lock sh -c {q(script)}",
                       what="install pipx + huggingface_hub (hf CLI) + tenacity", timeout=1900,
                       hint="see the output above: the server needs a package index (PyPI, or PIP_INDEX_URL) "
                            "and apt for pipx; rerun once it is reachable")
    run.steps.run("huggingface_hub on the server", check, install, refresh=snap.refresh)


def job_script() -> str:
    return resources.files("gonka_tasks.server_scripts").joinpath(JOB_NAME).read_text()


def job_env(run) -> str:
    """Environment of the job: nothing secret (the token is the hub's own token file)."""
    cfg = run.cfg
    env = f"HF_HOME={q(cfg.hf_home)} HF_HUB_DISABLE_PROGRESS_BARS=1 GONKA_DL_WORKERS={int(cfg['DOWNLOAD_WORKERS'])} "
    if cfg["HF_ENDPOINT"]:
        env += f"HF_ENDPOINT={q(cfg['HF_ENDPOINT'])} "
    return env


def install_job(run, snap: Snapshot) -> None:
    """The job script and HF token on the server (token 0600, over stdin only); unchanged = nothing sent."""
    cfg = run.cfg
    script = job_script()
    if not snap["job"].out.startswith(hashlib.sha256(script.encode()).hexdigest()):
        run.remote.write_file(f"{job_dir(run)}/{JOB_NAME}", script, mode=0o644, what="upload the model download job")
    token = cfg["HF_TOKEN"]
    if token and not snap["token"].out.startswith(hashlib.sha256(token.encode()).hexdigest()):
        run.remote.write_file(f"{cfg.hf_home}/token", token, mode=0o600, what="HF token for the download job")


def model_status(run, py: str) -> dict:
    """Ask the hub (one API call, on the server) whether the cache holds the whole revision."""
    cfg = run.cfg
    r = run.remote.probe(f"{job_env(run)}{q(py)} {q(job_dir(run) + '/' + JOB_NAME)} check "
                         f"--repo {q(cfg['MODEL'])} --revision {q(cfg['MODEL_REVISION'])} --state-dir {q(job_dir(run))}",
                         what=f"model {cfg['MODEL']} complete in {cfg.hf_home}", timeout=120)
    try:
        status = json.loads(r.out.splitlines()[-1]) if r.out else {}
    except ValueError:
        status = {}
    if r.exit_code == 2 or "error" in status or not status:
        raise DeployError(f"cannot ask the model hub about {cfg['MODEL']}@{cfg['MODEL_REVISION']}: "
                          f"{status.get('error') or r.stderr.strip() or r.out or 'no answer'}",
                          "check MODEL / MODEL_REVISION, HF_TOKEN for gated models, HF_ENDPOINT, and the "
                          "server's internet access")
    return status


def start_job(run, py: str) -> None:
    cfg = run.cfg
    d = job_dir(run)
    # only the job goes to the background, with every fd redirected: otherwise the SSH channel
    # stays open until the download ends (a backgrounded `a && b &` list keeps the channel's fds)
    cmd = (f"cd {q(d)} && rm -f state.json && {{ {job_env(run)}setsid nohup {q(py)} {JOB_NAME} download "
           f"--repo {q(cfg['MODEL'])} --revision {q(cfg['MODEL_REVISION'])} --state-dir {q(d)} "
           f"</dev/null >>job.log 2>&1 & echo $! > pid; }}")
    run.remote.run(cmd, what=f"start the model download job ({cfg['MODEL']})")


def progress_line(state: dict, rate: float) -> str:
    done, total = state.get("done", 0), state.get("total", 0) or 0
    pct = f" ({100 * done / total:.0f}%)" if total else ""
    eta = f", ETA {int((total - done) / rate)} s" if rate > 0 and total else ""
    return f"model download: {human(done)} / {human(total)}{pct}, {human(rate)}/s{eta}"


def ensure_download(run, *, wait: bool, pull: bool = True) -> None:
    """Start (or re-attach to) the download job; with `wait`, show progress until complete.
    `pull=False`: leave the image pull to the caller (an ML-node server writes its files first)."""
    cfg = run.cfg
    snap = snapshot(run)
    gonka_repo(run, snap)
    # a model that cannot fit the GPUs is refused before a byte of it (or of the images) is downloaded
    models = recipe.governance_models(run)
    plan_recipe, gpus = recipe.model_recipe(run, snap["gpus"], models)
    run.log.info(recipes.summary(cfg["MODEL"], plan_recipe, gpus))
    if pull and snap["mount"].out:  # the compose files are there: the images are pulled meanwhile (not waited for here)
        images.ensure_pull(run, wait=False, snap=snap)
    hf_tools(run, snap)
    run.remote.step = "model download"
    fresh_job = (not snap["job"].out.startswith(hashlib.sha256(job_script().encode()).hexdigest())
                 or not snap["mount"].out)
    if run.plan and (fresh_job or not snap["py"].ok):
        run.log.info(f"PLAN would run: download {cfg['MODEL']}@{cfg['MODEL_REVISION']} into {cfg.hf_home}")
        return
    if not run.plan:
        install_job(run, snap)
    py = snap["py"].out
    status = model_status(run, py)
    recipe.check_revision(run, recipe.governance_entry(models, cfg["MODEL"]), status.get("sha", ""), plan_recipe)

    def complete():
        if status["complete"]:
            return True, f"{status['files']} files, {human(status['total'])}, revision {status['sha'][:12]}"
        if not status["missing"] and not status["bad"] and status.get("ref_missing"):
            # the files are there, but the ML node finds them offline only through the ref
            return False, f"refs/{cfg['MODEL_REVISION']} not written in the cache"
        return False, f"{len(status['missing'])} missing, {len(status['bad'])} wrong size"

    def act():
        if snap["running"].ok:
            pid, repo, rev = running_job(snap["running"].out)
            if (repo, rev) != (cfg["MODEL"], cfg["MODEL_REVISION"]):
                # waiting for it would end in "still not done" with our model untouched
                raise DeployError(f"a download job for another model ({repo}@{rev}, pid {pid}) is still running "
                                  f"on the server; MODEL is {cfg['MODEL']}@{cfg['MODEL_REVISION']}",
                                  f"let it finish, or stop it on the server (kill {pid}), then rerun download-model")
            run.log.info(f"a download job is already running on the server (pid {pid}): attaching to it")
        else:
            start_job(run, py)
        if wait:
            wait_download(run, py, files=f"{len(status['missing']) + len(status['bad'])} of {status.get('files', '?')} files "
                                         "to fetch")
            status.update(model_status(run, py))
        # without wait the job runs on; launch (or a rerun) waits for it

    run.steps.run(f"model {cfg['MODEL']} in {cfg.hf_home}", complete, act, recheck=wait)
    run.model_ready = bool(status["complete"])  # known complete in this run: launch need not ask again


def poll_job(run) -> tuple[bool, dict]:
    """(job process alive, state.json) in one round trip. Liveness is read first: the job writes its
    final state before it exits, so "not alive" with a "running" state really means it died."""
    r = run.remote.probe(f"if ( {_job_running_probe(run)} ) >/dev/null 2>&1; then echo alive; else echo gone; fi; "
                         f"cat {q(job_dir(run) + '/state.json')} 2>/dev/null")
    first, _, rest = r.stdout.partition("\n")
    try:
        state = json.loads(rest) if rest.strip() else {}
    except ValueError:
        state = {}
    return first.strip() == "alive", state if isinstance(state, dict) else {}


def wait_download(run, py: str, *, poll_s: float = 1.0, report_s: float = 5.0, files: str = "") -> None:
    """Follow the job's state.json until complete; a failed job stops with its reason.

    On a terminal a bar shows bytes, rate, ETA and `files` (what is left to fetch); the log gets
    `progress_line` every `report_s` (the console too without a terminal).
    """
    with run.log.progress("model download", unit="bytes") as update:
        total = _follow_job(run, update, poll_s=poll_s, report_s=report_s, files=files)
    run.log.ok(f"model download complete: {human(total)}")


def _follow_job(run, update, *, poll_s: float, report_s: float, files: str) -> int:
    """Poll until the job completes (returns the total bytes); DeployError when it failed or died."""
    last_report = 0.0
    pause = 0.2  # back off from fast polls to poll_s: a finished job is noticed at once
    samples: list[tuple[float, int]] = []
    started = time.monotonic()
    while True:
        alive, state = poll_job(run)
        s = state.get("state")
        now = time.monotonic()
        if s == "complete":
            update(state.get("total", 0), state.get("total") or None, files)
            return state.get("total", 0)
        if s == "failed":
            error = str(state.get("error", "see the job log"))
            fix = (f"make room on the data disk ({run.cfg.hf_home}) or use a bigger one, then rerun: finished "
                   "files are kept" if error.startswith("data disk full") else
                   f"see {job_dir(run)}/job.log on the server; rerun to resume the download")
            raise DeployError(f"model download failed: {error}", fix)
        if not alive and (state or now - started > 10):  # a job just started may not have exec'd yet
            raise DeployError("the model download job stopped without finishing" + ("" if state else " (no state)"),
                              f"see {job_dir(run)}/job.log on the server; rerun to resume the download")
        if "done" in state:
            samples = [(t, b) for t, b in samples if now - t < 15] + [(now, int(state["done"]))]
            span = samples[-1][0] - samples[0][0]
            rate = (samples[-1][1] - samples[0][1]) / span if span > 0 else 0.0
            line = None
            if now - last_report >= report_s:
                line = progress_line(state, rate)
                last_report = now
            update(int(state["done"]), state.get("total") or None, files, line=line)
        time.sleep(pause)
        pause = min(poll_s, pause * 1.6)


def download_model(run) -> None:
    """Phase 2."""
    ensure_download(run, wait=not run.opt("no_wait"))


def require_model(run) -> None:
    """launch needs the weights: wait for a running job, or check the cache."""
    if run.model_ready:
        return
    py = run.remote.probe(_python_probe())
    require(py.ok, "huggingface_hub is not installed on the server", "run `fab download-model` first")
    alive, state = poll_job(run)
    if alive:
        run.log.info("waiting for the model download to finish before launch")
        wait_download(run, py.out)
    elif state.get("state") == "failed":  # the job started by this deploy (or an earlier one) gave up
        raise DeployError(f"model download failed: {state.get('error', 'see the job log')}",
                          f"see {job_dir(run)}/job.log on the server; rerun `fab deploy` (or `fab download-model`) "
                          "to resume the download")
    status = model_status(run, py.out)
    require(status["complete"], f"model {run.cfg['MODEL']} is not complete on the server "
            f"({len(status['missing'])} missing, {len(status['bad'])} wrong size)", "run `fab download-model`")
