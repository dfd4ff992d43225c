"""The selection phase reaches a decision on a small experience as on a large one."""

import pytest

from avalanche_litelora import LiteLoRAStrategy
from avalanche_litelora.data.streams import subsample_benchmark
from builders import lite_kwargs, sgd, tiny_mlp


@pytest.mark.parametrize("lambda_sparsity, pruned", [(1000.0, ["adapter_1"]), (0.0, [])])
def test_a_handful_of_minibatches_still_reaches_a_decision(ci_benchmark, lambda_sparsity, pruned):
    """Three minibatches per experience: the phase cycles them for min_selection_steps steps."""
    small = subsample_benchmark(ci_benchmark, 24, 24, seed=0)
    mlp = tiny_mlp()
    strategy = LiteLoRAStrategy(model=mlp, optimizer=sgd(mlp), **lite_kwargs(
        lambda_sparsity=lambda_sparsity, train_mb_size=8, min_selection_steps=60))
    selection = next(p for p in strategy.plugins if hasattr(p, "last_steps"))
    for exp in list(small.train_stream)[:2]:
        strategy.train(exp)
    assert selection.last_steps == 60  # 3 minibatches x 1 epoch, raised to the floor
    assert strategy.pruned_adapters == pruned
