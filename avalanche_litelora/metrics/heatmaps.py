"""The accuracy matrix so far as a heatmap image, one per training experience (x = its index)."""

from __future__ import annotations

from typing import List

from avalanche.evaluation.metric_results import MetricValue

from avalanche_litelora.analysis.plots import heatmap_figure
from avalanche_litelora.metrics._images import figure_to_tensor_image
from avalanche_litelora.metrics.recorder import RecordedMatrixMetric
from avalanche_litelora.registry import register


@register
class AccuracyMatrixHeatmapMetric(RecordedMatrixMetric):
    """``Images/accuracy_matrix/<stream>``: rows = after training experience i, columns = experiences.

    Emitted as an Avalanche ``TensorImage`` (``TensorboardLogger`` writes it with
    ``add_image``; text loggers skip it). Experiences evaluated but not yet trained show as columns too.
    """

    def __init__(self, stream: str = "test_stream"):
        super().__init__(stream)
        self._last = None

    def result(self):
        """``(columns, rows)`` of the last matrix drawn (or None); the image itself is not kept,
        so checkpoints of the evaluator's metric state stay small."""
        return self._last

    def reset(self) -> None:
        self._last = None

    def after_eval(self, strategy) -> List[MetricValue]:
        step = self.recorder.new_complete_row()
        if step is None:
            return []
        columns, values = self.recorder.full_matrix(step)
        fig = heatmap_figure(
            values,
            row_labels=[f"after {i}" for i in range(step + 1)],
            col_labels=[str(j) for j in columns],
            title=f"accuracy on {self.recorder.stream}",
            xlabel="evaluated experience",
            ylabel="after training experience",
        )
        self._last = (columns, values)
        image = figure_to_tensor_image(fig)
        return [MetricValue(self, f"Images/accuracy_matrix/{self.recorder.stream}", image, step)]

    def __str__(self) -> str:
        return "AccuracyMatrixHeatmap"
