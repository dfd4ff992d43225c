"""Strategies build a headless backbone's head from the first experience they are given.

Plugins that record the parameters when ``train()`` starts (SI, RWalk, EWC) must see the
head with the rest, so it is built before Avalanche's loop begins: ``train()`` and
``eval()`` look at their first experience, one dry forward pass measures the backbone's
output width (:mod:`avalanche_litelora.models.pending_head`), and only then hand over. A
backbone that cannot be measured is refused there, before anything has changed.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable

from avalanche_litelora.models.pending_head import PendingHead, build_pending_head
from avalanche_litelora.models.access import unwrap


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
    """Template mixin: a pending head is built from the first experience train/eval gets."""

    def _build_pending_head(self, experiences):
        model = unwrap(self.model)
        if not isinstance(getattr(model, "head", None), PendingHead):
            return experiences
        first, experiences = _first_and_all(experiences)
        if first is not None:
            build_pending_head(model, first)
        return experiences

    def train(self, experiences, *args, **kwargs):
        return super().train(self._build_pending_head(experiences), *args, **kwargs)

    def eval(self, exp_list, **kwargs):
        return super().eval(self._build_pending_head(exp_list), **kwargs)
