"""Model recipes (gonka_tasks/recipes.py): vLLM args and hardware from the governance entry and the GPUs."""

from __future__ import annotations

import pytest

from gonka_tasks.core import recipes
from gonka_tasks.core.recipes import GovModel, Gpu, RecipeError

H100 = Gpu("NVIDIA H100 80GB HBM3", 81559)
H200 = Gpu("NVIDIA H200", 143771)
B200 = Gpu("NVIDIA B200", 183359)
A10 = Gpu("NVIDIA A10", 23028)


def gov(v_ram=None, args=(), commit="") -> GovModel:
    return GovModel(id="org/m", hf_commit=commit, model_args=tuple(args), v_ram_gb=v_ram)


@pytest.mark.parametrize(("gpus", "v_ram", "local", "gov_args", "want_args", "tp", "instances"), [
    # the sandbox model on one H100: one GPU is enough, tp 1 is written
    ([H100], 80, [], [], ["--tensor-parallel-size", "1"], 1, 1),
    # upstream's recipes: MiniMax-M2.7 (320) on 4 x H100, Kimi-K2.6 (720) on 8 x H200 / 4 x B200
    ([H100] * 4, 320, [], [], ["--tensor-parallel-size", "4"], 4, 1),
    ([H200] * 8, 720, [], [], ["--tensor-parallel-size", "8"], 8, 1),
    ([B200] * 4, 720, [], [], ["--tensor-parallel-size", "4"], 4, 1),
    # 200 GB on 8 x H100: tp 4, two instances
    ([H100] * 8, 200, [], [], ["--tensor-parallel-size", "4"], 4, 2),
    # MODEL_ARGS sets tp (either form): kept, normalised to two tokens
    ([H100] * 8, 200, ["--tensor-parallel-size=8", "--max-model-len=4096"], [],
     ["--tensor-parallel-size", "8", "--max-model-len", "4096"], 8, 1),
    # governance sets tp: nothing added (the api merges governance's args first)
    ([H100] * 4, 200, ["--enforce-eager"], ["--tensor-parallel-size", "2"], ["--enforce-eager"], 2, 2),
    # pipeline parallel from MODEL_ARGS counts: tp 2 x pp 2 holds 200 GB
    ([H100] * 4, 200, ["--pipeline-parallel-size", "2"], [], ["--pipeline-parallel-size", "2",
                                                              "--tensor-parallel-size", "2"], 2, 1),
])
def test_derive(gpus, v_ram, local, gov_args, want_args, tp, instances):
    r = recipes.derive("org/m", local, gpus, gov(v_ram, gov_args))
    assert (r.args, r.tp, r.instances) == (want_args, tp, instances)


@pytest.mark.parametrize(("gpus", "v_ram", "local", "gov_args", "words"), [
    ([H100] * 4, 400, [], [], ["org/m", "v_ram 400 GB", "4 x NVIDIA H100 80GB HBM3", "81559 MiB"]),
    ([A10] * 2, 80, [], [], ["org/m", "v_ram 80 GB", "2 x NVIDIA A10"]),
    ([H100] * 2, 80, ["--tensor-parallel-size", "4"], [], ["4 GPUs per vLLM instance", "MODEL_ARGS"]),
    ([H100] * 2, 80, [], ["--tensor-parallel-size", "8"], ["governance model_args", "8"]),
    ([H100], 80, ["--tensor-parallel-size", "two"], [], ["'two' is not a positive whole number"]),
    ([], 80, [], [], ["no GPU found", "org/m"]),
])
def test_refusals_name_model_need_gpus_and_fix(gpus, v_ram, local, gov_args, words):
    with pytest.raises(RecipeError) as e:
        recipes.derive("org/m", local, gpus, gov(v_ram, gov_args))
    for w in words:
        assert w in e.value.message, e.value.message
    assert e.value.hint


def test_notes_without_v_ram_or_below_it():
    r = recipes.derive("org/m", [], [H100] * 4, gov(None))
    assert r.args == [] and r.tp == 1 and "no v_ram" in r.notes[0]
    r = recipes.derive("org/m", ["--tensor-parallel-size", "1"], [H100] * 4, gov(200))
    assert r.tp == 1 and "may run out of memory" in r.notes[0]
    r = recipes.derive("org/m", [], [H100] * 4, gov(80, ["--tensor-parallel-size=4"]))
    assert any("two-token form" in n for n in r.notes)


def test_merge_args_matches_the_api():
    # governance first, local keys only when governance lacks them (values follow their key)
    assert recipes.merge_args(["--max-model-len", "240000", "--trust-remote-code"],
                              ["--max-model-len", "4096", "--tensor-parallel-size", "4", "--trust-remote-code"]) == [
        "--max-model-len", "240000", "--trust-remote-code", "--tensor-parallel-size", "4"]


def test_parse_gpus_and_hardware():
    text = "NVIDIA H100 80GB HBM3, 81559\nNVIDIA H100 80GB HBM3, 81559\nNVIDIA A10, 23028\n"
    gpus = recipes.parse_gpus(text)
    assert gpus == [H100, H100, A10]
    assert recipes.hardware(gpus) == [{"type": "NVIDIA A10 | 22GB", "count": 1},
                                      {"type": "NVIDIA H100 80GB HBM3 | 79GB", "count": 2}]
    with pytest.raises(ValueError):
        recipes.parse_gpus("NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.")


def test_governance_entry_fields():
    m = GovModel.from_entry({"id": "a/b", "hf_commit": "c" * 40, "model_args": ["--x", "1"], "v_ram": "320"})
    assert (m.id, m.hf_commit, m.model_args, m.v_ram_gb) == ("a/b", "c" * 40, ("--x", "1"), 320)
    assert GovModel.from_entry({"id": "a/b", "v_ram": "lots"}).v_ram_gb is None
