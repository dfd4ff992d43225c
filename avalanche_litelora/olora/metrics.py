"""O-LoRA's read-outs for TensorBoard: is the new adapter orthogonal to the earlier ones, and
what does the penalty cost while it trains?

- :class:`OLoRAOverlapMetric`, after each training experience (x = its index), from the
  second adapter on: ``OLoRA/overlap/<layer>.<slice>``, the scale-free overlap of the newest
  adapter's ``A`` with the earlier adapters' (:func:`~avalanche_litelora.olora.overlap`,
  0 for orthogonal row spaces), and ``OLoRA/overlap_mean`` over layers and slices. The raw
  penalty can fall by shrinking ``A``; this cannot, so it is the method's fidelity curve.
- :class:`OLoRAPenaltyMetric`, per training epoch (x = the training iteration, as
  Avalanche's ``Loss_Epoch``): ``OLoRA/orthogonal_loss`` and ``OLoRA/l2_loss``, the epoch's
  mean of the unweighted terms the strategy added to the loss (each only while its weight
  is non-zero).

Add :func:`olora_metrics` to your own ``EvaluationPlugin``. Strategies without O-LoRA's
plugin are skipped with one warning per metric; only plain data is kept on the metrics, so
the package's checkpoints restore them.
"""

from __future__ import annotations

from typing import Dict, List, Optional

from avalanche.evaluation import PluginMetric
from avalanche.evaluation.metric_results import MetricValue

from avalanche_litelora.metrics.bank_readouts import OptionalLoRAClassifier as BankLookup
from avalanche_litelora.metrics.readout import ExperienceReadoutMetric, warn_once
from avalanche_litelora.olora.plugins import OrthogonalityPlugin, bank_overlap
from avalanche_litelora.registry import register


def find_penalty(strategy) -> Optional[OrthogonalityPlugin]:
    """The strategy's O-LoRA penalty plugin, or ``None``."""
    return next((p for p in getattr(strategy, "plugins", ()) if isinstance(p, OrthogonalityPlugin)), None)


@register
class OLoRAOverlapMetric(ExperienceReadoutMetric):
    """The newest adapter's overlap with the earlier ones, per layer and slice, per experience.

    Reads the bank only, so it also runs on per-task LoRA: the same curve without the penalty
    is the comparison that shows what O-LoRA's penalty does.
    """

    def __init__(self):
        super().__init__()
        self._bank = BankLookup("OLoRAOverlapMetric")

    def read(self, strategy) -> Optional[Dict[str, float]]:
        model = self._bank(strategy)
        if model is None or len(model.adapter_names) < 2:
            return None  # the first adapter has nothing to overlap with
        per_slice = bank_overlap(model, model.adapter_names[-1])
        values = {f"OLoRA/overlap/{where}": value for where, value in per_slice.items()}
        values["OLoRA/overlap_mean"] = sum(per_slice.values()) / len(per_slice)
        return values

    def __str__(self) -> str:
        return "OLoRAOverlap"


@register
class OLoRAPenaltyMetric(PluginMetric[dict]):
    """The epoch's mean orthogonality (and L2) term, as :class:`OrthogonalityPlugin` computed it."""

    def __init__(self):
        super().__init__()
        self._warned = False
        self._sums: Dict[str, float] = {}
        self._steps = 0
        self._last: Dict[str, float] = {}

    def result(self) -> dict:
        return dict(self._last)

    def reset(self) -> None:
        self._sums, self._steps = {}, 0

    def before_training_epoch(self, strategy):
        self.reset()

    def after_training_iteration(self, strategy):
        penalty = find_penalty(strategy)
        if penalty is None:
            warn_once(self, "OLoRAPenaltyMetric: the strategy has no O-LoRA orthogonality plugin; "
                            "its read-outs are skipped")
            return
        if not penalty.last:
            return  # no candidate, or both weights zero: nothing was added this step
        weights = {"orthogonal": penalty.lambda_orth, "l2": penalty.lambda_l2}
        for term, value in penalty.last.items():
            if weights.get(term, 0):
                self._sums[term] = self._sums.get(term, 0.0) + value
        self._steps += 1

    def after_training_epoch(self, strategy) -> List[MetricValue]:
        if not self._steps:
            return []
        values = {f"OLoRA/{term}_loss": total / self._steps for term, total in self._sums.items()}
        self._last = values
        x = strategy.clock.train_iterations
        return [MetricValue(self, tag, value, x) for tag, value in values.items()]

    def __str__(self) -> str:
        return "OLoRAPenalty"


def olora_metrics(*, overlap: bool = True, penalty: bool = True) -> List[PluginMetric]:
    """O-LoRA's read-outs, for your ``EvaluationPlugin`` (beside ``litelora_metrics()``)."""
    metrics: List[PluginMetric] = []
    if overlap:
        metrics.append(OLoRAOverlapMetric())
    if penalty:
        metrics.append(OLoRAPenaltyMetric())
    return metrics
