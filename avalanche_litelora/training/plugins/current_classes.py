"""Class-incremental cross-entropy on the current classes, right for every sample.

A sample of the current experience competes with the experience's classes only (the
paper's loss); a sample of an earlier class, which rehearsal (``ReplayPlugin``,
``GDumbPlugin``, generative replay) puts in the minibatch, with every class seen so far.
See :mod:`avalanche_litelora.training.losses` for why.
"""

from __future__ import annotations

from typing import List

from avalanche.benchmarks import OnlineCLExperience
from avalanche.core import SupervisedPlugin

from avalanche_litelora.training.losses import ClassRestrictedLoss
from avalanche_litelora._warnings import OncePerRun
from avalanche_litelora.adapters.seeded_heads import classes_of
from avalanche_litelora.registry import register


class SingleClassExperienceWarning(UserWarning):
    """An experience with one class gives the current-classes loss nothing to separate."""


def experience_classes(experience) -> List[int]:
    """The classes of the whole experience (of the origin experience, on an online stream)."""
    if isinstance(experience, OnlineCLExperience) and experience.access_task_boundaries:
        experience = experience.origin_experience
    return classes_of(experience)


@register
class CurrentClassesLossPlugin(SupervisedPlugin, supports_distributed=True):
    """Wraps the strategy's criterion in a :class:`ClassRestrictedLoss` while it trains.

    The wrapping lasts one ``train()`` call (evaluation inside it uses the plain
    criterion), so the strategy's configuration, checkpoints included, keeps the user's
    criterion. :attr:`seen_classes` grows with every training experience.
    """

    def __init__(self):
        super().__init__()
        #: Every class a training experience has held so far, sorted.
        self.seen_classes: List[int] = []
        self._enabled_before_eval = True
        self._warnings = OncePerRun()

    def _loss(self, strategy) -> ClassRestrictedLoss:
        if not isinstance(strategy._criterion, ClassRestrictedLoss):
            strategy._criterion = ClassRestrictedLoss(strategy._criterion)
        return strategy._criterion

    def before_training(self, strategy, **kwargs):
        self._loss(strategy)

    def before_training_exp(self, strategy, **kwargs):
        classes = experience_classes(strategy.experience)
        if len(classes) == 1 and not isinstance(strategy.experience, OnlineCLExperience):
            self._warnings.warn(
                "single_class",
                f"experience {strategy.experience.current_experience} holds the single class "
                f"{classes[0]}: cross-entropy on the current classes only is zero, so nothing "
                "trains on it (LiteLoRA then prunes its adapter); put at least two classes in "
                "each experience (shown once per run)",
                SingleClassExperienceWarning,
                stacklevel=2,
            )
        self.seen_classes = sorted(set(self.seen_classes) | set(classes))
        loss = self._loss(strategy)
        loss.set_classes(classes, self.seen_classes)
        loss.enabled = True

    def before_eval(self, strategy, **kwargs):
        if isinstance(strategy._criterion, ClassRestrictedLoss):
            self._enabled_before_eval = strategy._criterion.enabled
            strategy._criterion.enabled = False

    def after_eval(self, strategy, **kwargs):
        if isinstance(strategy._criterion, ClassRestrictedLoss):
            strategy._criterion.enabled = self._enabled_before_eval

    def after_training(self, strategy, **kwargs):
        self.abort_experience(strategy)

    def abort_experience(self, strategy) -> None:
        """Give the strategy back the user's criterion (also when an experience fails)."""
        if isinstance(strategy._criterion, ClassRestrictedLoss):
            strategy._criterion = strategy._criterion.criterion

    def checkpoint_state(self) -> dict:
        return {"seen_classes": list(self.seen_classes)}

    def load_checkpoint_state(self, state: dict) -> None:
        self.seen_classes = [int(c) for c in state["seen_classes"]]
