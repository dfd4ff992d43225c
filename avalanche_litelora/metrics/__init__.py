"""Summaries of a continual-learning run."""

from avalanche_litelora.metrics.accuracy_matrix import (
    accuracy_row,
    average_anytime_accuracy,
    average_forgetting,
    backward_transfer,
    final_accuracy,
    forgetting_per_experience,
)

__all__ = [
    "accuracy_row",
    "average_anytime_accuracy",
    "average_forgetting",
    "backward_transfer",
    "final_accuracy",
    "forgetting_per_experience",
]
