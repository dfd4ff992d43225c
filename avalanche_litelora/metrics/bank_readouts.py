"""The adapter bank after each training experience (x = its index): size, gates, magnitudes.

Runs in ``after_training_exp``. The ``EvaluationPlugin`` comes after the strategy's plugins,
so the read-out sees the bank after this experience's pruning and freezing.
"""

from __future__ import annotations

from typing import Dict, List

from avalanche.evaluation import PluginMetric
from avalanche.evaluation.metric_results import MetricValue

from avalanche_litelora.adapters.access import OptionalAdapterModel
from avalanche_litelora.lora.model import LoRAClassifier
from avalanche_litelora.registry import register


class OptionalLoRAClassifier(OptionalAdapterModel):
    """The strategy's LoRA bank, or None (warned once) for a metric on another model."""

    kind = LoRAClassifier


@register
class BankReadoutMetric(PluginMetric[dict]):
    """``Bank/active_adapters``, ``Bank/pruned_adapters``, ``Bank/adapter_parameters``,
    ``Bank/gate_logit/<adapter>`` and ``Bank/magnitude/<adapter>`` per training experience
    (``<adapter>`` as in Python: ``adapter_7``).

    The magnitude of an adapter is the mean of its per-layer (and per q/v slice) SD-LoRA
    alphas; ``per_layer_magnitudes=True`` also emits each one. A candidate pruned in this
    experience gets its last gate logit (from the end of its selection phase), which shows why
    it was pruned (logit <= 0). Models that are not a ``LoRAClassifier`` are skipped with
    one warning.
    """

    def __init__(self, per_layer_magnitudes: bool = False):
        super().__init__()
        self.per_layer_magnitudes = bool(per_layer_magnitudes)
        self._bank = OptionalLoRAClassifier("BankReadoutMetric")
        self._step = -1
        self._logits_before_pruning: Dict[str, float] = {}
        self._last: dict = {}

    def result(self) -> dict:
        return dict(self._last)

    def reset(self) -> None:
        self._last = {}

    def before_training_exp(self, strategy):
        self._logits_before_pruning = {}

    def after_training_epoch(self, strategy):
        self._remember_logits(strategy)

    def after_training_iteration(self, strategy):
        """The selection phase runs after the last epoch: keep its logits as they move."""
        model = self._bank(strategy)
        if model is not None and model.gate.selecting:
            self._remember_logits(strategy)

    def _remember_logits(self, strategy) -> None:
        model = self._bank(strategy)
        if model is not None:
            self._logits_before_pruning = model.gate_logits()

    def after_training_exp(self, strategy) -> List[MetricValue]:
        self._step += 1
        model = self._bank(strategy)
        if model is None:
            return []
        values = {
            "Bank/active_adapters": len(model.active_adapters),
            "Bank/pruned_adapters": len(model.pruned_adapters),
            "Bank/adapter_parameters": model.adapter_parameter_count(),
        }
        logits = dict(self._logits_before_pruning)
        logits.update(model.gate_logits())
        for name, logit in logits.items():
            if name in model.adapter_names or name in model.pruned_adapters:
                values[f"Bank/gate_logit/{name}"] = logit
        for name, per_layer in model.magnitudes().items():
            if per_layer:
                values[f"Bank/magnitude/{name}"] = sum(per_layer.values()) / len(per_layer)
            if self.per_layer_magnitudes:
                for where, alpha in per_layer.items():
                    values[f"Bank/magnitude/{name}/{where}"] = alpha
        self._last = values
        return [MetricValue(self, name, value, self._step) for name, value in values.items()]

    def __str__(self) -> str:
        return "BankReadout"
