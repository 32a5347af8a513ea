"""Model recipes: the vLLM arguments and hardware of node-config.json, derived from the approved
model's governance entry and the server's GPUs. Pure: no I/O here, every decision table-tested.

What upstream (gonka v0.2.13) does with these arguments:
- decentralized-api `broker.MergeModelArgs`: the governance `model_args` first, then the node's
  args whose key (the exact `--key` token) governance does not set; the result goes to the ML
  node's `inference/up`.
- mlnode `inference/vllm/runner.py`: reads `--tensor-parallel-size N` and `--pipeline-parallel-size
  N` as SEPARATE tokens (`--tensor-parallel-size=4` counts as 1) and starts
  `gpu_count // (tp*pp)` vLLM instances of tp*pp GPUs each. With no TP size a model bigger than
  one GPU never loads.
- `hardware` entries are `{"type": "<GPU name> | <MiB // 1024>GB", "count": n}`, the form the api
  itself fills in from the ML node's GPU list (`mlnode_background_manager.go`
  `transformGPUDevicesToHardware`).

Sizing: governance `v_ram` (GB) is the memory the model needs across one instance's GPUs. A GPU
counts for its memory in decimal GB less HEADROOM (5%: CUDA context, driver and allocator
reserve), e.g. an H100 80GB (81559 MiB) for 81.2 GB; the TP size is the smallest power of two
whose GPUs hold v_ram. The upstream recipes agree: Kimi-K2.6 (v_ram 720) on 8 x H200 or 4 x B200,
MiniMax-M2.7 (320) on 4 x H100.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

MIB = 1 << 20
HEADROOM = 0.05
TP = "--tensor-parallel-size"
PP = "--pipeline-parallel-size"
PARALLEL_KEYS = (TP, PP)


class RecipeError(Exception):
    """The model cannot run on these GPUs with these args: message and fix."""

    def __init__(self, message: str, hint: str = ""):
        super().__init__(message)
        self.message, self.hint = message, hint


@dataclass(frozen=True)
class Gpu:
    name: str
    memory_mib: int

    @property
    def usable_gb(self) -> float:
        """Decimal GB this GPU contributes to a model's v_ram, headroom taken off."""
        return self.memory_mib * MIB / 1e9 * (1 - HEADROOM)


@dataclass(frozen=True)
class GovModel:
    """The fields of a governance model entry (`/v1/governance/models`) a recipe needs."""

    id: str
    hf_commit: str = ""
    model_args: tuple[str, ...] = ()
    v_ram_gb: int | None = None

    @classmethod
    def from_entry(cls, entry: dict) -> GovModel:
        """From the seed's JSON (uint64 fields such as v_ram come as strings in proto JSON)."""
        try:
            v_ram = int(str(entry.get("v_ram") or "").strip() or 0) or None
        except ValueError:
            v_ram = None
        args = entry.get("model_args") or []
        return cls(id=str(entry.get("id") or ""), hf_commit=str(entry.get("hf_commit") or ""),
                   model_args=tuple(str(a) for a in args if isinstance(a, str | int | float)), v_ram_gb=v_ram)


@dataclass
class Recipe:
    """node-config.json's args for the model, and what they mean on these GPUs."""

    args: list[str]
    tp: int
    pp: int
    instances: int
    derived_tp: bool
    notes: list[str] = field(default_factory=list)  # things to tell the operator (WARN)


def parse_gpus(text: str) -> list[Gpu]:
    """`nvidia-smi --query-gpu=name,memory.total --format=csv,noheader,nounits` -> GPUs.

    Lines that are not `<name>, <MiB>` (an error message) raise ValueError.
    """
    gpus = []
    for line in text.splitlines():
        if not line.strip():
            continue
        name, sep, mem = line.rpartition(",")
        if not sep or not re.fullmatch(r"\s*\d+\s*", mem):
            raise ValueError(f"not a GPU line: {line.strip()[:120]!r}")
        gpus.append(Gpu(name.strip(), int(mem)))
    return gpus


def hardware(gpus: list[Gpu]) -> list[dict]:
    """node-config.json `hardware`: GPUs grouped by type, sorted (the api's own format)."""
    counts: dict[str, int] = {}
    for g in gpus:
        key = f"{g.name} | {g.memory_mib // 1024}GB"
        counts[key] = counts.get(key, 0) + 1
    return [{"type": t, "count": n} for t, n in sorted(counts.items())]


def normalise_args(args: list[str]) -> list[str]:
    """`--key=value` split into `--key value` (vLLM takes both; the ML node and the api's merge only
    see keys as whole tokens)."""
    out = []
    for a in args:
        if a.startswith("--") and "=" in a:
            key, _, value = a.partition("=")
            out += [key, value]
        else:
            out.append(a)
    return out


