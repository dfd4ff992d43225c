"""Bad input gets a clear error and leaves nothing half-changed."""

import pytest
import torch
from avalanche.core import SupervisedPlugin
from torch import nn

from avalanche_litelora import LiteLoRAStrategy, LoRAClassifier
from builders import MLP_TARGETS, lite_kwargs, sgd, tiny_mlp


def _snapshot(module):
    return {k: v.clone() for k, v in module.state_dict().items() if torch.is_tensor(v)}


def _same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize(
    "overrides, error, match",
    [
        (dict(rank=0), ValueError, "rank"),
        (dict(rank=65), ValueError, "rank"),
        (dict(lambda_sparsity=-0.1), ValueError, "lambda_sparsity"),
        (dict(selection_epochs=-1), ValueError, "selection_epochs"),
        (dict(selection_epochs=0, min_selection_steps=0), ValueError, "selection_epochs"),
        (dict(min_selection_steps=-1), ValueError, "min_selection_steps"),
        (dict(init_logit=0.0), ValueError, "init_logit"),
        (dict(init_logit=-0.5), ValueError, "init_logit"),
        (dict(gate_noise="uniform"), ValueError, "gate_noise"),
        (dict(target_modules=["nope"]), ValueError, "features.0"),
        (dict(tau=0.0), ValueError, "tau"),
        (dict(refit_steps=-1), ValueError, "refit_steps"),
        (dict(not_an_option=1), TypeError, "not_an_option"),
    ],
)
def test_bad_arguments_raise_before_the_backbone_changes(overrides, error, match):
    mlp = tiny_mlp()
    before = _snapshot(mlp)
    with pytest.raises(error, match=match):
        LiteLoRAStrategy(model=mlp, optimizer=sgd(mlp), **lite_kwargs(**overrides))
    assert _same(before, _snapshot(mlp))
    assert isinstance(mlp.classifier, nn.Linear)
    assert all(p.requires_grad for p in mlp.parameters())


class _PoisonLoss(SupervisedPlugin):
    """Makes the loss NaN once, at one iteration of one experience."""

    def __init__(self, experience, iteration):
        super().__init__()
        self.at = (experience, iteration)

    def before_backward(self, strategy, **kwargs):
        now = (strategy.experience.current_experience, strategy.clock.train_exp_iterations)
        if now == self.at:
            strategy.loss = strategy.loss * float("nan")
            self.at = None


def test_non_finite_loss_stops_with_position_and_restores_the_bank(ci_benchmark):
    mlp = tiny_mlp()
    strategy = LiteLoRAStrategy(
        model=mlp, optimizer=sgd(mlp), **lite_kwargs(plugins=[_PoisonLoss(1, 7)])
    )
    stream = list(ci_benchmark.train_stream)
    strategy.train(stream[0])
    bank = _snapshot(strategy.model)
    with pytest.raises(FloatingPointError, match="experience 1, iteration 7"):
        strategy.train(stream[1])
    model = strategy.model
    assert model.adapter_names == ["adapter_0"] and model.candidate is None
    assert model.pruned_adapters == []
    after = _snapshot(model)
    for key in bank:
        if not key.startswith("head."):  # the head grew for experience 1 before training
            assert torch.equal(bank[key], after[key]), key
    in_optimizer = {id(p) for g in strategy.optimizer.param_groups for p in g["params"]}
    assert in_optimizer == {id(p) for p in model.parameters()}


def test_experience_with_classes_beyond_a_fixed_head(ci_benchmark):
    model = LoRAClassifier(
        tiny_mlp(), rank=4, target_modules=MLP_TARGETS, head=nn.Linear(64, 3)
    )
    strategy = LiteLoRAStrategy(
        model=model, optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
        **{k: v for k, v in lite_kwargs().items() if k not in ("rank", "target_modules")},
    )
    exp = next(e for e in ci_benchmark.train_stream if max(e.classes_in_this_experience) >= 3)
    with pytest.raises(ValueError, match="head holds only 3 classes"):
        strategy.train(exp)
    assert model.adapter_names == []


def test_non_finite_loss_during_selection_hands_back_the_main_optimizer(ci_benchmark):
    mlp = tiny_mlp()
    # ~300 samples: iterations 0-9 are the magnitude epoch (32 a batch), 10-47 selection (8)
    strategy = LiteLoRAStrategy(
        model=mlp, optimizer=sgd(mlp), **lite_kwargs(plugins=[_PoisonLoss(1, 25)], train_epochs=2)
    )
    main_optimizer = strategy.optimizer
    stream = list(ci_benchmark.train_stream)
    strategy.train(stream[0])
    with pytest.raises(FloatingPointError):
        strategy.train(stream[1])
    assert strategy.optimizer is main_optimizer and strategy.train_mb_size == 32
    strategy.train(stream[1])  # the experience can be trained again
    assert strategy.model.candidate is None and len(strategy.model.adapter_names) in (1, 2)
