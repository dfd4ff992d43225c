"""The redundancy analysis on an O-LoRA bank, beside per-task LoRA's on the same stream.

O-LoRA constrains the adapters' down-projections ``A`` (their row spaces: the *input* side of
``Delta W = B A``); ``analyse_model`` measures the column spaces (the output side). So the
bank is analysed twice: as it is, and transposed (``Delta W^T = A^T B^T``, the same factors
read the other way round), where O-LoRA's adapters must overlap much less than per-task
LoRA's. Measured on three digits experiences: input-side mean overlap 0.012 (O-LoRA) against
0.067 (per-task LoRA); output side 0.092 against 0.082, i.e. no difference there.
"""

from __future__ import annotations

import math
import re

import pytest
from avalanche.training.determinism.rng_manager import RNGManager

from avalanche_litelora import PerTaskLoRAStrategy
from avalanche_litelora.analysis import analyse_model, analyse_state_dict
from avalanche_litelora.olora import OLoRAStrategy
from builders import MLP_TARGETS, digits_benchmark, quiet_evaluator, sgd, single_thread, tiny_mlp

one_thread = pytest.fixture(autouse=True, scope="module")(single_thread)

_FACTOR = re.compile(r"^(.*\.adapters\.[^.]+\.)(A|B)(\.[^.]+)$")


def input_side(state_dict):
    """The bank with every ``B A`` read as ``(B A)^T = A^T B^T``: the analysis then measures
    the adapters' input (row) spaces. Exact for layers with one output slice (the MLP here)."""
    out = {}
    for key, value in state_dict.items():
        match = _FACTOR.match(key)
        out[match[1] + {"A": "B", "B": "A"}[match[2]] + match[3] if match else key] = value.T if match else value
    return out


def _trained(strategy_class):
    RNGManager.set_random_seeds(1993)
    model = tiny_mlp()
    strategy = strategy_class(model=model, optimizer=sgd(model), rank=4, target_modules=MLP_TARGETS,
                              train_mb_size=32, train_epochs=2, eval_mb_size=512, evaluator=quiet_evaluator())
    for exp in list(digits_benchmark(5).train_stream)[:3]:
        strategy.train(exp)
    return strategy


@pytest.fixture(scope="module")
def banks():
    return {name: _trained(cls).adapter_model.state_dict()
            for name, cls in (("olora", OLoRAStrategy), ("pertask", PerTaskLoRAStrategy))}


def test_the_analysis_runs_on_an_olora_bank_with_sensible_numbers(banks):
    report = analyse_state_dict(banks["olora"])
    assert report.adapters == ["adapter_0", "adapter_1", "adapter_2"]
    assert set(report.layers) == set(MLP_TARGETS)
    model = report.model
    assert 0 <= model.mean_pairwise_overlap <= 1 and 0 <= model.mean_captured <= 1
    assert model.overlap.diagonal().tolist() == pytest.approx([1.0] * 3)
    assert 1 <= model.rank90 <= model.rank99 <= 3 * 4 * len(MLP_TARGETS)


def test_analyse_model_and_analyse_state_dict_agree_on_an_olora_model():
    strategy = _trained(OLoRAStrategy)
    by_model = analyse_model(strategy.model)
    by_state = analyse_state_dict(strategy.model.state_dict())
    assert by_model.model.mean_pairwise_overlap == pytest.approx(by_state.model.mean_pairwise_overlap)
    assert by_model.model.rank99 == by_state.model.rank99


def test_olora_adapters_overlap_less_than_per_task_loras_on_their_input_side(banks):
    olora = analyse_state_dict(input_side(banks["olora"])).model
    pertask = analyse_state_dict(input_side(banks["pertask"])).model
    assert olora.mean_pairwise_overlap < 0.5 * pertask.mean_pairwise_overlap
    assert olora.mean_captured < 0.5 * pertask.mean_captured
    for layer in MLP_TARGETS:
        o = analyse_state_dict(input_side(banks["olora"])).layers[layer].mean_pairwise_overlap
        p = analyse_state_dict(input_side(banks["pertask"])).layers[layer].mean_pairwise_overlap
        assert o < p and not math.isnan(o), layer
