"""Summaries of a continual-learning run."""

from avalanche_litelora.metrics.accuracy_matrix import (
    accuracy_row,
    average_anytime_accuracy,
    average_forgetting,
    backward_transfer,
    final_accuracy,
    forgetting_per_experience,
    just_trained_accuracy,
)
from avalanche_litelora.metrics.bank_readouts import BankReadoutMetric
from avalanche_litelora.metrics.forgetting_curve import ForgettingCurveMetric
from avalanche_litelora.metrics.heatmaps import AccuracyMatrixHeatmapMetric
from avalanche_litelora.metrics.recorder import AccuracyMatrixRecorder
from avalanche_litelora.metrics.redundancy_metric import AdapterRedundancyMetric

__all__ = [
    "AccuracyMatrixHeatmapMetric",
    "AccuracyMatrixRecorder",
    "AdapterRedundancyMetric",
    "BankReadoutMetric",
    "ForgettingCurveMetric",
    "accuracy_row",
    "average_anytime_accuracy",
    "average_forgetting",
    "backward_transfer",
    "final_accuracy",
    "forgetting_per_experience",
    "just_trained_accuracy",
]
