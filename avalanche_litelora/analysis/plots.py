"""Heatmaps as matplotlib figures on the Agg canvas, and as PIL images for loggers.

Figures are built with ``matplotlib.figure.Figure`` and an explicit ``FigureCanvasAgg``,
never through pyplot: no window, no global backend switch in the user's session.
Avalanche's ``TensorboardLogger`` logs a PIL image with ``add_image`` and the text loggers
skip it, so metrics emit :func:`figure_to_image` output; the CLI saves the figures as PNG.
"""

from __future__ import annotations

import io
import math
from typing import Optional, Sequence

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image


def _figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    return fig


def heatmap_figure(
    values: Sequence[Sequence[float]],
    *,
    row_labels: Sequence[str],
    col_labels: Sequence[str],
    title: str,
    xlabel: str = "",
    ylabel: str = "",
    vmin: float = 0.0,
    vmax: float = 1.0,
    annotate: Optional[bool] = None,
) -> Figure:
    """A labelled heatmap; NaN cells stay blank. Annotated with values when small enough to read."""
    n_rows, n_cols = len(row_labels), len(col_labels)
    annotate = (n_rows * n_cols <= 400) if annotate is None else annotate
    size = max(3.0, 0.45 * max(n_rows, n_cols) + 2.0)
    fig = _figure(size + 1.0, size)
    ax = fig.add_subplot(1, 1, 1)
    image = ax.imshow(values, vmin=vmin, vmax=vmax, cmap="viridis", aspect="auto")
    fig.colorbar(image, ax=ax)
    ax.set_xticks(range(n_cols), labels=list(col_labels), rotation=90 if n_cols > 8 else 0)
    ax.set_yticks(range(n_rows), labels=list(row_labels))
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if annotate:
        for i, row in enumerate(values):
            for j, value in enumerate(row):
                if not math.isnan(value):
                    light = value < vmin + 0.6 * (vmax - vmin)
                    ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=7,
                            color="white" if light else "black")
    fig.tight_layout()
    return fig


def grid_of_heatmaps(panels: Sequence[tuple], *, labels: Sequence[str], title: str) -> Figure:
    """Several square heatmaps (``(name, matrix)`` pairs) on one figure, same 0..1 colour scale."""
    count = max(1, len(panels))
    cols = min(4, count)
    rows = math.ceil(count / cols)
    fig = _figure(3.2 * cols + 1.0, 3.0 * rows + 0.6)
    image = None
    for index, (name, matrix) in enumerate(panels):
        ax = fig.add_subplot(rows, cols, index + 1)
        image = ax.imshow(matrix, vmin=0.0, vmax=1.0, cmap="viridis")
        ax.set_title(name, fontsize=8)
        ax.set_xticks(range(len(labels)), labels=list(labels), fontsize=6, rotation=90)
        ax.set_yticks(range(len(labels)), labels=list(labels), fontsize=6)
    if image is not None:
        fig.colorbar(image, ax=fig.axes)
    fig.suptitle(title)
    return fig


def bar_figure(values: Sequence[float], *, labels: Sequence[str], title: str, ylabel: str) -> Figure:
    """One bar per label; NaN bars are left out."""
    fig = _figure(max(4.0, 0.5 * len(labels) + 2.0), 3.5)
    ax = fig.add_subplot(1, 1, 1)
    ax.bar(range(len(values)), [0.0 if math.isnan(v) else v for v in values])
    ax.set_xticks(range(len(labels)), labels=list(labels), rotation=90 if len(labels) > 8 else 0)
    ax.set_ylim(0.0, 1.0)
    ax.set_title(title)
    ax.set_ylabel(ylabel)
    fig.tight_layout()
    return fig


def figure_to_image(fig: Figure, dpi: int = 100) -> Image.Image:
    """Render to an RGB PIL image (what Avalanche's TensorboardLogger logs with ``add_image``)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    buffer.seek(0)
    with Image.open(buffer) as image:
        return image.convert("RGB")
