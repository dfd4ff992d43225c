"""The redundancy analysis on an O-LoRA bank, beside per-task LoRA's on the same stream.

O-LoRA constrains the adapters' down-projections ``A`` (their row spaces: the *input* side of
``Delta W = B A``), so the bank is analysed on both sides: ``side="input"``, where O-LoRA's
adapters must overlap much less than per-task LoRA's, and the default output side, where the
penalty acts on nothing. Measured on three digits experiences: input-side mean overlap 0.012
(O-LoRA) against 0.066 (per-task LoRA), captured 0.016 against 0.075; output side 0.094
against 0.086, i.e. no difference there.
"""

from __future__ import annotations

import math

import pytest
from avalanche.training.determinism.rng_manager import RNGManager

from avalanche_litelora import PerTaskLoRAStrategy
from avalanche_litelora.analysis import analyse_model, analyse_state_dict
from avalanche_litelora.olora import OLoRAStrategy
from builders import MLP_TARGETS, digits_benchmark, quiet_evaluator, sgd, single_thread, tiny_mlp

one_thread = pytest.fixture(autouse=True, scope="module")(single_thread)


def _trained(strategy_class):
    RNGManager.set_random_seeds(1993)
    model = tiny_mlp()
    strategy = strategy_class(model=model, optimizer=sgd(model), rank=4, target_modules=MLP_TARGETS,
                              train_mb_size=32, train_epochs=2, eval_mb_size=512, evaluator=quiet_evaluator())
    for exp in list(digits_benchmark(5).train_stream)[:3]:
        strategy.train(exp)
    return strategy


@pytest.fixture(scope="module")
def strategies():
    return {name: _trained(cls) for name, cls in (("olora", OLoRAStrategy), ("pertask", PerTaskLoRAStrategy))}


@pytest.fixture(scope="module")
def banks(strategies):
    return {name: strategy.adapter_model.state_dict() for name, strategy in strategies.items()}


def test_the_analysis_runs_on_an_olora_bank_with_sensible_numbers(banks):
    report = analyse_state_dict(banks["olora"])
    assert report.adapters == ["adapter_0", "adapter_1", "adapter_2"]
    assert set(report.layers) == set(MLP_TARGETS)
    model = report.model
    assert 0 <= model.mean_pairwise_overlap <= 1 and 0 <= model.mean_captured <= 1
    assert model.overlap.diagonal().tolist() == pytest.approx([1.0] * 3)
    assert 1 <= model.rank90 <= model.rank99 <= 3 * 4 * len(MLP_TARGETS)


@pytest.mark.parametrize("side", ["output", "input"])
def test_analyse_model_and_analyse_state_dict_agree_on_an_olora_model(strategies, side):
    model = strategies["olora"].model
    by_model = analyse_model(model, side=side)
    by_state = analyse_state_dict(model.state_dict(), side=side)
    assert by_model.model.mean_pairwise_overlap == pytest.approx(by_state.model.mean_pairwise_overlap)
    assert by_model.model.rank99 == by_state.model.rank99


def test_olora_adapters_overlap_less_than_per_task_loras_on_their_input_side(banks):
    olora = analyse_state_dict(banks["olora"], side="input")
    pertask = analyse_state_dict(banks["pertask"], side="input")
    assert olora.model.mean_pairwise_overlap < 0.5 * pertask.model.mean_pairwise_overlap
    assert olora.model.mean_captured < 0.5 * pertask.model.mean_captured
    for layer in MLP_TARGETS:
        o, p = olora.layers[layer].mean_pairwise_overlap, pertask.layers[layer].mean_pairwise_overlap
        assert o < p and not math.isnan(o), layer
    # on the output side, where the penalty acts on nothing, the two banks look alike
    olora_out = analyse_state_dict(banks["olora"]).model.mean_pairwise_overlap
    pertask_out = analyse_state_dict(banks["pertask"]).model.mean_pairwise_overlap
    assert olora_out > 0.5 * pertask_out
