"""Local bare git repositories standing in for the upstream repos a host deploy clones.

`build_repos(workdir)` makes, with real git, under ``workdir/srv/git``:

* ``gonka.git``: modelled on gonka-ai/gonka as far as a host deploy uses it (``deploy/join``
  compose files, config.env.template, node-config.json, nginx.conf; ``genesis/genesis.json``).
  The templates are upstream's release v0.2.13 (commit 17808620). Two commits: tag ``v0.2.12``
  (the templates turned back into upstream's v0.2.12 files by `_as_v0_2_12`, which undoes exactly
  upstream's v0.2.12 -> v0.2.13 diff of deploy/join), then tag ``v0.2.13`` (the templates as they
  are); branch ``main`` points at the second.
* ``prometheus.git``: a small compose repo (prometheus + node-exporter), one commit, tag
  ``v1.0.0``, branch ``main``.

Commits use fixed authors and dates, so the commit ids are the same on every build.
`provision_dir(workdir)` returns a tree to pass to ``SandboxHost.up(provision=[...])``: the repos
and the hosts' /etc/gitconfig, which maps the upstream URLs in `UPSTREAMS` onto ``/srv/git``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

TEMPLATES = Path(__file__).resolve().parent / "repo_templates"

UPSTREAMS = {
    "gonka": "https://github.com/gonka-ai/gonka.git",
    "prometheus": "https://github.com/gonka-sandbox/prometheus-monitoring.git",
}
"""Upstream URL of each repo; sandbox hosts rewrite it to file:///srv/git/<name>.git."""

GIT_TIMEOUT = 30.0
_DATES = ("2026-07-01T12:00:00+00:00", "2026-08-05T12:00:00+00:00")


def _git(cwd: Path, *args: str, date: str = _DATES[0]) -> str:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(cwd), "LANG": "C",
        "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_AUTHOR_NAME": "Gonka Sandbox", "GIT_AUTHOR_EMAIL": "sandbox@gonka.invalid",
        "GIT_COMMITTER_NAME": "Gonka Sandbox", "GIT_COMMITTER_EMAIL": "sandbox@gonka.invalid",
        "GIT_AUTHOR_DATE": date, "GIT_COMMITTER_DATE": date,
    }
    r = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=GIT_TIMEOUT)
    if r.returncode:
        raise RuntimeError(f"git {' '.join(args)} failed in {cwd}: {r.stderr.strip()}")
    return r.stdout.strip()


def _commit(work: Path, message: str, date: str) -> str:
    _git(work, "add", "-A", date=date)
    _git(work, "commit", "-q", "-m", message, date=date)
    return _git(work, "rev-parse", "HEAD", date=date)


def _as_v0_2_12(work: Path) -> None:
    """The release before v0.2.13, from upstream's diff of deploy/join between the two (d8b8e907 ->
    17808620): images 0.2.12, no QUERY_GAS_LIMIT for the node (nor in the template), and versiond's
    NODE_MANAGER_ADDR a literal ``api:9400``. mlnode compose, nginx.conf, node-config.json: unchanged."""
    join = work / "deploy" / "join"
    compose = join / "docker-compose.yml"
    text = compose.read_text()
    for image in ("tmkms-softsign-with-keygen", "inferenced", "api", "versiond", "proxy", "proxy-ssl"):
        text = text.replace(f"product-science/{image}:0.2.13", f"product-science/{image}:0.2.12")
    text = text.replace("      - QUERY_GAS_LIMIT=${QUERY_GAS_LIMIT:-10000000}\n", "")
    text = text.replace("NODE_MANAGER_ADDR=api:${NODE_MANAGER_GRPC_PORT:-9400}", "NODE_MANAGER_ADDR=api:9400")
    text = text.replace("at release v0.2.13 (upstream commit\n# 17808620)", "at release v0.2.12 (upstream commit\n# d8b8e907)")
    compose.write_text(text)
    template = join / "config.env.template"
    lines = template.read_text().split("\n\n")
    template.write_text("\n\n".join(b for b in lines if "QUERY_GAS_LIMIT" not in b))


