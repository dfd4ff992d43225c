"""Learning-rate milestones inside each experience, as the LiteLoRA reference code sets them.

The reference halves the learning rate of every task after the first at 60% and 80% of its
magnitude epochs (``MultiStepLR(milestones=[0.6 E, 0.8 E], gamma=0.5)``, rebuilt per task);
its first task keeps a constant rate. The rate is computed from the base rate given here and
the epoch counter of Avalanche's clock, so the plugin holds no state: a run resumed from a
checkpoint gets the same rates as the uninterrupted one.
"""

from __future__ import annotations

import numbers
from typing import Sequence

from avalanche.core import SupervisedPlugin

from avalanche_litelora.checks import check_count, check_real
from avalanche_litelora.registry import register


#: The key under which a parameter group keeps its rate before any milestone.
BASE_KEY = "milestones_base_lr"


@register
class EpochMilestonesLRPlugin(SupervisedPlugin, supports_distributed=True):
    """Sets ``lr = base_lr * gamma ** (milestones passed)`` before every training epoch.

    A group whose own rate differs from ``base_lr`` when the plugin first sees it (the
    reference's magnitude group, 8e-3 beside 0.01) keeps its ratio to ``base_lr``: every
    group's rate is scaled by the same factor, as ``MultiStepLR`` scales them.

    :param base_lr: the rate the milestones scale: the optimizer's own rate (a group with
        another rate is scaled by the same factor).
    :param milestones: fractions of ``train_epochs`` at which the rate is multiplied by ``gamma``.
    :param gamma: the factor.
    :param from_experience: experiences before this one keep ``base_lr`` throughout.
    """

    def __init__(self, base_lr: float, milestones: Sequence[float] = (0.6, 0.8), gamma: float = 0.5,
                 from_experience: int = 1):
        super().__init__()
        check_real("base_lr", base_lr, positive=True)
        check_real("gamma", gamma, positive=True)
        if not all(isinstance(m, numbers.Real) and 0 < m <= 1 for m in milestones):
            raise ValueError(f"milestones must be fractions in (0, 1], got {list(milestones)!r}")
        check_count("from_experience", from_experience, 0)
        self.base_lr = float(base_lr)
        self.milestones = tuple(float(m) for m in milestones)
        self.gamma = float(gamma)
        self.from_experience = from_experience

    def rate(self, experience: int, epoch: int, train_epochs: int) -> float:
        """The rate of ``epoch`` (0-based) of ``experience`` when it trains ``train_epochs``."""
        if experience < self.from_experience:
            return self.base_lr
        passed = sum(epoch >= int(m * train_epochs) for m in self.milestones)
        return self.base_lr * self.gamma ** passed

    def _set(self, strategy, lr: float) -> None:
        factor = lr / self.base_lr
        for group in strategy.optimizer.param_groups:
            # stored in the group, so a checkpoint of the optimizer carries it
            group["lr"] = group.setdefault(BASE_KEY, group["lr"]) * factor

    def before_training_epoch(self, strategy, **kwargs):
        clock = strategy.clock
        self._set(strategy, self.rate(clock.train_exp_counter, clock.train_exp_epochs, strategy.train_epochs))

    def after_training_exp(self, strategy, **kwargs):
        self._set(strategy, self.base_lr)
