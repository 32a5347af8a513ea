"""The local package index: PEP 503 pages, and real pip/pipx installs from it without the internet."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from gonka_sim.network.pypi import SYSTEM_PYTHON, PackageIndex, _project_of, normalize_name, pip_conf_text

needs_system_python = pytest.mark.skipif(
    not Path(SYSTEM_PYTHON).exists(), reason=f"{SYSTEM_PYTHON} (what sandbox hosts use) is missing"
)


def get(url: str):
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without any PIP_* setting (they would point pip elsewhere)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "PIPX_", "VIRTUAL_ENV"))}
    env.update(extra)
    return env


@pytest.mark.parametrize(
    ("filename", "project"),
    [
        ("huggingface_hub-2.4.0-py3-none-any.whl", "huggingface-hub"),
        ("typing_extensions-4.16.0-py3-none-any.whl", "typing-extensions"),
        ("PyYAML-6.0.tar.gz", "pyyaml"),
        ("notes.txt", None),
    ],
)
def test_project_names(filename, project):
    assert _project_of(filename) == project
    assert normalize_name("Foo.Bar__baz") == "foo-bar-baz"


def test_pip_conf_text_points_at_index_only():
    text = pip_conf_text("http://10.200.3.1:4321/simple/")
    assert "index-url = http://10.200.3.1:4321/simple/" in text
    assert "trusted-host = 10.200.3.1\n" in text
    assert "find-links =\n" in text and "extra-index-url =\n" in text


def test_index_pages_on_a_fake_wheelhouse(tmp_path):
    (tmp_path / "Demo_Pkg-1.0-py3-none-any.whl").write_bytes(b"not really a zip")
    (tmp_path / "other-2.0.tar.gz").write_bytes(b"x")
    with PackageIndex(tmp_path) as idx:
        status, body = get(idx.index_url)
        assert status == 200 and 'href="demo-pkg/"' in body and 'href="other/"' in body
        status, body = get(f"{idx.index_url}demo-pkg/")
        assert status == 200
        assert re.search(r'href="../../files/Demo_Pkg-1.0-py3-none-any.whl#sha256=[0-9a-f]{64}"', body)
        # Non-normalized names redirect (urllib follows) to the normalized page.
        assert get(f"{idx.index_url}Demo_Pkg/")[0] == 200
        assert get(f"{idx.index_url}missing/")[0] == 404
        assert get(f"{idx.url}/files/other-2.0.tar.gz") == (200, "x")
        assert get(f"{idx.url}/files/..%2Fsecret")[0] == 404
        idx.wait_idle()
        assert idx.downloads["other-2.0.tar.gz"] == 1 and idx.bytes_served == 1


def test_real_wheelhouse_pages(pypi_index):
    status, body = get(f"{pypi_index.index_url}huggingface-hub/")
    assert status == 200 and "huggingface_hub-" in body
    assert 'data-requires-python="&gt;=' in body  # escaped as PEP 503 requires
    assert "hf-xet" in get(pypi_index.index_url)[1]


@needs_system_python
def test_pip_installs_huggingface_hub_from_index_only(pypi_index, tmp_path):
    env = clean_env(PIP_CONFIG_FILE=os.devnull, HOME=str(tmp_path))  # no machine config, no cache
    t0 = time.monotonic()
    subprocess.run([SYSTEM_PYTHON, "-m", "venv", str(tmp_path / "venv")], env=env, check=True, timeout=120)
    t1 = time.monotonic()
    r = subprocess.run(
        [str(tmp_path / "venv/bin/pip"), "install", "--disable-pip-version-check", "--no-cache-dir",
         "--index-url", pypi_index.index_url, "huggingface_hub"],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    t2 = time.monotonic()
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    r = subprocess.run(
        [str(tmp_path / "venv/bin/hf"), "version"], env=env, capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 0 and "version" in r.stdout
    pypi_index.wait_idle()
    assert any(n.startswith("huggingface_hub-") for n in pypi_index.downloads)
    print(f"venv {t1 - t0:.1f}s, pip install {t2 - t1:.1f}s")


@needs_system_python
@pytest.mark.skipif(shutil.which("pipx") is None, reason="pipx is not installed")
def test_pipx_install_with_user_pip_conf(pypi_index, tmp_path):
    # What a sandbox host gets: the machine's global pip config is still there; a per-user
    # pip.conf from pip_conf_text must override it so only the index is used.
    conf = tmp_path / ".config/pip/pip.conf"
    conf.parent.mkdir(parents=True)
    conf.write_text(pip_conf_text(pypi_index.index_url))
    env = clean_env(HOME=str(tmp_path), PIPX_HOME=str(tmp_path / "pipx"), PIPX_BIN_DIR=str(tmp_path / "bin"))
    env.pop("XDG_CONFIG_HOME", None)
    before = sum(pypi_index.downloads.values())
    r = subprocess.run(
        ["pipx", "install", "huggingface_hub"], env=env, capture_output=True, text=True, timeout=300
    )
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert (tmp_path / "bin/hf").exists()
    pypi_index.wait_idle()
    assert sum(pypi_index.downloads.values()) > before
    assert any(n.startswith("pip-") for n in pypi_index.downloads)  # pipx's shared-libs upgrade too
