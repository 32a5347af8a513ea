"""Local Python package index (PEP 503 "simple" API) for sandbox hosts, which have no internet.

The harness builds a *wheelhouse* once per machine (``pip download`` run with the system
``/usr/bin/python3``, which is what a sandbox host's ``pip``/``pipx`` use, through whatever indexes
this machine's pip is configured with), then serves it over HTTP so that on a sandbox host
``pip install``/``pipx install huggingface_hub`` work with the index URL pointing here.

- :func:`build_wheelhouse` downloads (cached; a lock file serialises concurrent builders).
- :class:`PackageIndex` serves ``/simple/``, ``/simple/<project>/`` and ``/files/<wheel>``.
- :func:`pip_conf_text` is a pip config file pointing pip at the index and switching off any
  find-links / extra index inherited from the machine's global pip config.
"""

from __future__ import annotations

import collections
import contextlib
import email.parser
import fcntl
import hashlib
import html
import json
import os
import pwd
import re
import subprocess
import threading
import zipfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from urllib.parse import quote, unquote

from .httpbase import Knobs, Request, SimServer, route

__all__ = [
    "DEFAULT_PACKAGES",
    "PackageIndex",
    "WheelhouseError",
    "build_wheelhouse",
    "default_cache_dir",
    "normalize_name",
    "pip_conf_text",
]

DEFAULT_PACKAGES: tuple[str, ...] = ("huggingface_hub", "tenacity", "pip", "setuptools", "wheel")
"""What the deployer may install on a host. pip/setuptools/wheel are there because pipx upgrades
them in its shared venv on first use."""

SYSTEM_PYTHON = "/usr/bin/python3"


class WheelhouseError(RuntimeError):
    """Building the wheelhouse failed (no network, unknown package, ...)."""


def default_cache_dir() -> Path:
    """``$GONKA_SANDBOX_CACHE``, else ``~/.cache/gonka-deploy-sandbox`` of the real user.

    The home directory comes from the password database, not $HOME: tests point $HOME at
    temporary directories, and the cache must survive them.
    """
    env = os.environ.get("GONKA_SANDBOX_CACHE")
    if env:
        return Path(env)
    try:
        home = Path(pwd.getpwuid(os.getuid()).pw_dir)
    except KeyError:
        home = Path.home()
    return home / ".cache" / "gonka-deploy-sandbox"


