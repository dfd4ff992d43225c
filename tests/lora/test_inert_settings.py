"""Settings under which LiteLoRA's gate cannot decide are refused or warned, with the numbers."""

import warnings

import pytest
import torch

from avalanche_litelora import LiteLoRAStrategy, LoRAClassifier
from avalanche_litelora.lora.plugins.selection import InertSelectionWarning
from builders import MLP_TARGETS, lite_kwargs, sgd, tiny_mlp


def _lite(**overrides):
    model = tiny_mlp()
    return LiteLoRAStrategy(model=model, optimizer=sgd(model), **lite_kwargs(**overrides))


def _train_two(strategy, benchmark):
    for exp in benchmark.train_stream[:2]:
        strategy.train(exp)


def test_a_closed_initial_gate_is_refused_by_the_strategy_and_by_the_model():
    with pytest.raises(ValueError, match=r"init_logit must be > 0, got 0.0: a closed gate"):
        _lite(init_logit=0.0)
    with pytest.raises(ValueError, match=r"init_logit must be > 0, got -1.0"):
        LoRAClassifier(tiny_mlp(), rank=4, target_modules=MLP_TARGETS, init_logit=-1.0)


def test_a_zero_lambda_is_warned_at_construction():
    with pytest.warns(InertSelectionWarning, match=r"lambda_sparsity=0: .*PerTaskLoRAStrategy"):
        _lite(lambda_sparsity=0.0)


def test_a_selection_phase_that_cannot_reach_zero_is_warned_with_its_reach():
    # no epochs and one step of at most 0.05: the logit (0.5) cannot cross zero
    with pytest.warns(InertSelectionWarning, match=r"makes 1 steps .* moves at most 0.05, less than .* \(0.5\)"):
        _lite(selection_epochs=0, min_selection_steps=1)


def test_a_short_phase_on_a_small_experience_is_warned_when_it_runs(ci_benchmark):
    # one minibatch per experience, no floor: one logit update
    strategy = _lite(train_mb_size=2048, train_epochs=1, selection_mb_size=None, min_selection_steps=0)
    with pytest.warns(InertSelectionWarning, match=r"makes 1 steps"):
        _train_two(strategy, ci_benchmark)


def test_a_lambda_above_the_whole_loss_is_warned_when_it_runs(ci_benchmark):
    strategy = _lite(lambda_sparsity=50.0, lambda_rule="absolute", train_epochs=1)
    with pytest.warns(InertSelectionWarning, match=r"lambda=50 nats .* at least the experience's whole loss"):
        _train_two(strategy, ci_benchmark)


def test_a_relative_lambda_of_one_or_more_is_warned_at_construction():
    with pytest.warns(InertSelectionWarning, match=r"lambda_sparsity=1 under the relative rule"):
        _lite(lambda_sparsity=1.0, lambda_rule="relative")


def test_the_defaults_warn_about_nothing(ci_benchmark):
    model = tiny_mlp()
    with warnings.catch_warnings():
        warnings.simplefilter("error", InertSelectionWarning)
        strategy = LiteLoRAStrategy(model=model, optimizer=sgd(model), train_mb_size=64)
        _train_two(strategy, ci_benchmark)
    assert torch.isfinite(torch.tensor(list(strategy.gate_logits().values()))).all()


def _watch(decisions, train_steps=16):
    from avalanche_litelora.lora.plugins.candidate_losses import DecisionWatch

    watch = DecisionWatch()
    for i, (benefit, kept) in enumerate(decisions):
        losses = {"loss_closed": 1.0, "loss_open": 1.0 - benefit, "benefit_nats": benefit}
        watch.judging(f"adapter_{i + 1}", losses, 0.4, train_steps=train_steps)
        watch.decided(f"adapter_{i + 1}", kept)


def test_a_gate_that_closes_every_candidate_says_how_little_they_trained():
    from avalanche_litelora import GateDecisionWarning

    with pytest.warns(GateDecisionWarning, match=r"closed all 3 .*\[0.016, 0.0136, 0.0497\] nats against "
                                                 r"lambda ~0.4 .*about 16 training steps each: raise train_epochs"):
        _watch([(0.016, False), (0.0136, False), (0.0497, False)])
    with pytest.warns(GateDecisionWarning) as caught:  # trained long enough: not the cause
        _watch([(0.016, False), (0.0136, False), (0.0497, False)], train_steps=368)
    assert "train_epochs" not in str(caught[0].message)


def test_a_gate_that_keeps_candidates_whose_benefits_spread_100x_is_warned():
    from avalanche_litelora import GateDecisionWarning

    with pytest.warns(GateDecisionWarning, match=r"kept all 3 .*\[0.01, 0.5, 1\] nats"):
        _watch([(0.01, True), (0.5, True), (1.0, True)])
    with warnings.catch_warnings():
        warnings.simplefilter("error", GateDecisionWarning)
        _watch([(0.9, True), (0.5, False), (1.0, True)])  # told apart: no warning
