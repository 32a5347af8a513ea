"""Model download job, uploaded by gonka-deploy and run ON THE SERVER with huggingface_hub's Python.

    hf_job.py check    --repo ORG/NAME --revision REV --state-dir DIR
    hf_job.py download --repo ORG/NAME --revision REV --state-dir DIR

`check` asks the hub for the revision's file list (one API call) and compares it with the HF
cache (`$HF_HOME/hub/models--ORG--NAME/snapshots/<sha>/`): every file present with the right
size. It prints one JSON line and exits 0 when complete, 1 when not, 2 when the hub cannot be
asked.

`download` fetches what is missing into the cache, GONKA_DL_WORKERS files at once (default 8,
the biggest first: hubs' CDNs cap each connection well below a server's link), checks each LFS
file's sha256 against the hub's (a mismatch is fetched again), and, once the snapshot is whole, writes
`refs/<REV>` for a branch or tag name, as huggingface_hub does on a download by name: the ML node
looks the model up offline by name (`main`) and finds it only through that ref; `check` counts a
missing ref as incomplete. Transient failures are retried with bounded, jittered backoff (tenacity); huggingface_hub resumes partial files (`.incomplete` + Range), so
finished files are never fetched again. It keeps `state.json` in the state dir up to date (state,
bytes done / total) for the deployer to show progress, and is started detached (setsid, all fds
redirected) so it survives the SSH connection dropping. The token, if any, is the hub's own
`$HF_HOME/token` file: nothing secret is ever on a command line.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import hashlib
import json
import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

ATTEMPTS = int(os.environ.get("GONKA_DL_ATTEMPTS", "8"))
# files fetched at once: hubs and their CDNs cap each connection well below a server's link
WORKERS = max(1, int(os.environ.get("GONKA_DL_WORKERS", "8")))
MAX_WAIT_S = float(os.environ.get("GONKA_DL_MAX_WAIT_S", "30"))
# Room the download leaves free on the data disk: the chain's data and the keyring live there too.
RESERVE_MIN, RESERVE_MAX, RESERVE_SHARE = 64 << 20, 2 << 30, 0.01
DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


class DiskFull(Exception):
    """The data disk has no room for the rest of the model: final, never retried."""


def room(path: Path) -> tuple[int, int]:
    """(bytes free for the download, bytes kept free) on the filesystem of `path`."""
    st = os.statvfs(path)
    reserve = int(min(max(st.f_blocks * st.f_frsize * RESERVE_SHARE, RESERVE_MIN), RESERVE_MAX))
    return st.f_bavail * st.f_frsize - reserve, reserve


def disk_full_message(path: Path, need: int) -> str:
    free, reserve = room(path)
    return (f"data disk full: the model needs {need} more bytes, {max(free, 0)} bytes are free on {path} "
            f"(keeping {reserve} free for the chain and the keys)")


def hub_dir(repo: str) -> Path:
    home = Path(os.environ.get("HF_HOME", str(Path.home() / ".cache" / "huggingface")))
    return home / "hub" / ("models--" + repo.replace("/", "--"))


def remote_files(repo: str, revision: str, hashes: dict[str, str] | None = None) -> tuple[str, dict[str, int]]:
    """(commit sha, {file name: size}) of the revision, from the hub; `hashes`, when given, gets the
    sha256 the hub states for each LFS file (the weights)."""
    from huggingface_hub import HfApi

    info = HfApi().model_info(repo, revision=revision, files_metadata=True)
    files = {s.rfilename: int(s.size or 0) for s in (info.siblings or [])}
    if hashes is not None:
        hashes.update({s.rfilename: s.lfs.sha256 for s in (info.siblings or [])
                       if s.lfs is not None and getattr(s.lfs, "sha256", None)})
    return info.sha, files


class HashMismatch(OSError):
    """A fetched file's sha256 is not the hub's: the file is dropped and fetched again (retried)."""


def check_hash(repo: str, sha: str, name: str, want: str) -> None:
    """sha256 of the snapshot's file against the hub's; a mismatch drops the file and raises."""
    p = hub_dir(repo) / "snapshots" / sha / name
    h = hashlib.sha256()
    with open(p, "rb") as f:
        while chunk := f.read(8 << 20):
            h.update(chunk)
    if h.hexdigest() != want:
        drop_bad(repo, sha, name)
        raise HashMismatch(f"{name}: sha256 {h.hexdigest()} is not the hub's {want}; fetching it again")


def ref_path(repo: str, revision: str) -> Path | None:
    """refs/<revision> in the cache, for a branch or tag name (a commit sha has none)."""
    if not revision or revision_is_sha(revision):
        return None
    return hub_dir(repo) / "refs" / revision


def revision_is_sha(revision: str) -> bool:
    return len(revision) == 40 and all(c in "0123456789abcdef" for c in revision)


def ref_ok(repo: str, revision: str, sha: str) -> bool:
    """refs/<revision> names `sha`: how an offline lookup by that name (the ML node's) finds the snapshot."""
    p = ref_path(repo, revision)
    if p is None:
        return True
    try:
        return p.read_text().strip() == sha
    except OSError:
        return False


def write_ref(repo: str, revision: str, sha: str) -> None:
    """refs/<revision> = sha, as huggingface_hub writes it on a download by name (atomically)."""
    p = ref_path(repo, revision)
    if p is None:
        return
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(f".{p.name}.tmp")
    tmp.write_text(sha)
    os.replace(tmp, p)


def compare(repo: str, sha: str, files: dict[str, int], revision: str = "") -> dict:
    """What of the revision is in the cache: present bytes, missing files, files of the wrong size,
    and whether refs/<revision> points at the snapshot (`ref_missing`)."""
    snap = hub_dir(repo) / "snapshots" / sha
    have, missing, bad = 0, [], []
    for name, size in sorted(files.items()):
        p = snap / name
        if not p.exists():
            missing.append(name)
        elif p.stat().st_size != size:
            bad.append(name)
        else:
            have += size
    total = sum(files.values())
    ref_missing = not ref_ok(repo, revision, sha)
    return {"complete": not missing and not bad and not ref_missing, "sha": sha, "total": total, "have": have,
            "missing": missing, "bad": bad, "files": len(files), "ref_missing": ref_missing}


def bytes_on_disk(repo: str, sha: str, files: dict[str, int]) -> int:
    """Finished files of the snapshot plus the partial blobs being written."""
    snap = hub_dir(repo) / "snapshots" / sha
    done = sum(size for name, size in files.items() if (snap / name).exists() and (snap / name).stat().st_size == size)
    blobs = hub_dir(repo) / "blobs"
    if blobs.is_dir():
        done += sum(p.stat().st_size for p in blobs.glob("*.incomplete"))
    return min(done, sum(files.values()))


def write_state(state_dir: Path, **fields) -> None:
    """state.json, replaced atomically so a reader never sees half of it. On a full disk (no block for
    a new file) it is overwritten in place instead: its own block holds it, and the deployer must
    still read why the job ended."""
    text = json.dumps({**fields, "updated": time.time()}).encode()
    tmp, path = state_dir / ".state.json.tmp", state_dir / "state.json"
    try:
        tmp.write_bytes(text)
        os.replace(tmp, path)
    except OSError as e:
        if e.errno not in DISK_FULL or not path.exists():
            raise
        with open(path, "r+b") as f:
            f.write(text)
            f.truncate()


def say(line: str) -> None:
    """A line in job.log (stdout); lost, not fatal, when the data disk holding the log is full."""
    with contextlib.suppress(OSError):
        print(line, flush=True)


def transient(e: BaseException) -> bool:
    """Worth another try: 5xx/429 answers, dropped or reset connections, timeouts, short reads.

    The client wraps HTTP errors (a missing file becomes "not found in the local cache", an
    OSError), so the whole chain of causes is asked for an HTTP status first: a 404 is final.
    """
    for cause in _chain(e):
        status = getattr(getattr(cause, "response", None), "status_code", None)
        if isinstance(status, int):
            return status >= 500 or status == 429
    if isinstance(e, DiskFull) or disk_full(e):
        return False
    mod = type(e).__module__ or ""
    return isinstance(e, OSError | TimeoutError | ConnectionError) or mod.startswith(("httpx", "httpcore", "requests", "urllib3"))


def _chain(e: BaseException):
    """The exception and its causes."""
    seen: set[int] = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        yield e
        e = e.__cause__ or e.__context__


def disk_full(e: BaseException) -> bool:
    return any(getattr(c, "errno", None) in DISK_FULL for c in _chain(e))


def drop_bad(repo: str, sha: str, name: str) -> None:
    """Remove a snapshot entry of the wrong size (and its blob) so it is fetched again."""
    p = hub_dir(repo) / "snapshots" / sha / name
    target = p.resolve() if p.is_symlink() else None
    p.unlink(missing_ok=True)
    if target and target.exists() and hub_dir(repo) in target.parents:
        target.unlink()


def download(args) -> int:
    from huggingface_hub import hf_hub_download
    from tenacity import retry, retry_if_exception, stop_after_attempt, wait_exponential_jitter

    state_dir = Path(args.state_dir)
    state_dir.mkdir(parents=True, exist_ok=True)
    # `started` stays in every state write: the deployer (and the bench) read the job's own duration
    base = {"pid": os.getpid(), "repo": args.repo, "revision": args.revision, "started": time.time(),
            "workers": WORKERS}
    write_state(state_dir, state="starting", **base)

    @retry(retry=retry_if_exception(transient), stop=stop_after_attempt(ATTEMPTS),
           wait=wait_exponential_jitter(initial=0.5, max=MAX_WAIT_S), reraise=True,
           before_sleep=lambda rs: say(f"retry {rs.attempt_number}/{ATTEMPTS} after: {rs.outcome.exception()!r}"))
    def with_retry(fn, *a, **kw):
        return fn(*a, **kw)

    hashes: dict[str, str] = {}
    try:
        sha, files = with_retry(remote_files, args.repo, args.revision, hashes)
    except Exception as e:
        write_state(state_dir, state="failed", error=f"cannot list the model's files: {e}", **base)
        say(f"failed: {e!r}")
        return 1
    total = sum(files.values())
    stop = threading.Event()

    def progress() -> None:
        while not stop.wait(1.0):
            write_state(state_dir, state="running", sha=sha, total=total,
                        done=bytes_on_disk(args.repo, sha, files), **base)

    t = threading.Thread(target=progress, daemon=True)
    write_state(state_dir, state="running", sha=sha, total=total, done=0, **base)
    t.start()
    try:
        status = compare(args.repo, sha, files)
        for name in status["bad"]:
            say(f"wrong size in cache, fetching again: {name}")
            drop_bad(args.repo, sha, name)
        todo = status["missing"] + status["bad"]
        need = sum(files[n] for n in todo) - bytes_on_disk(args.repo, sha, {n: files[n] for n in todo})
        cache = hub_dir(args.repo)
        cache.mkdir(parents=True, exist_ok=True)
        if need > room(cache)[0]:
            raise DiskFull(disk_full_message(cache, need))
        stopped = threading.Event()

        def fetch(name: str) -> None:
            if stopped.is_set():  # another file failed for good: start nothing new
                return
            say(f"fetching {name} ({files[name]} bytes)")

            def fetch_checked() -> None:
                hf_hub_download(args.repo, name, revision=sha)
                if name in hashes:  # sizes alone miss a corrupted body; the hub states the weights' sha256
                    check_hash(args.repo, sha, name, hashes[name])

            try:
                with_retry(fetch_checked)
            except BaseException as e:
                stopped.set()  # final (retries are inside): the other workers take nothing new
                if isinstance(e, OSError) and disk_full(e):
                    raise DiskFull(disk_full_message(cache, files[name])) from e
                raise

        # several files at once (each resumable on its own), the biggest first so the last ones end together
        todo.sort(key=lambda n: -files[n])
        with ThreadPoolExecutor(max_workers=min(WORKERS, max(1, len(todo)))) as pool:
            futures = [pool.submit(fetch, n) for n in todo]
            for f in as_completed(futures):
                if f.exception() is not None:
                    stopped.set()
                    for other in futures:
                        other.cancel()
                    raise f.exception()
        # the ref last, once the snapshot is whole: the ML node finds the files offline through it
        write_ref(args.repo, args.revision, sha)
        final = compare(args.repo, sha, files, args.revision)
        if not final["complete"]:
            raise RuntimeError(f"incomplete after download: missing {final['missing']}, wrong size {final['bad']}")
    except Exception as e:
        stop.set()
        t.join(timeout=10)  # its last "running" must not land after "failed"
        write_state(state_dir, state="failed", sha=sha, total=total, done=bytes_on_disk(args.repo, sha, files),
                    error=(str(e) if isinstance(e, DiskFull) else f"{type(e).__name__}: {e}")[:500], **base)
        say(f"failed: {e!r}")
        return 1
    stop.set()
    t.join()
    write_state(state_dir, state="complete", sha=sha, total=total, done=total, **base)
    say(f"complete: {len(files)} files, {total} bytes, revision {sha}")
    return 0


def check(args) -> int:
    try:
        sha, files = remote_files(args.repo, args.revision)
    except Exception as e:
        print(json.dumps({"error": f"{type(e).__name__}: {e}"[:500]}))
        return 2
    status = compare(args.repo, sha, files, args.revision)
    print(json.dumps(status))
    return 0 if status["complete"] else 1


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("mode", choices=["check", "download"])
    p.add_argument("--repo", required=True)
    p.add_argument("--revision", default="main")
    p.add_argument("--state-dir", required=True)
    args = p.parse_args(argv)
    return check(args) if args.mode == "check" else download(args)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