def arg_value(args: list[str], key: str) -> str | None:
    """The value token after `key`, or None."""
    if key in args:
        i = args.index(key)
        if i + 1 < len(args) and not args[i + 1].startswith("--"):
            return args[i + 1]
    return None


def merge_args(epoch: list[str], local: list[str]) -> list[str]:
    """broker.MergeModelArgs: governance args in order, then local `--key [value]` pairs whose key
    governance does not set (the exact token is the key)."""
    out, keys, i = [], set(), 0
    while i < len(epoch):
        out.append(epoch[i])
        if epoch[i].startswith("--"):
            keys.add(epoch[i])
            if i + 1 < len(epoch) and not epoch[i + 1].startswith("--"):
                out.append(epoch[i + 1])
                i += 1
        i += 1
    i = 0
    while i < len(local):
        has_value = i + 1 < len(local) and not local[i + 1].startswith("--")
        if local[i].startswith("--") and local[i] not in keys:
            out += local[i:i + 2] if has_value else [local[i]]
        i += 2 if local[i].startswith("--") and has_value else 1
    return out


def _size(args: list[str], key: str, source: str) -> int:
    value = arg_value(args, key)
    if value is None:
        return 1
    if not value.isdigit() or int(value) < 1:
        raise RecipeError(f"{source}: {key} {value!r} is not a positive whole number", f"fix {key} in {source}")
    return int(value)


def derive(model: str, local_args: list[str], gpus: list[Gpu], gov: GovModel | None) -> Recipe:
    """The args for node-config.json: MODEL_ARGS normalised, plus `--tensor-parallel-size` when neither
    governance nor MODEL_ARGS sets it. RecipeError when the model cannot run on `gpus`."""
    local = normalise_args(list(local_args))
    epoch = list(gov.model_args) if gov else []  # the api passes governance's args on as they are
    if not gpus:
        raise RecipeError(f"no GPU found on the server for {model}",
                          "check the NVIDIA driver (`nvidia-smi`) and that the GPUs are visible")
    notes: list[str] = []
    odd = [a for a in epoch if a.startswith(tuple(k + "=" for k in PARALLEL_KEYS))]
    if odd:  # the runner reads only the two-token form: this counts as 1 there
        notes.append(f"{model}: governance model_args carry {', '.join(odd)}, which the ML node does not read "
                     "(it reads only the two-token form)")
    merged = merge_args(epoch, local)
    source = "governance model_args" if gov and (TP in epoch or PP in epoch) else "MODEL_ARGS"
    tp, pp = _size(merged, TP, source), _size(merged, PP, source)
    count, smallest = len(gpus), min(gpus, key=lambda g: g.memory_mib)
    found = f"{count} x {smallest.name} ({smallest.memory_mib} MiB, {smallest.usable_gb:.1f} GB usable each)"
    v_ram = gov.v_ram_gb if gov else None
    derived = TP not in merged
    args = list(local)
    if derived:
        if v_ram is None:
            tp = 1
            notes.append(f"{model} has no v_ram in governance: --tensor-parallel-size not derived (1 GPU per "
                         "vLLM instance); set it in MODEL_ARGS if the model needs more than one GPU")
        else:
            tp = 1
            while tp * pp * smallest.usable_gb < v_ram and tp * 2 * pp <= count:
                tp *= 2
            if tp * pp * smallest.usable_gb < v_ram:
                raise RecipeError(
                    f"{model} does not fit the server's GPUs: governance v_ram {v_ram} GB, found {found}, "
                    f"at most {count * smallest.usable_gb:.0f} GB with every GPU in one instance",
                    "use a server with more or larger GPUs, or choose another approved MODEL; to force it, "
                    "set --tensor-parallel-size in MODEL_ARGS")
            args += [TP, str(tp)]
    if tp * pp > count:
        raise RecipeError(f"{model}: {source} asks for {TP} {tp} x {PP} {pp} = {tp * pp} GPUs per vLLM instance, "
                          f"the server has {found}",
                          f"lower {TP} (or {PP}) in {source}, or use a server with more GPUs")
    if not derived and v_ram is not None and tp * pp * smallest.usable_gb < v_ram:
        notes.append(f"{model}: {tp * pp} GPU(s) per instance give {tp * pp * smallest.usable_gb:.0f} GB, governance "
                     f"v_ram is {v_ram} GB: vLLM may run out of memory (args from {source})")
    instances = max(1, count // (tp * pp))
    return Recipe(args=args, tp=tp, pp=pp, instances=instances, derived_tp=derived, notes=notes)


def summary(model: str, recipe: Recipe, gpus: list[Gpu]) -> str:
    how = "derived" if recipe.derived_tp else "as configured"
    pp = f", {PP} {recipe.pp}" if recipe.pp > 1 else ""
    return (f"{model}: {TP} {recipe.tp} ({how}){pp}: {recipe.instances} vLLM instance(s) on "
            f"{len(gpus)} GPU(s)")