def _restore_templates(work: Path) -> None:
    """The templates as they are (the newest release), over whatever an earlier step changed."""
    shutil.copytree(TEMPLATES / "gonka", work, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))


def _make(root: Path, name: str, steps) -> dict:
    """Build repo `name` from its template by applying `steps` [(message, tag, date, change)]."""
    bare = root / f"{name}.git"
    work = root / f".{name}.work"
    shutil.rmtree(bare, ignore_errors=True)
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(TEMPLATES / name, work, ignore=shutil.ignore_patterns("__pycache__"))
    _git(work, "init", "-q", "-b", "main")
    refs = {}
    for message, tag, date, change in steps:
        if change:
            change(work)
        refs[tag] = _commit(work, message, date)
        _git(work, "tag", "-a", tag, "-m", f"release {tag}", date=date)
    refs["main"] = _git(work, "rev-parse", "HEAD")
    _git(root, "clone", "-q", "--bare", str(work), str(bare))
    _git(bare, "update-server-info")
    shutil.rmtree(work)
    return {"path": bare, "url": UPSTREAMS[name], "refs": refs}


def build_repos(workdir: str | os.PathLike) -> dict:
    """Create ``workdir/srv/git/{gonka,prometheus}.git``; return what tests need to know.

    Returns ``{"root": Path(srv/git), "gonka": {...}, "prometheus": {...}, "insteadof": {...}}``
    where each repo entry is ``{"path": Path, "url": upstream URL, "refs": {"v0.2.12": sha, ...,
    "main": sha}}`` and ``insteadof`` maps ``file:///srv/git/<name>.git`` to its upstream URL
    (the lines of the hosts' /etc/gitconfig).
    """
    root = Path(workdir) / "srv" / "git"
    root.mkdir(parents=True, exist_ok=True)
    gonka = _make(root, "gonka", [("deploy/join as in release v0.2.12", "v0.2.12", _DATES[0], _as_v0_2_12),
                                  ("deploy/join as in release v0.2.13", "v0.2.13", _DATES[1], _restore_templates)])
    prometheus = _make(root, "prometheus", [("prometheus and node-exporter", "v1.0.0", _DATES[0], None)])
    return {
        "root": root, "gonka": gonka, "prometheus": prometheus,
        "insteadof": {f"file:///srv/git/{n}.git": u for n, u in UPSTREAMS.items()},
    }


def gitconfig() -> str:
    """The hosts' /etc/gitconfig: each upstream URL (with and without .git) read from /srv/git."""
    out = ["# gonka-sim sandbox host: upstream repositories come from local bare repos under /srv/git",
           "# (seeded by gonka_sim/network/repos.py). Longest matching prefix wins."]
    for name, url in UPSTREAMS.items():
        out += [f'[url "file:///srv/git/{name}.git"]', f"\tinsteadOf = {url}", f"\tinsteadOf = {url.removesuffix('.git')}"]
    return "\n".join(out) + "\n"


def fingerprint() -> str:
    """sha256 over the templates and this module: a cached build from other templates is stale."""
    import hashlib  # noqa: PLC0415

    h = hashlib.sha256(Path(__file__).read_bytes())
    for f in sorted(TEMPLATES.rglob("*")):
        if f.is_file() and "__pycache__" not in f.parts:
            h.update(str(f.relative_to(TEMPLATES)).encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()


def provision_dir(workdir: str | os.PathLike) -> Path:
    """A tree holding ``srv/git/*.git`` and ``etc/gitconfig`` for ``SandboxHost.up(provision=...)``;
    built once per workdir and rebuilt when the templates (or this module) changed since."""
    tree = Path(workdir) / "provision"
    stamp = Path(workdir) / "provision.fingerprint"  # outside the tree: never copied into a host
    want = fingerprint()
    have = stamp.read_text().strip() if stamp.exists() else ""
    if have != want or not (tree / "srv" / "git" / "gonka.git" / "HEAD").exists():
        build_repos(tree)
        stamp.write_text(want + "\n")
    (tree / "etc").mkdir(exist_ok=True)
    (tree / "etc" / "gitconfig").write_text(gitconfig())
    return tree
