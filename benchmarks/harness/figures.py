"""The PNG figures of BENCHMARKS.md, drawn with matplotlib (Agg: no display needed)."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any, Dict, List, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from avalanche_litelora.metrics import forgetting_per_experience  # noqa: E402
from benchmarks.harness.report import mean_std  # noqa: E402


def _by_stream(rows: Sequence[Dict[str, Any]]) -> Dict[str, List[Dict[str, Any]]]:
    out: Dict[str, List[Dict[str, Any]]] = defaultdict(list)
    for row in rows:
        out[row["stream"]].append(row)
    return out


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def accuracy_vs_adapters(rows, path: Path) -> Path:
    """Final accuracy against active adapters, one panel per stream (full fine-tuning at 0)."""
    streams = _by_stream(rows)
    fig, axes = plt.subplots(1, len(streams), figsize=(4.2 * len(streams), 3.6), squeeze=False)
    for ax, (stream, group) in zip(axes[0], streams.items()):
        per_strategy: Dict[str, List[Dict[str, Any]]] = defaultdict(list)
        for row in group:
            per_strategy[row["strategy"]].append(row)
        for strategy, runs in per_strategy.items():
            x, _ = mean_std([r["active_adapters"] for r in runs])
            y, err = mean_std([r["final_acc"] for r in runs])
            ax.errorbar(x, y, yerr=err, fmt="o", capsize=3)
            ax.annotate(strategy, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
        ax.set(title=stream, xlabel="active adapters (0: full fine-tuning)", ylabel="final accuracy")
        ax.grid(alpha=0.3)
    return _save(fig, path)


def accuracy_matrices(rows, stream: str, path: Path) -> Path:
    """Accuracy matrix heatmaps (rows: after experience i, columns: experience j), first seed."""
    seed = min(r["seed"] for r in rows if r["stream"] == stream)
    runs = [r for r in rows if r["stream"] == stream and r["seed"] == seed and len(r["accuracy_matrix"]) > 1]
    cols = min(4, len(runs))
    n_rows = -(-len(runs) // cols)
    fig, axes = plt.subplots(n_rows, cols, figsize=(3.4 * cols, 3.2 * n_rows), squeeze=False)
    for ax in axes.flat[len(runs):]:
        ax.axis("off")
    for ax, run in zip(axes.flat, runs):
        image = ax.imshow(run["accuracy_matrix"], vmin=0, vmax=1, cmap="viridis")
        ax.set(title=f"{run['strategy']}", xlabel="experience j", ylabel="after experience i")
    fig.colorbar(image, ax=axes, shrink=0.8, label="accuracy")
    fig.suptitle(f"{stream}, seed {seed}")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def forgetting_curves(rows, stream: str, path: Path) -> Path:
    """Forgetting per experience (best accuracy minus final), averaged over seeds."""
    fig, ax = plt.subplots(figsize=(6, 3.6))
    per_strategy: Dict[str, List[Dict[str, Any]]] = defaultdict(list)
    for row in rows:
        if row["stream"] == stream and len(row["accuracy_matrix"]) > 1:
            per_strategy[row["strategy"]].append(row)
    for strategy, runs in per_strategy.items():
        curves = [forgetting_per_experience(r["accuracy_matrix"]) for r in runs]
        xs = sorted(curves[0])
        ax.plot(xs, [mean_std([c[j] for c in curves])[0] for j in xs], marker="o", ms=3, label=strategy)
    ax.set(title=f"{stream}: forgetting per experience", xlabel="experience", ylabel="forgetting")
    ax.legend(fontsize=7, ncol=2)
    ax.grid(alpha=0.3)
    return _save(fig, path)


def lambda_sweep(sweep_rows, reference: Dict[str, Any], chosen: float, path: Path) -> Path:
    """LiteLoRA's sparsity-accuracy frontier on the validation split, per-task LoRA for reference."""
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    xs = [r["active_adapters"] for r in sweep_rows]
    ys = [r["avg_anytime_acc"] for r in sweep_rows]
    ax.plot(xs, ys, marker="o", label="LiteLoRA")
    for r in sweep_rows:
        mark = " (chosen)" if r["lambda_sparsity"] == chosen else ""
        ax.annotate(f"λ={r['lambda_sparsity']:g}{mark}", (r["active_adapters"], r["avg_anytime_acc"]),
                    textcoords="offset points", xytext=(4, 4), fontsize=7)
    ax.scatter([reference["active_adapters"]], [reference["avg_anytime_acc"]], marker="s",
               color="black", label="per-task LoRA")
    ax.set(title=f"λ sweep on the validation split of {reference['stream']}",
           xlabel="active adapters", ylabel="avg anytime accuracy (validation)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _save(fig, path)
