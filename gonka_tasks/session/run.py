"""One run against one node: config, log, confirmation, connection, and the error boundary.

The CLI starts a run per node (`start_run`) and hands the phase work to `guarded`. Every expected failure
(a `DeployError`) ends as one ERROR line in the log and exit code 1, without a traceback; an
unexpected exception is reported the same way, its traceback going to the log file only.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gonka_tasks.config import NodeConfig, load, resolve_node_path
from gonka_tasks.connectors.artefacts import write_artefact
from gonka_tasks.connectors.remote import Remote
from gonka_tasks.connectors.ssh import connect
from gonka_tasks.errors import ConfigError, DeployError
from gonka_tasks.session.filemodes import check_artefact_dir, config_mode_warning, tighten_secrets
from gonka_tasks.session.log import RunLog, log_path
from gonka_tasks.session.step import Steps
from gonka_tasks.session.target import Target, configured_user, resolve_target


@dataclass
class Run:
    """Everything a phase needs for one node: config, log, remote, steps, options."""

    cfg: NodeConfig
    log: RunLog
    target: Target
    opts: dict[str, Any] = field(default_factory=dict)
    _remote: Remote | None = None
    steps: Steps = None  # type: ignore[assignment]
    started: float = field(default_factory=time.monotonic)
    last_error: str = ""
    verification: dict | None = None
    status_rows: list | None = None
    model_ready: bool = False  # the model was found complete earlier in this run
    fabric_config: Any = None  # the task's Fabric config: fabric.yaml, FABRIC_* env, -i, -S, --prompt-for-passphrase
    # read-only probes asked in the same round trip as the root check (the preflight's); their
    # answers are kept when the login user is root (a sudo user's are asked again through sudo)
    prefetch: dict[str, str] = field(default_factory=dict)
    prefetched: dict | None = None

    def __post_init__(self) -> None:
        if self.steps is None:
            self.steps = Steps(self.log, plan=self.plan, on_step=self._set_step)

    @property
    def plan(self) -> bool:
        return bool(self.opts.get("plan"))

    def opt(self, name: str, default: Any = None) -> Any:
        return self.opts.get(name, default)

    def _set_step(self, name: str) -> None:
        if self._remote:
            self._remote.step = name

    @property
    def remote(self) -> Remote:
        """The connection, opened on first use and reused for the whole run."""
        if self._remote is None:
            self._remote = open_remote(self)
        return self._remote

    @property
    def connected(self) -> bool:
        return self._remote is not None

    def close(self) -> None:
        if self._remote is not None:
            # closing a dead connection must not mask the real error
            with contextlib.suppress(Exception):
                self._remote.conn.close()
        self.log.close()


def open_remote(run: Run) -> Remote:
    """Connect, then make sure the login user can run root commands (directly or with sudo -n)."""
    cfg, t = run.cfg, run.target
    key = cfg.ssh_key
    if key and not Path(key).expanduser().is_absolute():
        key = str(cfg.project_dir / key)
    conn = connect(t.alias, user=t.user, port=t.port, known_hosts=cfg.artefacts / "known_hosts",
                   key_filename=key, log=run.log, accept_new_host_key=bool(run.opt("accept_new_host_key")),
                   config=run.fabric_config)
    remote = Remote(conn, run.log, plan=run.plan)
    root_probe = 'id -u; sudo -n true 2>/dev/null && echo sudo-ok || echo sudo-no'
    if run.prefetch:
        answers = remote.probe_many({"root": root_probe, **run.prefetch}, what="root access")
        r = answers["root"]
    else:
        answers, r = {}, remote.probe(root_probe, what="root access")
    lines = r.out.splitlines()
    if lines and lines[0] == "0":
        run.prefetched = {k: answers[k] for k in run.prefetch} if run.prefetch else None
    elif "sudo-ok" in lines:
        remote.use_sudo = True
        run.log.info(f"{t.user} is not root: commands run through sudo -n")
    else:
        raise DeployError(f"{t.user}@{t.host} cannot run root commands (not root, and `sudo -n` asks for a password)",
                          "log in as root (SSH_USER=root) or give the user passwordless sudo")
    return remote


# ------------------------------------------------------------------------ confirmation
_confirm_lock = threading.Lock()
_confirmed: set[str] = set()


def confirm(question: str, *, yes: bool, key: str = "proceed") -> None:
    """Ask `question (yes/no)` once per process; --yes skips it; no TTY without --yes is an error."""
    with _confirm_lock:
        if yes or key in _confirmed:
            return
        if not sys.stdin or not sys.stdin.isatty():
            raise DeployError("confirmation needed but there is no terminal to ask on",
                              "rerun with --yes once you have checked the parameters")
        while True:
            answer = input(f"{question} (yes/no): ").strip().lower()
            if answer in ("yes", "y"):
                _confirmed.add(key)
                return
            if answer in ("no", "n", ""):
                raise DeployError("stopped at the confirmation prompt; nothing was changed")


def parameter_rows(cfg: NodeConfig, target: Target) -> list[tuple[str, str]]:
    """(name, value) of the node's parameters, secrets masked; the target first."""
    return [("target", str(target))] + cfg.display_rows()


