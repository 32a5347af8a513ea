"""The preflight on the server: every prerequisite checked in one read-only round trip before a
task changes anything (`validate` shows it too). Verdicts come from the pure `preflight` module."""

from __future__ import annotations

from .. import preflight
from ..errors import DeployError
from . import recipe

LEVELS = {"PASS": "OK", "WARN": "WARN", "FAIL": "ERROR"}


def published_ports(cfg) -> dict[int, tuple[str, str]]:
    """Host ports the compose files publish with this config, and the address each is bound to."""
    inner = cfg["INTERNAL_BIND_ADDRESS"]
    return {int(cfg["API_PORT"]): ("0.0.0.0", "proxy (API_PORT)"),
            int(cfg["API_SSL_PORT"]): ("0.0.0.0", "proxy (API_SSL_PORT)"),
            int(cfg["P2P_PORT"]): ("0.0.0.0", "node p2p (P2P_PORT)"),
            int(cfg["PORT"]): (inner, "ML node (PORT)"),
            int(cfg["INFERENCE_PORT"]): (inner, "ML node inference (INFERENCE_PORT)"),
            9100: (inner, "api ML callback"), 9200: ("127.0.0.1", "api admin")}


def server_checks(run) -> list[preflight.Check]:
    """Run the preflight once per run; any FAIL stops before anything changes."""
    if getattr(run, "preflight_done", False):
        return []
    cfg = run.cfg
    gov = recipe.governance_entry(recipe.governance_models(run), cfg["MODEL"])
    needs = preflight.Needs(ports=published_ports(cfg), model=cfg["MODEL"], gov=gov, model_args=tuple(cfg.model_args),
                            data_disk=cfg.data_disk, gated=bool(cfg["HF_TOKEN"]),
                            chain_bytes=int(float(cfg["CHAIN_DATA_GB"]) * 10 ** 9), urls=preflight.reach_urls(cfg))
    what = "preflight: Docker, GPUs, disks, ports, network reach"
    if run.prefetched:  # asked with the root check, in the same round trip
        run.log.check(what)
        res = run.prefetched
    else:
        res = run.remote.probe_many(preflight.probes(cfg), what=what)
    checks = preflight.evaluate(res, needs)
    for c in checks:
        run.log.event(LEVELS[c.result], f"preflight {c.result:4} {c.name}: {c.detail}" + (f" (fix: {c.fix})" if c.fix and
                      c.result != "PASS" else ""), console=not run.log.rich)
    run.log.table(f"preflight of {cfg.key_name} ({cfg.server_ip})", ("result", "check", "detail"),
                  [(c.result, c.name, c.detail + (f"; fix: {c.fix}" if c.fix and c.result != "PASS" else ""))
                   for c in checks])
    failed = [c for c in checks if c.result == "FAIL"]
    if failed:
        raise DeployError(f"preflight: {len(failed)} prerequisite(s) missing, nothing was changed: "
                          + "; ".join(f"{c.name} ({c.detail})" for c in failed),
                          " | ".join(f"{c.name}: {c.fix}" for c in failed))
    run.preflight_done = True
    return checks
