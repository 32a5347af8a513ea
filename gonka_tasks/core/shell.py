"""Shell text that every command builder shares: quoting, the compose command lines of deploy/join,
and the backup idioms. Pure: strings in, strings out.

- `q` quotes one value for a POSIX shell; every value that is not a literal of ours goes through it.
- The compose files a node runs, and `docker compose` run in deploy/join with config.env sourced
  (its values reach compose through the environment, never through the command line).
- Backups: a timestamped copy beside the file; one private `<file>.bak` (for files holding the
  password, earlier copies removed); the first original kept once, never overwritten.
"""

from __future__ import annotations

import shlex

COMPOSE_BASE = ("docker-compose.yml",)
COMPOSE_MLNODE = ("docker-compose.mlnode.yml",)
COMPOSE_ALL = COMPOSE_BASE + COMPOSE_MLNODE
# the ML node image of MLNODE_IMAGE: a compose override beside the gonka files, untracked by git, so a
# `git checkout <release>` never trips over it
IMAGE_OVERRIDE = "gonka-deploy.mlnode-image.yml"


def q(value: str) -> str:
    """One value as one shell word."""
    return shlex.quote(value)


def in_join(join_dir: str, command: str, *, source_env: bool = True) -> str:
    """A command run in deploy/join, with config.env sourced (its values reach compose via the env)."""
    env = ". ./config.env && " if source_env else ""
    return f"cd {q(join_dir)} && {env}{command}"


def compose(join_dir: str, args: str, files: tuple[str, ...] = COMPOSE_BASE, *, source_env: bool = True) -> str:
    """`docker compose -f ... <args>` in deploy/join."""
    fs = " ".join(f"-f {q(f)}" for f in files)
    return in_join(join_dir, f"docker compose {fs} {args}", source_env=source_env)


def api_shell(join_dir: str, script: str) -> str:
    """`docker compose run` of a shell script in the api container; $VARS expand inside the container."""
    return compose(join_dir, f"run --rm --no-deps -T api sh -c {q(script)}")


def stamped_backup(path: str, backup: str) -> str:
    """Copy `path` to `backup` (mode and times kept): a dated copy the operator can go back to."""
    return f"cp -p {q(path)} {q(backup)}"


def private_backup(path: str, mode: int) -> str:
    """Keep ONE backup, `<path>.bak` (given `mode`, replaced each time): config.env's copies hold the
    keyring password, so the timestamped `.bak-*` copies of earlier versions are removed too."""
    bak = q(path + ".bak")
    # umask 077: the copy is never readable by others, not even before its chmod
    return (f"rm -f {q(path)}.bak-* && (umask 077 && cp {q(path)} {bak}.tmp && chmod {mode:o} {bak}.tmp "
            f"&& mv -f {bak}.tmp {bak})")


def keep_original(path: str, original: str) -> str:
    """Copy `path` to `original` once, the first time only; copied to a temp name first, so that a
    copy cut short (a full disk) never becomes "the original"."""
    o = q(original)
    return f"{{ [ -e {o} ] || {{ cp -p {q(path)} {o}.tmp && mv -f {o}.tmp {o}; }} || {{ rm -f {o}.tmp; exit 1; }}; }}"
