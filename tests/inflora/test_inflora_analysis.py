"""The redundancy analysis on an InfLoRA bank: it runs, and through the analysis's own
functions each adapter's input side lies outside the earlier tasks' stored input subspace.

InfLoRA's guarantee is about the *inputs* of earlier tasks (the memory ``M``), not about the
earlier adapters: ``A_t`` is orthogonal to ``M``, and ``M`` holds a threshold's share of each
task's input energy, not every earlier adapter's direction. Measured on three digits
experiences (``M`` of dimension 1-2 of 64 per layer): the energy of ``Delta W_t^T`` in
``span(M)`` is below 1e-16 for InfLoRA and 0.009-0.067 for per-task LoRA's adapters (about a
random direction's share, dim M / d); the adapters' input spaces still overlap each other (the
transposed bank's captured fraction reaches 0.54 for the third adapter), which the method
allows.
"""

from __future__ import annotations

import pytest
from avalanche.training.determinism.rng_manager import RNGManager

from avalanche_litelora import PerTaskLoRAStrategy
from avalanche_litelora.analysis import analyse_model, analyse_state_dict, captured_energy_fraction, low_rank_svd
from avalanche_litelora.inflora import InfLoRAStrategy, old_space
from builders import MLP_TARGETS, digits_benchmark, quiet_evaluator, sgd, single_thread, tiny_mlp

one_thread = pytest.fixture(autouse=True, scope="module")(single_thread)

N_EXP = 3
#: Energy fraction, so the square of the strategy test's norm ratio (1e-5).
IN_MEMORY_TOLERANCE = 1e-10


def _trained(strategy_class):
    RNGManager.set_random_seeds(1993)
    model = tiny_mlp()
    strategy = strategy_class(model=model, optimizer=sgd(model), rank=4, target_modules=MLP_TARGETS,
                              train_mb_size=32, train_epochs=2, eval_mb_size=512, evaluator=quiet_evaluator())
    memories = []
    for exp in list(digits_benchmark(5).train_stream)[:N_EXP]:
        if strategy_class is InfLoRAStrategy:
            memories.append({n: old_space(m).clone() for n, m in strategy.subspace_memory.memory.items()})
        strategy.train(exp)
    return strategy, memories


@pytest.fixture(scope="module")
def runs():
    return _trained(InfLoRAStrategy), _trained(PerTaskLoRAStrategy)[0]


def _input_energy_in(layer, adapter, span) -> float:
    """Fraction of ``||Delta W^T||^2`` in ``span``, with the analysis's own factorisation."""
    ad = layer.adapters[adapter]
    (key,) = ad.A  # the MLP's layers have one output slice
    u, s = low_rank_svd(ad.A[key].detach().T, ad.B[key].detach().T)  # Delta W^T = A^T B^T
    return captured_energy_fraction(u, s, span)


def test_the_analysis_runs_on_an_inflora_model_with_sensible_numbers(runs):
    (strategy, _), _ = runs
    report = analyse_model(strategy.model)
    assert report.adapters == [f"adapter_{t}" for t in range(N_EXP)]
    model = report.model
    assert 0 <= model.mean_pairwise_overlap <= 1 and 0 <= model.mean_captured <= 1
    assert 1 <= model.rank90 <= model.rank99 <= N_EXP * 4 * len(MLP_TARGETS)
    again = analyse_state_dict(strategy.model.state_dict())
    assert again.model.mean_pairwise_overlap == pytest.approx(model.mean_pairwise_overlap)


def test_inflora_down_projections_lie_outside_the_earlier_tasks_input_subspace(runs):
    (inflora, memories), pertask = runs
    for t in range(1, N_EXP):
        for name in MLP_TARGETS:
            span = memories[t][name].double()
            ours = _input_energy_in(inflora.adapter_model.lora_layers()[name], f"adapter_{t}", span)
            theirs = _input_energy_in(pertask.adapter_model.lora_layers()[name], f"adapter_{t}", span)
            assert ours < IN_MEMORY_TOLERANCE, (t, name, ours)
            assert theirs > 1e-3, (t, name, theirs)  # the same measure sees an unconstrained adapter
