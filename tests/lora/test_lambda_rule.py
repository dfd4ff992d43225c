"""LiteLoRA's relative lambda rule: decisions that do not depend on the stream's loss scale."""

import pytest
import torch
from torch import nn

from avalanche_litelora import GateSelectionPlugin, LiteLoRAStrategy
from builders import MLP_TARGETS, quiet_evaluator, tiny_mlp

SCALE = 100.0  # regime B: every loss, and so every candidate's benefit, 100x larger


class ScaledCrossEntropy(nn.CrossEntropyLoss):
    def __init__(self, scale: float):
        super().__init__()
        self.scale = scale

    def forward(self, logits, targets):
        return self.scale * super().forward(logits, targets)


def _run(ci_benchmark, scale: float, **lambda_settings):
    """LiteLoRA on digits; SGD's rate is divided by ``scale`` so every adapter trains the same
    (and AdamW's logit steps do not depend on the gradient's scale)."""
    torch.manual_seed(0)
    mlp = tiny_mlp()
    strategy = LiteLoRAStrategy(
        model=mlp, optimizer=torch.optim.SGD(mlp.parameters(), lr=0.05 / scale, momentum=0.9),
        criterion=ScaledCrossEntropy(scale), rank=4, target_modules=MLP_TARGETS, train_mb_size=32,
        train_epochs=3, eval_mb_size=512, selection_mb_size=8, refit_steps=0,
        evaluator=quiet_evaluator(), **lambda_settings,
    )
    for exp in ci_benchmark.train_stream:
        strategy.train(exp)
    selection = next(p for p in strategy.plugins if isinstance(p, GateSelectionPlugin))
    return strategy.pruned_adapters, [r["benefit_nats"] for r in selection.watch.records]


@pytest.mark.slow
def test_the_relative_rule_decides_alike_on_two_regimes_100x_apart_and_an_absolute_lambda_cannot(ci_benchmark):
    # on digits a random MLP's candidates remove 2-20% of their loss: 0.1 tells them apart
    pruned_a, benefits_a = _run(ci_benchmark, 1.0, lambda_sparsity=0.1)  # relative, the default rule
    pruned_b, benefits_b = _run(ci_benchmark, SCALE, lambda_sparsity=0.1)
    assert benefits_b == pytest.approx([SCALE * b for b in benefits_a], rel=0.05, abs=1e-5)
    assert pruned_a == pruned_b  # the same candidates, whatever the scale
    assert 0 < len(pruned_a) < 4  # and a real decision: some kept, some pruned
    # an absolute lambda set between regime A's benefits keeps everything in regime B
    lam = sorted(benefits_a)[len(benefits_a) // 2]
    kept_a = 4 - len(_run(ci_benchmark, 1.0, lambda_sparsity=lam, lambda_rule="absolute")[0])
    kept_b = 4 - len(_run(ci_benchmark, SCALE, lambda_sparsity=lam, lambda_rule="absolute")[0])
    assert kept_a < 4 and kept_b == 4


def test_the_relative_rule_has_a_floor_on_the_task_own_scale():
    from avalanche_litelora.lora.plugins.selection import lambda_for

    assert lambda_for(0.4, "relative", 2.0, 10) == pytest.approx(0.8)
    # a bank whose loss is itself near zero: a share of it would be noise
    assert lambda_for(0.4, "relative", 0.001, 10) == pytest.approx(0.01 * 2.302585, rel=1e-5)
    assert lambda_for(0.03, "absolute", 0.001, 10) == 0.03
    assert lambda_for(0.0, "relative", 0.001, 10) == 0.0  # 0 stays 0 (and is warned)