def normalize_name(name: str) -> str:
    """PEP 503 project name normalization."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _project_of(filename: str) -> str | None:
    """Normalized project name of a wheel or sdist file name, None for other files."""
    if filename.endswith(".whl"):
        return normalize_name(filename.split("-", 1)[0])
    for ext in (".tar.gz", ".zip"):
        if filename.endswith(ext):
            return normalize_name(filename[: -len(ext)].rsplit("-", 1)[0])
    return None


def build_wheelhouse(
    dest: Path | str | None = None,
    packages: Sequence[str] = DEFAULT_PACKAGES,
    python: str = SYSTEM_PYTHON,
    timeout: float = 600,
    force: bool = False,
) -> Path:
    """Download binary wheels of ``packages`` (and dependencies) for ``python`` into ``dest``.

    ``dest`` defaults to ``<default_cache_dir()>/wheelhouse``. A stamp file records what was
    downloaded for which interpreter; a matching stamp makes this a no-op unless ``force``.
    Uses the machine's pip configuration as is (its indexes are how this machine reaches PyPI).
    """
    dest = Path(dest) if dest is not None else default_cache_dir() / "wheelhouse"
    dest.mkdir(parents=True, exist_ok=True)
    try:
        version = subprocess.run(
            [python, "-c", "import sys, platform; print(sys.version.split()[0], platform.machine())"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError) as exc:
        raise WheelhouseError(f"cannot run {python}: {exc}") from exc
    want = {"packages": sorted(packages), "python": python, "version": version}
    stamp = dest / ".stamp.json"
    with open(dest / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # xdist workers / parallel sessions build once
        if not force and stamp.is_file():
            with contextlib.suppress(ValueError, OSError):
                if json.loads(stamp.read_text()) == want and any(dest.glob("*.whl")):
                    return dest
        cmd = [
            python, "-m", "pip", "download",
            "--only-binary=:all:", "--disable-pip-version-check", "--no-input",
            "-d", str(dest), *packages,
        ]  # fmt: skip
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            raise WheelhouseError(f"pip download timed out after {timeout}s") from exc
        if proc.returncode != 0:
            tail = "\n".join((proc.stderr or proc.stdout).splitlines()[-15:])
            raise WheelhouseError(f"pip download failed (rc {proc.returncode}):\n{tail}")
        stamp.write_text(json.dumps(want))
    return dest


def pip_conf_text(index_url: str) -> str:
    """A pip config file that makes pip use only ``index_url``.

    Meant for a sandbox host's per-user config (``~/.config/pip/pip.conf``), which overrides the
    global ones: it blanks ``find-links`` and ``extra-index-url`` that a global config may set,
    and trusts the index's host (plain HTTP on a private address).
    """
    host = re.sub(r"^[a-z]+://", "", index_url).split("/", 1)[0]
    return (
        "[global]\n"
        f"index-url = {index_url}\n"
        f"trusted-host = {host.split(':')[0]}\n"
        "find-links =\n"
        "extra-index-url =\n"
        "disable-pip-version-check = true\n"
    )


class PackageIndex(SimServer):
    """PEP 503 simple index over a directory of wheels.

    ``index_url_for(ip)`` gives the URL for ``--index-url``/``PIP_INDEX_URL``. Counters besides
    the base ones: ``bytes_served`` and ``downloads`` (Counter of file names).
    """

    knobs_class = Knobs

    def __init__(
        self, wheelhouse: Path | str, host: str = "0.0.0.0", port: int = 0, knobs: Knobs | None = None
    ):
        self.wheelhouse = Path(wheelhouse)
        self._meta_cache: dict[tuple[str, float], str | None] = {}
        self._meta_lock = threading.Lock()
        super().__init__(host, port, knobs)
        self._routes = [
            ("GET", r"/simple/?", self._root),
            ("GET", r"/simple/([^/]+)/?", self._project),
            ("GET", r"/files/([^/]+)", self._file),
        ]

    def _reset_state(self) -> None:
        self.bytes_served = 0
        self.downloads: collections.Counter[str] = collections.Counter()

    def index_url_for(self, ip: str) -> str:
        return f"{self.url_for(ip)}/simple/"

    @property
    def index_url(self) -> str:
        return self.index_url_for("127.0.0.1")

    def projects(self) -> dict[str, list[Path]]:
        """Normalized project name -> its files, read from the wheelhouse now."""
        out: dict[str, list[Path]] = collections.defaultdict(list)
        for f in sorted(self.wheelhouse.iterdir()):
            name = _project_of(f.name)
            if name and f.is_file():
                out[name].append(f)
        return dict(out)

    def _requires_python(self, path: Path) -> str | None:
        key = (path.name, path.stat().st_mtime)
        with self._meta_lock:
            if key in self._meta_cache:
                return self._meta_cache[key]
        value = None
        if path.name.endswith(".whl"):
            with contextlib.suppress(OSError, zipfile.BadZipFile, KeyError), zipfile.ZipFile(path) as zf:
                meta = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
                msg = email.parser.BytesParser().parsebytes(zf.read(meta), headersonly=True)
                value = msg.get("Requires-Python")
        with self._meta_lock:
            self._meta_cache[key] = value
        return value

    def handle(self, req: Request) -> None:
        hit = route(self._routes, req)
        if hit is None:
            req.handler.send_text(404, "Not Found\n")
            return
        fn, groups = hit
        fn(req, *groups)

    def _page(self, req: Request, title: str, links: Iterable[str]) -> None:
        body = (
            '<!DOCTYPE html>\n<html>\n<head><meta name="pypi:repository-version" content="1.0">'
            f"<title>{html.escape(title)}</title></head>\n<body>\n"
            + "".join(f"{a}<br>\n" for a in links)
            + "</body>\n</html>\n"
        )
        req.handler.send_body(200, body.encode(), "text/html; charset=utf-8")

    def _root(self, req: Request) -> None:
        names = sorted(self.projects())
        self._page(req, "Simple index", (f'<a href="{quote(n)}/">{html.escape(n)}</a>' for n in names))

    def _project(self, req: Request, raw: str) -> None:
        name = unquote(raw)
        norm = normalize_name(name)
        if norm != name:
            req.handler.send_body(301, b"", "text/plain", {"Location": f"/simple/{quote(norm)}/"})
            return
        files = self.projects().get(norm)
        if not files:
            req.handler.send_text(404, "Not Found\n")
            return
        links = []
        for f in files:
            digest = _sha256_file(f)
            attrs = f'href="../../files/{quote(f.name)}#sha256={digest}"'
            rp = self._requires_python(f)
            if rp:
                attrs += f' data-requires-python="{html.escape(rp, quote=True)}"'
            links.append(f"<a {attrs}>{html.escape(f.name)}</a>")
        self._page(req, f"Links for {norm}", links)

    def _file(self, req: Request, raw: str) -> None:
        name = unquote(raw)
        path = self.wheelhouse / name
        if "/" in name or name.startswith(".") or not path.is_file():
            req.handler.send_text(404, "Not Found\n")
            return
        data = path.read_bytes()
        req.handler.send_body(200, data, "application/octet-stream")
        if req.method == "GET":
            with self.lock:
                self.bytes_served += len(data)
                self.downloads[name] += 1


_sha_cache: dict[tuple[str, float, int], str] = {}


def _sha256_file(path: Path) -> str:
    st = path.stat()
    key = (str(path), st.st_mtime, st.st_size)
    hit = _sha_cache.get(key)
    if hit is None:
        hit = hashlib.sha256(path.read_bytes()).hexdigest()
        _sha_cache[key] = hit
    return hit
