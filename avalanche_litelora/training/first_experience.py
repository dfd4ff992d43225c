"""What strategies do with the experiences they are given, before Avalanche's loop: a
class-incremental model refuses task-labelled ones, and a headless backbone's head is built.

A class-incremental model has one head over every class and ignores task labels, so a
task-labelled stream (``SplitMNIST(return_task_id=True)``, whose class ids restart from 0 in
each task) would silently share one head's outputs between tasks. ``train()`` and ``eval()``
refuse it before anything changes (each experience they can read without consuming it, and
any other one before its own training or evaluation begins).

Plugins that record the parameters when ``train()`` starts (SI, RWalk, EWC) must see the
head with the rest, so it is built before Avalanche's loop begins: ``train()`` and
``eval()`` look at their first experience, one dry forward pass measures the backbone's
output width (:mod:`avalanche_litelora.adapters.pending_head`), and only then hand over. A
backbone that cannot be measured is refused there, before anything has changed.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Sequence

from avalanche.models import MultiTaskModule

from avalanche_litelora.adapters.access import unwrap_ddp
from avalanche_litelora.adapters.pending_head import PendingHead, build_pending_head


def refuse_task_labels(strategy: str, experience) -> None:
    """A class-incremental strategy given an experience labelled with a task other than 0."""
    labels = getattr(experience, "task_labels", None) or []
    others = sorted({int(t) for t in labels} - {0})
    if others:
        index = getattr(experience, "current_experience", "?")
        raise ValueError(
            f"experience {index} has task label(s) {others}, but {strategy} is class-incremental "
            "(one head over every class; task labels are ignored, and tasks whose class ids "
            "restart from 0, as SplitMNIST(return_task_id=True) numbers them, would share its "
            "outputs). For task-incremental learning pass task_incremental=True (or use "
            "TaskRoutedLoRAStrategy, or ShareStrategy); for class-incremental learning build "
            "the benchmark without task labels (e.g. SplitMNIST(return_task_id=False))"
        )


def _readable(experiences) -> list:
    """The experiences that can be read without consuming anything: one, or a sequence
    (a list, an Avalanche stream); a one-shot iterator's are checked as they come."""
    if not isinstance(experiences, Iterable):
        return [experiences]
    if isinstance(experiences, Sequence) and not isinstance(experiences, Iterator):
        return list(experiences)
    return []


def _first_and_all(experiences):
    """The first experience, and ``experiences`` unchanged for the caller (a generator too)."""
    if not isinstance(experiences, Iterable):
        return experiences, experiences
    iterator = iter(experiences)
    if iterator is experiences:  # a one-shot iterator: put the first one back
        first = next(iterator, None)
        return first, itertools.chain([] if first is None else [first], iterator)
    return next(iterator, None), experiences


class HeadFromFirstExperienceMixin:
    """Template mixin: task labels checked, and a pending head built from the first experience
    ``train`` / ``eval`` gets."""

    def _refuses_task_labels(self) -> bool:
        return not isinstance(unwrap_ddp(self.model), MultiTaskModule)

    def _check_task_labels(self, experiences) -> None:
        if self._refuses_task_labels():
            for experience in experiences:
                refuse_task_labels(type(self).__name__, experience)

    def _build_pending_head(self, experiences):
        model = unwrap_ddp(self.model)
        if not isinstance(getattr(model, "head", None), PendingHead):
            return experiences
        first, experiences = _first_and_all(experiences)
        if first is not None:
            build_pending_head(model, first)
        return experiences

    def train(self, experiences, *args, **kwargs):
        self._check_task_labels(_readable(experiences))
        return super().train(self._build_pending_head(experiences), *args, **kwargs)

    def eval(self, exp_list, **kwargs):
        self._check_task_labels(_readable(exp_list))
        return super().eval(self._build_pending_head(exp_list), **kwargs)

    def _before_training_exp(self, **kwargs):
        self._check_task_labels([self.experience])  # one a one-shot iterator gave
        super()._before_training_exp(**kwargs)

    def _before_eval_exp(self, **kwargs):
        self._check_task_labels([self.experience])
        super()._before_eval_exp(**kwargs)
