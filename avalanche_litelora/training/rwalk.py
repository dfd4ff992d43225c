"""Avalanche's ``RWalkPlugin`` beside a frozen backbone: its penalty normalisation, made safe.

At the end of each experience RWalk (Avalanche 0.6) normalises its two importance terms by
their maxima, ``imp / max(imp) + relu(score) / max(score)``. When no parameter has a
positive score, ``max(score)`` is 0 and every penalty is ``0 / 0 = NaN``; the next
experience's first loss is then NaN, and the strategies' guard stops there. Two ways lead
there:

- an experience in which no score checkpoint fell: RWalk adds up scores every ``delta_t``
  (10) iterations counted over the whole run and resets them after each experience, so a
  short experience can have none. ``Naive`` gets the same NaN penalty there, and trains on
  silently with NaN weights;
- a frozen backbone: its parameters never move, so their scores are exactly 0, and the
  maximum is 0 as soon as the few tensors that train all score below zero. ``Naive``, whose
  every tensor trains, divides by a negative maximum there and gets a score term of 0.

:class:`RWalkPenaltyRepair` recomputes such penalties with the rule that the second case
gives ``Naive``: a maximum that is not positive leaves its term at zero (``relu(score)`` is
0 everywhere, whatever it would be divided by). Where RWalk's penalties are finite they are
left exactly as RWalk computed them.
"""

from __future__ import annotations

from typing import Dict, Iterable, List

import torch
import torch.nn.functional as F
from avalanche.core import SupervisedPlugin
from avalanche.training.plugins import RWalkPlugin
from avalanche.training.utils import ParamData
from avalanche_litelora.registry import register


def _normalised(values: torch.Tensor, maximum: torch.Tensor) -> torch.Tensor:
    """``values / maximum``, or zeros when no value is positive (RWalk's 0/0)."""
    return values / maximum if maximum > 0 else torch.zeros_like(values)


def safe_penalties(plugin: RWalkPlugin) -> Dict[str, ParamData]:
    """RWalk's per-parameter penalties from its experience scores and importances, with a
    maximum that is not positive leaving its term at zero instead of NaN."""
    scores, importance = plugin.exp_scores, plugin.exp_importance
    max_score = max(s.data.max() for s in scores.values())
    max_imp = max(i.data.max() for i in importance.values())
    penalties = {}
    for name, score in scores.items():
        if name not in importance:
            continue  # as RWalk: a tensor without gradients has no importance
        imp = importance[name]
        term = _normalised(imp.data, max_imp) + _normalised(F.relu(score.expand(imp.data.shape)), max_score)
        penalties[name] = ParamData(name, device=imp.device, init_tensor=term)
    return penalties


def repair_penalties(plugin: RWalkPlugin) -> bool:
    """Replace ``plugin``'s penalties by :func:`safe_penalties` if any is not finite; True if it did."""
    penalties = plugin.exp_penalties
    if not penalties or all(bool(torch.isfinite(p.data).all()) for p in penalties.values()):
        return False
    plugin.exp_penalties = safe_penalties(plugin)
    return True


@register
class RWalkPenaltyRepair(SupervisedPlugin, supports_distributed=True):
    """Repairs the NaN penalties of the strategy's ``RWalkPlugin`` instances (module docstring).

    Appended by the adapter strategies after the user's plugins when one of them is an
    ``RWalkPlugin``: it runs after RWalk's ``after_training_exp``, and again before each
    experience (in case a plugin list was reordered), always before RWalk's next penalty.
    """

    def _repair(self, strategy) -> None:
        for plugin in rwalk_plugins(strategy.plugins):
            repair_penalties(plugin)

    def after_training_exp(self, strategy, **kwargs):
        self._repair(strategy)

    def before_training_exp(self, strategy, **kwargs):
        self._repair(strategy)


def rwalk_plugins(plugins: Iterable) -> List[RWalkPlugin]:
    return [p for p in plugins if isinstance(p, RWalkPlugin)]


def repairs_for(plugins: Iterable) -> List[SupervisedPlugin]:
    """``[RWalkPenaltyRepair()]`` when ``plugins`` hold an ``RWalkPlugin``, else nothing."""
    return [RWalkPenaltyRepair()] if rwalk_plugins(plugins) else []


__all__ = ["RWalkPenaltyRepair", "repair_penalties", "repairs_for", "safe_penalties"]
