"""The redundancy analysis on an InfLoRA bank: it runs, and on the input side (``side="input"``,
the span of each ``A``) it shows InfLoRA's guarantee.

The guarantee is about the *inputs* of earlier tasks (the memory ``M``), not about the earlier
adapters: ``A_t`` is orthogonal to ``M``, and ``M`` holds a threshold's share of each task's
input energy. Measured on three digits experiences (rank 4, inputs of width 64):

- at the default threshold (0.95; ``M`` of dimension 1-3 per layer) the energy of
  ``Delta W_t^T`` in ``span(M)`` is below 1e-16 for InfLoRA and 0.009-0.067 for per-task
  LoRA's adapters (about a random direction's share, dim M / d); the adapters' input spaces
  still overlap each other (captured fraction 0.54 for the third adapter), which the method
  allows;
- at threshold 0.9999 (``M`` of dimension 24-30) the memory holds the earlier adapters' input
  directions, so the bank's own input-side captured fraction vanishes: below 1e-15 on the first
  layer (whose inputs no adapter changes), 0.008-0.009 on the second (its inputs moved with
  training), 0.003-0.005 for the model, against 0.026-0.144 and 0.073-0.077 for per-task LoRA.
"""

from __future__ import annotations

import pytest
import torch
from avalanche.training.determinism.rng_manager import RNGManager

from avalanche_litelora import PerTaskLoRAStrategy
from avalanche_litelora.analysis import analyse_bank, analyse_model, analyse_state_dict, bank_from_state_dict
from avalanche_litelora.analysis.redundancy import SliceFactors
from avalanche_litelora.inflora import InfLoRAStrategy, old_space
from builders import MLP_TARGETS, digits_benchmark, quiet_evaluator, sgd, single_thread, tiny_mlp

one_thread = pytest.fixture(autouse=True, scope="module")(single_thread)

N_EXP = 3
#: Energy fraction, so the square of the strategy test's norm ratio (1e-5).
IN_MEMORY_TOLERANCE = 1e-10
#: A threshold at which each task's memory keeps at least its adapter's ``rank`` directions.
HIGH_THRESHOLD = 0.9999


def _trained(strategy_class, **settings):
    RNGManager.set_random_seeds(1993)
    model = tiny_mlp()
    strategy = strategy_class(model=model, optimizer=sgd(model), rank=4, target_modules=MLP_TARGETS,
                              train_mb_size=32, train_epochs=2, eval_mb_size=512, evaluator=quiet_evaluator(),
                              **settings)
    memories = []
    for exp in list(digits_benchmark(5).train_stream)[:N_EXP]:
        if strategy_class is InfLoRAStrategy:
            memories.append({n: old_space(m).clone() for n, m in strategy.subspace_memory.memory.items()})
        strategy.train(exp)
    return strategy, memories


@pytest.fixture(scope="module")
def runs():
    return _trained(InfLoRAStrategy), _trained(PerTaskLoRAStrategy)[0]


def _energy_in_memory(strategy, adapter: str, memory) -> dict:
    """Per layer, the share of ``adapter``'s input-side energy inside ``span(M)``, by the public
    analysis: the memory enters as an earlier pseudo-adapter that reads exactly ``span(M)``
    (``A = M^T``, ``B`` the first columns of the identity), so ``captured[1]`` is that share."""
    bank = bank_from_state_dict(strategy.model.state_dict())
    shares = {}
    for layer, adapters in bank.items():
        ((key, new),) = adapters[adapter].items()  # the MLP's layers have one output slice
        m = memory[layer].double()
        reader = SliceFactors(m.T, torch.eye(new.B.shape[0], m.shape[1], dtype=torch.float64), 1.0, new.rows)
        report = analyse_bank({layer: {"memory_0": {key: reader}, "update_1": {key: new}}}, side="input")
        shares[layer] = float(report.model.captured[1])
    return shares


def test_the_analysis_runs_on_an_inflora_model_with_sensible_numbers(runs):
    (strategy, _), _ = runs
    for side in ("output", "input"):
        report = analyse_model(strategy.model, side=side)
        assert report.adapters == [f"adapter_{t}" for t in range(N_EXP)]
        model = report.model
        assert 0 <= model.mean_pairwise_overlap <= 1 and 0 <= model.mean_captured <= 1
        assert 1 <= model.rank90 <= model.rank99 <= N_EXP * 4 * len(MLP_TARGETS)
        again = analyse_state_dict(strategy.model.state_dict(), side=side)
        assert again.model.mean_pairwise_overlap == pytest.approx(model.mean_pairwise_overlap)


def test_inflora_down_projections_lie_outside_the_earlier_tasks_input_subspace(runs):
    (inflora, memories), pertask = runs
    for t in range(1, N_EXP):
        ours = _energy_in_memory(inflora, f"adapter_{t}", memories[t])
        theirs = _energy_in_memory(pertask, f"adapter_{t}", memories[t])
        for name in MLP_TARGETS:
            assert ours[name] < IN_MEMORY_TOLERANCE, (t, name, ours)
            assert theirs[name] > 1e-3, (t, name, theirs)  # the same measure sees an unconstrained adapter


def test_with_a_full_memory_the_input_side_shows_no_captured_energy_where_per_task_loras_has_some(runs):
    _, pertask = runs
    inflora, _ = _trained(InfLoRAStrategy, threshold_start=HIGH_THRESHOLD)
    ours = analyse_model(inflora.model, side="input")
    theirs = analyse_model(pertask.model, side="input")
    first, second = MLP_TARGETS
    assert ours.layers[first].captured[1:].abs().max() < IN_MEMORY_TOLERANCE
    assert theirs.layers[first].captured[1:].min() > 1e-2
    assert (ours.layers[second].captured[1:] < 0.5 * theirs.layers[second].captured[1:]).all()
    assert (ours.model.captured[1:] < 0.2 * theirs.model.captured[1:]).all()
    # the output side sees nothing of it: there InfLoRA's adapters are as redundant as any
    assert analyse_model(inflora.model).model.mean_captured > 0.05
