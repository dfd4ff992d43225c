"""A strategy built with only model and optimizer trains on minibatches, not single samples."""

import pytest
import torch
from avalanche.training.supervised import Naive

from avalanche_litelora import LiteLoRAStrategy, PerTaskLoRAStrategy, ShareStrategy, TaskRoutedLoRAStrategy
from avalanche_litelora.training.adapter_strategy import DEFAULT_MINIBATCH_SIZES
from builders import MLP_TARGETS, quiet_evaluator, tiny_mlp

STRATEGIES = [LiteLoRAStrategy, PerTaskLoRAStrategy, ShareStrategy, TaskRoutedLoRAStrategy]


def _build(cls, *args, **kwargs):
    model = tiny_mlp()
    return cls(model, torch.optim.SGD(model.parameters(), lr=0.01), *args, **kwargs)


@pytest.mark.parametrize("cls", STRATEGIES)
def test_only_model_and_optimizer_gives_the_package_minibatches_where_naive_gives_one(cls):
    with pytest.warns(Warning):  # positional, as Naive's users write it
        naive = _build(Naive)
        strategy = _build(cls)
    assert (naive.train_mb_size, naive.eval_mb_size) == (1, 1)
    assert (strategy.train_mb_size, strategy.eval_mb_size) == (64, 256) == tuple(DEFAULT_MINIBATCH_SIZES.values())


@pytest.mark.parametrize("cls", [LiteLoRAStrategy, ShareStrategy])
def test_explicit_sizes_win_by_keyword_by_position_and_as_none(cls):
    model = tiny_mlp()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    strategy = cls(model=model, optimizer=optimizer, train_mb_size=8, eval_mb_size=16)
    assert (strategy.train_mb_size, strategy.eval_mb_size) == (8, 16)
    with pytest.warns(Warning, match="positional"):
        positional = _build(cls, None, 3)  # criterion, train_mb_size
    assert positional.train_mb_size == 3 and positional.eval_mb_size == 256
    model = tiny_mlp()
    as_train = cls(model=model, optimizer=torch.optim.SGD(model.parameters(), lr=0.01),
                   train_mb_size=12, eval_mb_size=None)
    assert as_train.eval_mb_size == 12  # None: Avalanche's "as train_mb_size"


def test_an_experience_takes_its_size_over_64_steps(ci_benchmark):
    """The point of the default: ~290 samples are 5 optimizer steps, not 290."""
    model = tiny_mlp()
    strategy = PerTaskLoRAStrategy(model=model, optimizer=torch.optim.SGD(model.parameters(), lr=0.01),
                                   target_modules=MLP_TARGETS, evaluator=quiet_evaluator())
    experience = ci_benchmark.train_stream[0]
    strategy.train(experience)
    assert strategy.clock.train_exp_iterations == -(-len(experience.dataset) // 64)
