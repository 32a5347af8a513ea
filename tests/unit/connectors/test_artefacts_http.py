"""Local artefacts are atomic and never silently replaced; the HTTP client's retry budget."""

from __future__ import annotations

import http.server
import json
import threading
import time

import pytest

from gonka_tasks.connectors.artefacts import write_artefact, write_atomic
from gonka_tasks.connectors.httpclient import HttpError, request
from gonka_tasks.errors import DeployError


def test_write_atomic_mode_and_no_temp_left(tmp_path):
    write_atomic(tmp_path / "d" / "f.txt", "x", 0o600)
    assert (tmp_path / "d" / "f.txt").stat().st_mode & 0o777 == 0o600
    assert [p.name for p in (tmp_path / "d").iterdir()] == ["f.txt"]


def test_write_once_files_refuse_different_content(tmp_path):
    write_artefact(tmp_path, "warm_key.txt", "one\n")
    assert (tmp_path / "warm_key.txt").stat().st_mode & 0o777 == 0o600
    write_artefact(tmp_path, "warm_key.txt", "one\n")  # same content: fine
    for name in ("warm_key.txt", "warm_address.txt", "volume.txt"):
        write_artefact(tmp_path, name, "one\n")
        with pytest.raises(DeployError, match="refusing to overwrite"):
            write_artefact(tmp_path, name, "two\n")
        assert (tmp_path / name).read_text() == "one\n"


def test_temp_files_of_a_killed_write_are_removed_by_the_next_write(tmp_path):
    """A run killed inside write_atomic leaves `.<name>.<random>.tmp` (maybe with a secret in it); the
    next write of that artefact removes it, even when the artefact itself is already there."""
    write_artefact(tmp_path, "volume.txt", "u\n")
    (tmp_path / ".volume.txt.k5qurr9t.tmp").write_text("u")
    (tmp_path / ".warm_key.txt.abc.tmp").write_text("half a mnemonic")
    (tmp_path / ".other.txt.x.tmp").write_text("not ours to touch yet")
    write_artefact(tmp_path, "volume.txt", "u\n")  # write-once, same content: no write, still swept
    write_artefact(tmp_path, "warm_key.txt", "w\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == [".other.txt.x.tmp", "volume.txt", "warm_key.txt"]


def test_other_artefacts_may_change(tmp_path):
    write_artefact(tmp_path, "registration.txt", "a")
    write_artefact(tmp_path, "registration.txt", "b")
    assert (tmp_path / "registration.txt").read_text() == "b"


class _Flaky(http.server.BaseHTTPRequestHandler):
    script: list = []
    hits: list = []

    def do_GET(self):  # noqa: N802
        self.hits.append(time.monotonic())
        code, headers = self.script.pop(0) if self.script else (200, {})
        self.send_response(code)
        for k, v in headers.items():
            self.send_header(k, v)
        body = json.dumps({"ok": code}).encode()
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


@pytest.fixture
def flaky():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Flaky)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    _Flaky.hits.clear()
    yield f"http://127.0.0.1:{srv.server_address[1]}", _Flaky
    srv.shutdown()
    srv.server_close()


def test_retries_5xx_and_honours_retry_after(flaky):
    url, h = flaky
    h.script[:] = [(503, {}), (429, {"Retry-After": "1"}), (200, {})]
    r = request(url + "/x", attempts=5, base_wait=0.01)
    assert r.status == 200 and len(h.hits) == 3
    assert h.hits[2] - h.hits[1] >= 0.9  # waited as the 429 asked


def test_404_is_an_answer_not_a_failure(flaky):
    url, h = flaky
    h.script[:] = [(404, {})]
    assert request(url + "/x").status == 404 and len(h.hits) == 1


def test_budget_exhausted_names_endpoint_and_status(flaky):
    url, h = flaky
    h.script[:] = [(502, {})] * 3
    with pytest.raises(HttpError) as e:
        request(url + "/v1/participants/x", attempts=3, base_wait=0.01, what="participant lookup")
    assert "HTTP 502" in str(e.value) and "/v1/participants/x" in str(e.value) and e.value.hint


def test_unreachable_fails_within_budget():
    t0 = time.monotonic()
    with pytest.raises(HttpError, match="ConnectionRefusedError|refused"):
        request("http://127.0.0.1:9/", attempts=2, base_wait=0.01)
    assert time.monotonic() - t0 < 5
