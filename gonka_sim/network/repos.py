"""Local bare git repositories standing in for the upstream repos a host deploy clones.

`build_repos(workdir)` makes, with real git, under ``workdir/srv/git``:

* ``gonka.git``: modelled on gonka-ai/gonka as far as a host deploy uses it (``deploy/join``
  compose files, config.env.template, node-config.json, nginx.conf; ``genesis/genesis.json``).
  Two commits: tag ``v0.2.11`` (images 0.2.11), then tag ``v0.2.12`` (images 0.2.12, plus a
  ``versiond`` service and a new template line); branch ``main`` points at the second.
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


def _bump(work: Path) -> None:
    """The second gonka release: new image tags, a versiond service, one more template line."""
    join = work / "deploy" / "join"
    compose = join / "docker-compose.yml"
    text = compose.read_text().replace(":0.2.11", ":0.2.12")
    text = text.replace("\n  bridge:\n", """
  versiond:
    image: ghcr.io/product-science/versiond:0.2.12
    container_name: versiond
    restart: always
    environment:
      - VERSIOND_ORACLE_URL=http://api:9100/versions
      - NODE_HOST=node
      - KEY_NAME=${KEY_NAME}
      - KEYRING_BACKEND=${KEYRING_BACKEND:-file}
      - KEYRING_PASSWORD=${KEYRING_PASSWORD}
    volumes:
      - .inference:/root/.inference:ro
    depends_on:
      - api

  bridge:
""", 1)
    compose.write_text(text)
    template = join / "config.env.template"
    template.write_text(template.read_text() + "export BEACON_STATE_URL=https://beaconstate.info/\n")


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
    where each repo entry is ``{"path": Path, "url": upstream URL, "refs": {"v0.2.11": sha, ...,
    "main": sha}}`` and ``insteadof`` maps ``file:///srv/git/<name>.git`` to its upstream URL
    (the lines of the hosts' /etc/gitconfig).
    """
    root = Path(workdir) / "srv" / "git"
    root.mkdir(parents=True, exist_ok=True)
    gonka = _make(root, "gonka", [("deploy/join for v0.2.11", "v0.2.11", _DATES[0], None),
                                  ("deploy/join: v0.2.12 images, versiond", "v0.2.12", _DATES[1], _bump)])
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


def provision_dir(workdir: str | os.PathLike) -> Path:
    """A tree holding ``srv/git/*.git`` and ``etc/gitconfig`` (built once per workdir) for
    ``SandboxHost.up(provision=...)``."""
    tree = Path(workdir) / "provision"
    if not (tree / "srv" / "git" / "gonka.git" / "HEAD").exists():
        build_repos(tree)
    (tree / "etc").mkdir(exist_ok=True)
    (tree / "etc" / "gitconfig").write_text(gitconfig())
    return tree