def parameters_table(cfg: NodeConfig, target: Target) -> str:
    """The node's parameters as a plain text table, secrets masked."""
    rows = parameter_rows(cfg, target)
    width = max(len(k) for k, _ in rows)
    lines = []
    for k, v in rows:
        vs = v.splitlines() or [""]
        lines.append(f"{k.ljust(width)}  {vs[0]}")
        lines += [f"{' ' * width}  {x}" for x in vs[1:]]
    return "\n".join(lines)


# ---------------------------------------------------------------------------- runner
def load_node(node: str, project_dir: Path | None = None) -> NodeConfig:
    """A node by path or bare name (`node1` = the project's nodes/node1.conf)."""
    project = project_dir or Path.cwd()
    return load(resolve_node_path(node, project / "nodes"), project)


def quiet_paramiko() -> None:
    """paramiko prints socket errors to stderr on a dropped connection; the run log reports it instead."""
    logger = logging.getLogger("paramiko")
    if not any(isinstance(h, logging.NullHandler) for h in logger.handlers):
        logger.addHandler(logging.NullHandler())
    logger.propagate = False


def start_run(cfg: NodeConfig, *, host_string: str | None, opts: dict[str, Any], console=None,
              prefix: str = "", fabric_config=None) -> Run:
    """Create the log for a node and resolve its target (no connection yet).

    First the file modes of the local secrets: an artefact folder that others could write to is
    refused before anything is written to it; a readable config warns; open secret files are fixed.
    """
    quiet_paramiko()
    check_artefact_dir(cfg.artefacts)
    log = RunLog(log_path(cfg.logs_dir, cfg.key_name), secrets=cfg.secrets, console=console, prefix=prefix)
    log.info(f"gonka-deploy: node {cfg.path} (KEY_NAME {cfg.key_name}); log {log.path}")
    for w in cfg.warnings:
        log.warn(w)
    warning = config_mode_warning(cfg.path)
    if warning:
        log.warn(warning)
    fixed = tighten_secrets(cfg.artefacts)
    if fixed:
        more = f" and {len(fixed) - 10} more" if len(fixed) > 10 else ""
        log.warn(f"secret artefacts were readable by others, made private again: {', '.join(fixed[:10])}{more}")
    ssh_config = getattr(fabric_config, "base_ssh_config", None)
    target = resolve_target(cfg, host_string, ssh_config, fabric_user=configured_user(fabric_config))
    return Run(cfg=cfg, log=log, target=target, opts=opts, fabric_config=fabric_config)


def report_config_error(node: str, err: ConfigError, console=None, prefix: str = "") -> None:
    """Config errors come before the log exists: print them in the log's format on the console."""
    out = console or sys.stdout
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    for line in str(err).splitlines():
        out.write(f"[{stamp}] {prefix}[ERROR] {line}\n")
    out.flush()


def guarded(run: Run, work: Callable[[Run], Any]) -> int:
    """Run `work`, turning failures into one ERROR line; returns the exit code (0 or 1)."""
    try:
        work(run)
        return 0
    except DeployError as e:
        run.last_error = str(e)
        run.log.error(str(e))
        return 1
    except KeyboardInterrupt:
        run.log.error("interrupted; rerun to continue (every step checks what is already done)")
        return 130
    except Exception as e:  # a bug: say so briefly, keep the traceback in the log file only
        run.last_error = f"internal error: {type(e).__name__}: {e}"
        run.log.error(f"{run.last_error} (details in {run.log.path})")
        run.log.file_only(traceback.format_exc())
        return 1
    finally:
        record_run(run)
        run.close()


def record_run(run: Run) -> None:
    """nodes/<KEY_NAME>/last_run.json: the steps and every remote command of this run (no secrets)."""
    cmds = run._remote.commands if run._remote else []
    seconds = time.monotonic() - run.started
    run.log.info(f"{len(cmds)} remote command(s), {sum(1 for c in cmds if c.kind == 'run')} changing; "
                 f"{seconds:.1f} s; log: {run.log.path}")
    data = {
        "node": run.cfg.key_name, "log": str(run.log.path), "seconds": round(seconds, 3),
        "ok": not run.last_error, "error": run.log.redact(run.last_error),
        "steps": [{"name": o.name, "result": o.result, "phase": o.phase, "detail": run.log.redact(o.detail)}
                  for o in run.steps.outcomes],
        "commands": [{"kind": c.kind, "what": c.what, "command": c.command, "exit_code": c.exit_code,
                      "seconds": round(c.seconds, 3), "step": c.step} for c in cmds],
    }
    with contextlib.suppress(OSError):
        write_artefact(run.cfg.artefacts, "last_run.json", json.dumps(data, indent=1) + "\n")
