"""The preflight on the server: every prerequisite checked in one read-only round trip before a
task changes anything (`validate` shows it too). Verdicts come from the pure `preflight` module."""

from __future__ import annotations

from gonka_tasks.core import installer, preflight
from gonka_tasks.core.checks import LOG_LEVEL, Check
from gonka_tasks.core.shell import q
from gonka_tasks.errors import DeployError
from gonka_tasks.phases import recipe


def published_ports(cfg) -> dict[int, tuple[str, str]]:
    """Host ports the compose files publish with this config, and the address each is bound to."""
    inner = cfg["INTERNAL_BIND_ADDRESS"]
    ml = {int(cfg["PORT"]): (inner, "ML node (PORT)"),
          int(cfg["INFERENCE_PORT"]): (inner, "ML node inference (INFERENCE_PORT)")}
    if cfg.is_mlnode:  # an ML-node server runs docker-compose.mlnode.yml only: no chain or API ports
        return ml
    return {int(cfg["API_PORT"]): ("0.0.0.0", "proxy (API_PORT)"),
            int(cfg["API_SSL_PORT"]): ("0.0.0.0", "proxy (API_SSL_PORT)"),
            int(cfg["P2P_PORT"]): ("0.0.0.0", "node p2p (P2P_PORT)"),
            int(cfg["PORT"]): (inner, "ML node (PORT)"),
            int(cfg["INFERENCE_PORT"]): (inner, "ML node inference (INFERENCE_PORT)"),
            9100: (cfg.private_ip or inner, "api ML callback"), 9200: ("127.0.0.1", "api admin")}


def server_checks(run) -> list[Check]:
    """Run the preflight once per run; any FAIL stops before anything changes."""
    if getattr(run, "preflight_done", False):
        return []
    cfg = run.cfg
    gov = recipe.governance_entry(recipe.governance_models(run), cfg["MODEL"])
    needs = preflight.Needs(ports=published_ports(cfg), model=cfg["MODEL"], gov=gov, model_args=tuple(cfg.model_args),
                            data_disk=cfg.data_disk, gated=bool(cfg["HF_TOKEN"]),
                            chain_bytes=0 if cfg.is_mlnode else int(float(cfg["CHAIN_DATA_GB"]) * 10 ** 9),
                            urls=preflight.reach_urls(cfg), network_node=not cfg.is_mlnode)
    what = "preflight: Docker, GPUs, disks, ports, network reach"
    if run.prefetched:  # asked with the root check, in the same round trip
        run.log.check(what)
        res = run.prefetched
    else:
        res = run.remote.probe_many(preflight.probes(cfg), what=what)
    checks = preflight.evaluate(res, needs)
    for _ in range(2):  # Docker first can reveal the runtime check, which needs the toolkit
        failed = [c for c in checks if c.result == "FAIL"]
        fixable = {installer.INSTALLABLE[c.name] for c in failed if c.name in installer.INSTALLABLE}
        # only when apt fixes every FAIL: a server that fails for another reason stays untouched
        if not (run.opt("install_prereqs") and fixable and all(c.name in installer.INSTALLABLE for c in failed)):
            break
        show(run, checks)
        install(run, fixable)
        if run.plan:
            break
        res = run.remote.probe_many(preflight.probes(cfg), what=f"{what} (after installing)")
        checks = preflight.evaluate(res, needs)
    show(run, checks)
    failed = [c for c in checks if c.result == "FAIL"]
    if failed:
        more = (" (or rerun with --install-prereqs)" if any(c.name in installer.INSTALLABLE for c in failed)
                and not run.opt("install_prereqs") else "")
        raise DeployError(f"preflight: {len(failed)} prerequisite(s) missing, nothing was changed: "
                          + "; ".join(f"{c.name} ({c.detail})" for c in failed),
                          " | ".join(f"{c.name}: {c.fix}" for c in failed) + more)
    run.preflight_done = True
    return checks


def install(run, what: set[str]) -> None:
    """--install-prereqs: Docker Engine, the Compose plugin, the NVIDIA container toolkit (apt)."""
    names = ", ".join(sorted(what))
    if run.plan:
        run.log.info(f"PLAN would install with apt: {names}")
        return
    run.remote.run(f"bash -c {q(installer.install_script(what))}", what=f"install {names} (apt)",
                   timeout=3600, hint="see the apt output above; the vendors' repositories must be reachable")


def show(run, checks: list[Check]) -> None:
    for c in checks:
        run.log.event(LOG_LEVEL[c.result], f"preflight {c.result:4} {c.name}: {c.detail}" + (f" (fix: {c.fix})" if c.fix and
                      c.result != "PASS" else ""), console=not run.log.rich)
    run.log.table(f"preflight of {run.cfg.key_name} ({run.cfg.server_ip})", ("result", "check", "detail"),
                  [(c.result, c.name, c.detail + (f"; fix: {c.fix}" if c.fix and c.result != "PASS" else ""))
                   for c in checks])
