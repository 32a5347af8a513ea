"""The model recipe of a run: the approved model's governance entry (from the seed) and the server's
GPUs (one probe, run inside a phase's snapshot), turned into node-config.json's args and hardware
by the pure `recipes.derive`. download-model checks it before the download starts; configure
renders with it.
"""

from __future__ import annotations

from gonka_tasks.connectors import seed
from gonka_tasks.connectors.httpclient import HttpError
from gonka_tasks.core import recipes
from gonka_tasks.errors import DeployError

GPU_PROBE = "nvidia-smi --query-gpu=name,memory.total --format=csv,noheader,nounits 2>&1"
# what the ML node asks the cache for: decentralized-api v0.2.13 sends models/status and download
# with `HfCommit: nil // nil = latest` (internal/modelmanager/mlnode_background_manager.go), i.e. main
MLNODE_REVISION = "main"


def governance_models(run) -> list[dict] | None:
    """The seed's governance model entries, or None (with a WARN) when the seed cannot be asked."""
    try:
        status, data = seed.governance_models(run.cfg)
    except HttpError as e:
        run.log.warn(f"cannot read the approved models from the seed: {e.message}")
        return None
    if status != 200 or not isinstance(data, dict) or not isinstance(data.get("models"), list):
        run.log.warn(f"cannot read the approved models: {run.cfg.seed_api_url}/v1/governance/models answered "
                     f"HTTP {status} without a model list")
        return None
    return [m for m in data["models"] if isinstance(m, dict) and m.get("id")]


def governance_entry(models: list[dict] | None, model: str) -> recipes.GovModel | None:
    entry = next((m for m in models or [] if m.get("id") == model), None)
    return recipes.GovModel.from_entry(entry) if entry else None


def gpus_of(probe) -> list[recipes.Gpu]:
    """The GPUs from GPU_PROBE's result; DeployError naming nvidia-smi's answer when there are none."""
    try:
        gpus = recipes.parse_gpus(probe.out) if probe.ok else []
    except ValueError:
        gpus = []
    if not gpus:
        said = (probe.out.splitlines() or ["no output"])[-1][:160]
        raise DeployError(f"no GPU found on the server (nvidia-smi: {said})",
                          "install the NVIDIA driver and check `nvidia-smi` lists the GPUs; the ML node needs them")
    return gpus


def model_recipe(run, probe, models: list[dict] | None) -> tuple[recipes.Recipe, list[recipes.Gpu]]:
    """The recipe for MODEL on the probed GPUs; DeployError (model, v_ram, GPUs, fix) when it cannot fit."""
    cfg = run.cfg
    gpus = gpus_of(probe)
    gov = governance_entry(models, cfg["MODEL"])
    try:
        recipe = recipes.derive(cfg["MODEL"], cfg.model_args, gpus, gov)
    except recipes.RecipeError as e:
        raise DeployError(e.message, e.hint) from None
    for note in recipe.notes:
        run.log.warn(note)
    return recipe, gpus


def check_revision(run, gov: recipes.GovModel | None, sha: str, recipe: recipes.Recipe | None = None) -> None:
    """WARN where what the ML node and vLLM will use differs from what governance pins."""
    cfg = run.cfg
    model, rev = cfg["MODEL"], cfg["MODEL_REVISION"]
    if rev != MLNODE_REVISION:
        run.log.warn(f"MODEL_REVISION is {rev}, but the ML node looks for {model} at {MLNODE_REVISION} (the api of "
                     f"v0.2.13 asks it for no commit): it will not find this download offline and fetches "
                     f"{MLNODE_REVISION} again; set MODEL_REVISION={MLNODE_REVISION}")
    vllm_rev = recipes.arg_value(recipes.merge_args(list(gov.model_args) if gov else [], recipe.args if recipe else []),
                                 "--revision")
    if vllm_rev and vllm_rev not in (rev, sha):
        run.log.warn(f"vLLM will load {model} at --revision {vllm_rev}, not the downloaded {rev} ({sha[:12]}): it "
                     "fetches that revision itself when it starts")
    if gov and gov.hf_commit and sha and gov.hf_commit != sha:
        run.log.warn(f"governance pins {model} at hf_commit {gov.hf_commit}, but {rev} is {sha} on the hub: the ML "
                     f"node checks and vLLM loads {MLNODE_REVISION} ({sha}), not the pinned commit; validators "
                     "may disagree with this node's outputs until the two match")
