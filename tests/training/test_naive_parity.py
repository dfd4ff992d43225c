"""Avalanche behaviours that failed with the LoRA strategies where Naive passed (issue 26).

RWalk: its penalty normalisation divides by the largest score, 0 when no parameter scored
above zero (a short experience, or a frozen backbone's exact zeros): the strategies repair
that NaN (avalanche_litelora.training.rwalk). ReduceLROnPlateau stepped per iteration: the
strategy keeps the user's optimizer object, as Naive does.
"""

from types import SimpleNamespace

import pytest
import torch
from avalanche.core import SupervisedPlugin
from avalanche.training.plugins import LRSchedulerPlugin, RWalkPlugin
from avalanche.training.utils import ParamData
from torch import nn

from avalanche_litelora.training.rwalk import RWalkPenaltyRepair, safe_penalties
from builders import single_thread, tiny_mlp
from compat_runs import TermProbe, build, train_on

one_thread = pytest.fixture(scope="module", autouse=True)(single_thread)

#: 288 training samples per experience in minibatches of 32: 9 iterations, under RWalk's
#: delta_t of 10, so the first experience ends with every score at zero.
SHORT = dict(train_mb_size=32, train_epochs=1)


def _finite(model) -> bool:
    return all(bool(torch.isfinite(p).all()) for p in model.parameters())


def test_a_short_experience_leaves_rwalk_with_nan_penalties_under_naive_too(ci_benchmark):
    """The cause, on Avalanche's own Naive: it trains on with NaN weights, silently."""
    rwalk = RWalkPlugin()
    strategy = build("naive", plugins=[rwalk], **SHORT)
    first, second = list(ci_benchmark.train_stream)[:2]
    strategy.train(first)
    assert max(float(s.data.max()) for s in rwalk.exp_scores.values()) == 0.0
    assert all(bool(torch.isnan(p.data).all()) for p in rwalk.exp_penalties.values())
    strategy.train(second)
    assert not _finite(strategy.model)


@pytest.mark.parametrize("kind", ("litelora", "per_task"))
def test_rwalk_after_a_short_experience_adds_a_finite_penalty_and_trains_on(kind, ci_benchmark):
    probe = TermProbe()
    rwalk = RWalkPlugin()
    strategy = build(kind, plugins=probe.around(rwalk), **SHORT)
    train_on(strategy, list(ci_benchmark.train_stream)[:3])  # stopped at experience 1 before
    terms = torch.tensor(probe.terms)
    assert len(terms) > 0 and torch.isfinite(terms).all() and terms.abs().max() > 0
    assert all(bool(torch.isfinite(p.data).all()) for p in rwalk.exp_penalties.values())
    assert _finite(strategy.model)


@pytest.mark.parametrize("kind", ("naive", "litelora", "per_task"))
def test_task_incremental_rwalk_fails_as_it_does_for_naive(kind, ti_benchmark):
    """Not a NaN any more: the multi-head classifier's new task head, which RWalk never
    registered, as for Naive (the README's empty task-incremental RWalk row)."""
    strategy = build(kind, task_incremental=True, plugins=[RWalkPlugin()], **SHORT)
    with pytest.raises(KeyError, match=r"classifiers\.1"):
        train_on(strategy, list(ti_benchmark.train_stream)[:2])


def _rwalk_after_experience(scores, importance) -> RWalkPlugin:
    """RWalk's own end-of-experience normalisation on hand-made scores and importances."""
    model = nn.Module()
    for name, value in scores.items():
        setattr(model, name, nn.Parameter(torch.zeros_like(value)))
    plugin = RWalkPlugin()
    plugin.checkpoint_scores = {k: ParamData(k, init_tensor=v.clone()) for k, v in scores.items()}
    plugin.iter_importance = {k: ParamData(k, init_tensor=v.clone()) for k, v in importance.items()}
    plugin.after_training_exp(SimpleNamespace(model=model))
    return plugin


def test_a_frozen_tensor_scoring_zero_gives_the_penalty_naive_would_get():
    """Trainable scores all negative: Naive divides by a negative maximum (score term 0); a
    frozen tensor's exact zeros make the maximum 0 (NaN), repaired to Naive's value."""
    trained = {"a": torch.tensor([-1.0, -3.0])}
    importance = {"a": torch.tensor([1.0, 4.0])}
    naive = _rwalk_after_experience(trained, importance)
    with_frozen = _rwalk_after_experience({**trained, "frozen": torch.zeros(2)},
                                          {**importance, "frozen": torch.zeros(2)})
    assert torch.isnan(with_frozen.exp_penalties["a"].data).all()
    repaired = safe_penalties(with_frozen)
    assert torch.equal(repaired["a"].data, naive.exp_penalties["a"].data)
    assert torch.equal(repaired["a"].data, torch.tensor([0.25, 1.0]))
    assert torch.equal(repaired["frozen"].data, torch.zeros(2))


def test_finite_penalties_are_left_exactly_as_rwalk_computed_them():
    plugin = _rwalk_after_experience({"a": torch.tensor([2.0, -1.0])}, {"a": torch.tensor([1.0, 2.0])})
    before = plugin.exp_penalties["a"]
    RWalkPenaltyRepair()._repair(SimpleNamespace(plugins=[plugin]))
    assert plugin.exp_penalties["a"] is before
    assert torch.equal(safe_penalties(plugin)["a"].data, before.data)


class OptimizerWatch(SupervisedPlugin):
    """The strategy's optimizer at the end of every experience, and the learning rates the
    training iterations (not LiteLoRA's selection phase) ran at."""

    def __init__(self):
        super().__init__()
        self.at_exp_end = []
        self.lrs = []

    def after_training_iteration(self, strategy, **kwargs):
        if not getattr(getattr(strategy.model, "gate", None), "selecting", False):
            self.lrs.append(strategy.optimizer.param_groups[0]["lr"])

    def after_training_exp(self, strategy, **kwargs):
        self.at_exp_end.append(strategy.optimizer)


@pytest.mark.parametrize("task_incremental", (False, True))
@pytest.mark.parametrize("kind", ("naive", "litelora", "per_task"))
def test_reduce_lr_on_plateau_per_iteration_keeps_the_users_optimizer(kind, task_incremental,
                                                                       ci_benchmark, ti_benchmark):
    model = tiny_mlp()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, patience=0, factor=0.5)
    watch = OptimizerWatch()
    plugin = LRSchedulerPlugin(scheduler, metric="train_loss", step_granularity="iteration")
    strategy = build(kind, task_incremental=task_incremental, model=model, optimizer_for=lambda m: optimizer,
                     plugins=[plugin, watch], train_epochs=3)
    benchmark = ti_benchmark if task_incremental else ci_benchmark
    train_on(strategy, list(benchmark.train_stream)[:2])
    assert strategy.optimizer is optimizer and scheduler.optimizer is optimizer
    assert all(o is optimizer for o in watch.at_exp_end)
    assert min(watch.lrs) < 0.05  # the scheduler did act on the user's optimizer
    assert optimizer.param_groups[0]["lr"] == 0.05  # and LRSchedulerPlugin reset it after each experience
