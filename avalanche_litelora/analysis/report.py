"""Show a :class:`RedundancyReport`: a text table, PNG heatmaps, TensorBoard; load saved banks."""

from __future__ import annotations

import math
import pickle
from pathlib import Path
from typing import Dict, List, Mapping, Union

import torch
from torch import Tensor

from avalanche_litelora.analysis.plots import bar_figure, grid_of_heatmaps, heatmap_figure
from avalanche_litelora.analysis.redundancy import RedundancyReport, UnitRedundancy


def load_state_dict_file(path: Union[str, Path], *, trust: bool = False) -> Dict[str, Tensor]:
    """The model state dict in a checkpoint (``{"model": state_dict, ...}``) or a bare state dict file.

    Loads with ``weights_only=True`` (no code runs from the file); ``trust=True`` allows a
    full unpickle for checkpoints that store other Python objects.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=not trust)
    except pickle.UnpicklingError as error:
        raise ValueError(
            f"{path} holds objects torch.load(weights_only=True) refuses; if you trust the file, "
            f"pass trust=True (CLI: --trust-checkpoint). Loader said: {error}"
        ) from error
    if isinstance(obj, Mapping) and isinstance(obj.get("model"), Mapping):
        obj = obj["model"]
    elif isinstance(obj, Mapping) and isinstance(obj.get("state_dict"), Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping):
        raise ValueError(f"{path} holds a {type(obj).__name__}, not a state dict or a checkpoint dict")
    return dict(obj)


_SIDE_WORDS = {"output": "column spaces of Delta W", "input": "row spaces of Delta W, the span of A"}


def _fmt(value: float) -> str:
    return "   -" if math.isnan(value) else f"{value:.3f}"


def format_table(report: RedundancyReport) -> str:
    """Per unit: mean pairwise overlap, mean captured fraction, effective ranks; then the model's matrices."""
    n = len(report.adapters)
    units: List[UnitRedundancy] = [report.model] + [
        unit for name in report.layers for unit in _layer_and_slices(report, name)
    ]
    width = max(len(u.name) for u in units)
    lines = [
        f"{len(report.adapters)} adapters: {', '.join(report.adapters)}",
        f"side: {report.side} ({_SIDE_WORDS[report.side]})",
        f"{'unit':<{width}}  overlap  captured  rank90  rank99  max",
    ]
    for unit in units:
        max_rank = len(unit.singular_values)
        lines.append(
            f"{unit.name:<{width}}  {_fmt(unit.mean_pairwise_overlap):>7}  "
            f"{_fmt(unit.mean_captured):>8}  {unit.rank90:>6}  {unit.rank99:>6}  {max_rank:>3}"
        )
    names = [_short(a) for a in report.adapters]
    lines += ["", "model overlap (mean cos^2 of principal angles):"]
    lines.append(" " * 6 + "".join(f"{name:>7}" for name in names))
    for i in range(n):
        row = "".join(f"{_fmt(float(report.model.overlap[i, j])):>7}" for j in range(n))
        lines.append(f"{names[i]:>6}{row}")
    lines += ["", "captured by earlier adapters (fraction of ||Delta W||^2), model:"]
    lines.append("  ".join(f"{names[i]}={_fmt(float(report.model.captured[i]))}" for i in range(n)))
    return "\n".join(lines)


def _layer_and_slices(report: RedundancyReport, layer: str) -> List[UnitRedundancy]:
    prefix = layer + "."
    return [report.layers[layer]] + [
        unit for key, unit in report.slices.items()
        if key.startswith(prefix) and "." not in key[len(prefix):]
    ]


def _short(adapter: str) -> str:
    """``adapter_12`` -> ``a12`` for narrow table columns and tick labels."""
    tail = adapter.rsplit("_", 1)[-1]
    return f"a{tail}" if tail.isdigit() else adapter


def side_suffix(side: str) -> str:
    """``""`` for the output side (its tags as before the option), ``"/input"`` for the input
    side, so both sides can share one TensorBoard folder."""
    return "" if side == "output" else f"/{side}"


def _title(report: RedundancyReport, text: str) -> str:
    return text if report.side == "output" else f"{text}, input side"


def overlap_figure(report: RedundancyReport):
    names = [_short(a) for a in report.adapters]
    return heatmap_figure(
        report.model.overlap.tolist(), row_labels=names, col_labels=names,
        title=_title(report, "adapter subspace overlap (model)"), xlabel="adapter", ylabel="adapter",
    )


def save_pngs(report: RedundancyReport, out_dir: Union[str, Path]) -> List[Path]:
    """``overlap_model.png``, ``overlap_layers.png``, ``captured.png`` under ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    names = [_short(a) for a in report.adapters]
    units = list(report.slices.values()) or list(report.layers.values())
    figures = {
        "overlap_model.png": overlap_figure(report),
        "overlap_layers.png": grid_of_heatmaps(
            [(u.name, u.overlap.tolist()) for u in units], labels=names,
            title=_title(report, "adapter subspace overlap per wrapped layer"),
        ),
        "captured.png": bar_figure(
            report.model.captured.tolist(), labels=names,
            title=_title(report, "energy of each adapter inside the span of earlier ones"),
            ylabel="captured fraction",
        ),
    }
    paths = []
    for filename, fig in figures.items():
        path = out / filename
        fig.savefig(path, dpi=100)
        paths.append(path)
    return paths


def scalars(report: RedundancyReport) -> Dict[str, float]:
    """Flat ``tag -> value`` for loggers: model-level figures and each adapter's captured fraction.

    Tags start ``Redundancy/`` (output side) or ``Redundancy/input/``; adapters keep their
    Python names (``adapter_7``): TensorBoard sorts digit runs as numbers.
    """
    model = report.model
    prefix = "Redundancy" + side_suffix(report.side)
    out = {
        f"{prefix}/mean_overlap": model.mean_pairwise_overlap,
        f"{prefix}/mean_captured": model.mean_captured,
        f"{prefix}/rank90": float(model.rank90),
        f"{prefix}/rank99": float(model.rank99),
    }
    for index, name in enumerate(report.adapters[1:], start=1):
        out[f"{prefix}/captured/{name}"] = float(model.captured[index])
    return {k: v for k, v in out.items() if not math.isnan(v)}


def log_to_tensorboard(report: RedundancyReport, log_dir: Union[str, Path], step: int) -> None:
    """Scalars and the model overlap heatmap at ``step`` (the experience index), for a saved bank."""
    from torch.utils.tensorboard import SummaryWriter
    from torchvision.transforms.functional import to_tensor

    from avalanche_litelora.analysis.plots import figure_to_image

    writer = SummaryWriter(str(log_dir))
    try:
        for tag, value in scalars(report).items():
            writer.add_scalar(tag, value, global_step=step)
        image = figure_to_image(overlap_figure(report))
        tag = f"Redundancy{side_suffix(report.side)}/overlap_heatmap"
        writer.add_image(tag, to_tensor(image), global_step=step)
    finally:
        writer.close()
