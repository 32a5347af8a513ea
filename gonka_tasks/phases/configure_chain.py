"""Phase 5, chain tuning: persistent peers (config.toml) and pruning (app.toml), edited with tomlkit.

Each file is backed up once before its first change. A marker on the server records that a
restart is owed, written before the edit and removed after the restart, so a run killed between
the edit and the restart still restarts the node next time.
"""

from __future__ import annotations

from gonka_tasks.core import chaincfg, shell
from gonka_tasks.core.shell import q
from gonka_tasks.errors import DeployError
from gonka_tasks.phases.common import Snapshot, compose, require
from gonka_tasks.phases.start_base import wait_rpc


def _paths(run) -> tuple[str, str]:
    base = f"{run.cfg.join_dir}/.inference/config"
    return f"{base}/config.toml", f"{base}/app.toml"


def _restart_marker(run) -> str:
    return f"{run.cfg.state_dir}/node-restart-pending"


def _edit_step(run, snap: Snapshot, key: str, name: str, path: str, edit, describe) -> None:
    def check():
        text = snap[key].stdout
        try:
            new = edit(text)
        except chaincfg.ChainConfigError as e:
            raise DeployError(f"cannot edit {path}: {e}") from None
        return new == text, describe(text)

    def act():
        new = edit(snap[key].stdout)
        run.remote.run(f"mkdir -p {q(run.cfg.state_dir)} && touch {q(_restart_marker(run))} && "
                       + shell.keep_original(path, path + ".gonka-deploy.orig"),
                       what=f"back up {path.rsplit('/', 1)[-1]} (first change only)")
        run.remote.write_file(path, new, mode=0o644, what=f"write {path.rsplit('/', 1)[-1]}")

    run.steps.run(name, check, act, refresh=snap.refresh)


def configure_chain(run) -> None:
    """Phase 5."""
    cfg = run.cfg
    config_toml, app_toml = _paths(run)
    snap = Snapshot(run, {
        "config": f"cat {q(config_toml)}",
        "app": f"cat {q(app_toml)}",
        "marker": f"test -f {q(_restart_marker(run))}",
    }, what="chain config files")
    require((snap["config"].ok and snap["app"].ok) or run.plan,
            f"{config_toml} or app.toml not found (the node has not started yet)", "run `fab start-base` first")
    if not (snap["config"].ok and snap["app"].ok):
        run.log.info("PLAN would run: persistent_peers and pruning edits once the node has created its config")
        return
    peers = cfg.persistent_peers
    if peers:
        _edit_step(run, snap, "config", "persistent_peers in config.toml", config_toml,
                   lambda t: chaincfg.set_persistent_peers(t, peers), lambda t: f"{len(peers)} peer(s)")
    else:
        run.log.info("PERSISTENT_PEERS is empty: config.toml persistent_peers left as it is")
    keep, interval = int(cfg["PRUNING_KEEP_RECENT"]), int(cfg["PRUNING_INTERVAL"])
    _edit_step(run, snap, "app", "pruning in app.toml", app_toml, lambda t: chaincfg.set_pruning(t, keep, interval),
               lambda t: f"custom, keep-recent {keep}, interval {interval}")

    def restart():
        run.remote.run(compose(run, "restart node"), what="restart node (new chain settings)", timeout=600)
        wait_rpc(run)
        run.remote.run(f"rm -f {q(_restart_marker(run))}", what="clear the restart marker")

    run.steps.run("node runs with the new chain settings", lambda: (not snap["marker"].ok, "no restart owed"),
                  restart, refresh=snap.refresh)
