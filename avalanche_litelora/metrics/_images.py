"""Figures as Avalanche ``TensorImage``s: TensorBoard logs them as images, text loggers skip them."""

from __future__ import annotations

from avalanche.evaluation.metric_results import TensorImage
from matplotlib.figure import Figure
from torchvision.transforms.functional import to_tensor

from avalanche_litelora.analysis.plots import figure_to_image


def figure_to_tensor_image(fig: Figure) -> TensorImage:
    """A 3 x H x W float image in [0, 1] (a PIL image would be printed as its repr by text loggers)."""
    return TensorImage(to_tensor(figure_to_image(fig)))
