"""The redundancy analysis after each training experience (x = its index), as metrics.

Emits the model-level figures of :mod:`avalanche_litelora.analysis.redundancy`:
``Redundancy/mean_overlap``, ``Redundancy/mean_captured``, ``Redundancy/rank90``,
``Redundancy/rank99``, ``Redundancy/captured/<adapter>`` and the image
``Images/adapter_overlap`` (the pairwise overlap heatmap); with ``side="input"`` the same
under ``Redundancy/input/`` and ``Images/adapter_overlap/input``.
"""

from __future__ import annotations

from typing import List

from avalanche.evaluation import PluginMetric
from avalanche.evaluation.metric_results import MetricValue

from avalanche_litelora.analysis.redundancy import analyse_model, check_side
from avalanche_litelora.analysis.report import overlap_figure, scalars, side_suffix
from avalanche_litelora.metrics.bank_readouts import OptionalLoRAClassifier
from avalanche_litelora.metrics._images import figure_to_tensor_image
from avalanche_litelora.registry import register


@register
class AdapterRedundancyMetric(PluginMetric[dict]):
    """Subspace overlap, captured fraction and effective rank of the bank, after pruning/freezing.

    ``image=False`` skips the heatmap (matplotlib rendering is the costly part on long
    streams). ``side="input"`` measures the updates' row spaces (the span of ``A``, where
    InfLoRA and O-LoRA act) instead of their column spaces. Models that are not a
    ``LoRAClassifier`` are skipped with one warning.
    """

    def __init__(self, image: bool = True, side: str = "output"):
        super().__init__()
        self.image = bool(image)
        self.side = check_side(side)
        self._bank = OptionalLoRAClassifier("AdapterRedundancyMetric")
        self._step = -1
        self._last = None

    def result(self) -> dict:
        """The scalars emitted last, by tag. Only plain data is kept, so checkpoints restore it;
        call :func:`avalanche_litelora.analysis.analyse_model` for the full report."""
        return dict(self._last or {})

    def reset(self) -> None:
        self._last = None

    def after_training_exp(self, strategy) -> List[MetricValue]:
        self._step += 1
        model = self._bank(strategy)
        if model is None or not model.adapter_names:
            return []
        # reads A/B/magnitudes only: merging is irrelevant
        report = analyse_model(model, slices=False, side=self.side)
        self._last = scalars(report)
        out = [MetricValue(self, tag, value, self._step) for tag, value in self._last.items()]
        if self.image:
            image = figure_to_tensor_image(overlap_figure(report))
            tag = "Images/adapter_overlap" + side_suffix(self.side)
            out.append(MetricValue(self, tag, image, self._step))
        return out

    def __str__(self) -> str:
        return "AdapterRedundancy"
