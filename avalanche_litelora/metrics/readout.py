"""The shape every per-experience read-out metric shares: numbers read off the strategy once an
experience has trained, logged at one step per experience, the last values as the result."""

from __future__ import annotations

import warnings
from typing import Dict, List, Optional

from avalanche.evaluation import PluginMetric
from avalanche.evaluation.metric_results import MetricValue


class ExperienceReadoutMetric(PluginMetric[dict]):
    """Subclasses say what to read (:meth:`read`); nothing read, nothing logged."""

    def __init__(self):
        super().__init__()
        self._step = -1
        self._last: Dict[str, float] = {}

    def result(self) -> dict:
        return dict(self._last)

    def reset(self) -> None:
        self._last = {}

    def read(self, strategy) -> Optional[Dict[str, float]]:
        raise NotImplementedError

    def after_training_exp(self, strategy) -> List[MetricValue]:
        self._step += 1
        values = self.read(strategy)
        if not values:
            return []
        self._last = values
        return [MetricValue(self, tag, value, self._step) for tag, value in values.items()]


def warn_once(metric, message: str) -> None:
    """One ``RuntimeWarning`` per metric object (its ``_warned`` flag, plain data for checkpoints):
    a metric added to a strategy it cannot read says so, then stays quiet."""
    if not metric._warned:
        metric._warned = True
        warnings.warn(message, RuntimeWarning, stacklevel=3)
