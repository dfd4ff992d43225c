"""The strategies the compatibility tests compare, on the same tiny backbone and streams.

Each test runs Avalanche's ``Naive`` as the reference beside LiteLoRA, per-task LoRA and
(task-incremental) Share, with the plugins an Avalanche user would add.
"""

from __future__ import annotations

from typing import Dict, List, Sequence

import torch
from avalanche.core import SupervisedPlugin
from avalanche.models import as_multitask
from avalanche.training.supervised import Naive

from avalanche_litelora import LiteLoRAStrategy, PerTaskLoRAStrategy, ShareStrategy
from builders import MLP_TARGETS, quiet_evaluator, sgd, tiny_mlp

#: Class-incremental kinds, and the task-incremental ones (Share needs task labels).
CI_KINDS = ("naive", "litelora", "per_task")
TI_KINDS = ("naive", "litelora", "per_task", "share")


def build(
    kind: str,
    *,
    task_incremental: bool = False,
    plugins: Sequence[SupervisedPlugin] = (),
    optimizer_for=sgd,
    seed: int = 0,
    model=None,
    **overrides,
):
    """A strategy of ``kind`` on ``model`` (default ``tiny_mlp(seed)``): small sizes, a quiet evaluator."""
    model = tiny_mlp(seed) if model is None else model
    common = dict(
        train_mb_size=32, train_epochs=2, eval_mb_size=512, evaluator=quiet_evaluator(),
        plugins=list(plugins),
    )
    bank = dict(rank=4, target_modules=MLP_TARGETS)
    if kind == "naive":
        if task_incremental:
            model = as_multitask(model, "classifier")
        return Naive(model=model, optimizer=optimizer_for(model), **{**common, **overrides})
    if kind == "litelora":
        settings = dict(selection_mb_size=8, min_selection_steps=30, task_incremental=task_incremental)
        return LiteLoRAStrategy(model=model, optimizer=optimizer_for(model), **{**common, **bank, **settings, **overrides})
    if kind == "per_task":
        return PerTaskLoRAStrategy(
            model=model, optimizer=optimizer_for(model), task_incremental=task_incremental,
            **{**common, **bank, **overrides},
        )
    if kind == "share":
        assert task_incremental, "Share is task-incremental"
        return ShareStrategy(model=model, optimizer=optimizer_for(model), **{**common, **bank, **overrides})
    raise ValueError(kind)


def train_on(strategy, experiences) -> None:
    """One ``train()`` call per experience, as Avalanche's usual loop does."""
    for exp in experiences:
        strategy.train(exp)


class TargetsSeen(SupervisedPlugin):
    """Records the training targets by experience and by phase (``"train"`` / ``"selection"``)."""

    def __init__(self):
        super().__init__()
        self.seen: Dict[tuple, set] = {}

    def before_training_iteration(self, strategy, **kwargs):
        model = getattr(strategy.model, "gate", None)
        phase = "selection" if model is not None and model.selecting else "train"
        key = (strategy.clock.train_exp_counter, phase)
        self.seen.setdefault(key, set()).update(int(y) for y in strategy.mb_y)


_SENTINEL = float(torch.tensor(1e-30))  # exactly representable in float32


class _TermStart(SupervisedPlugin):
    def __init__(self, probe: "TermProbe"):
        super().__init__()
        self.probe = probe

    def before_backward(self, strategy, **kwargs):
        selecting = getattr(getattr(strategy.model, "gate", None), "selecting", False)
        if strategy.clock.train_exp_counter > 0 and not selecting:
            self.probe.saved = strategy.loss
            # the next plugin adds its term alone (to a tiny, non-zero loss: MAS refuses a zero one)
            strategy.loss = torch.full_like(strategy.loss, _SENTINEL)


class _TermEnd(SupervisedPlugin):
    def __init__(self, probe: "TermProbe"):
        super().__init__()
        self.probe = probe

    def before_backward(self, strategy, **kwargs):
        if self.probe.saved is not None:
            self.probe.terms.append(float(strategy.loss.detach()) - _SENTINEL)
            strategy.loss = self.probe.saved + strategy.loss
            self.probe.saved = None


class TermProbe:
    """The exact term a plugin adds to the loss of each training iteration after the first
    experience: put ``probe.start`` before it and ``probe.end`` after it in the plugin list."""

    def __init__(self):
        self.saved = None
        self.terms: List[float] = []
        self.start = _TermStart(self)
        self.end = _TermEnd(self)

    def around(self, plugin) -> list:
        return [self.start, plugin, self.end]


def digits_class_incremental_benchmark(n_experiences: int = 5):
    """The digits through Avalanche's newer ``class_incremental_benchmark`` (no task labels)."""
    from avalanche.benchmarks.scenarios.supervised import class_incremental_benchmark
    from avalanche.benchmarks.utils import as_classification_dataset

    from builders import _digits_split

    train, test = _digits_split()
    return class_incremental_benchmark(
        {"train": as_classification_dataset(train), "test": as_classification_dataset(test)},
        num_experiences=n_experiences, seed=1993,
    )
