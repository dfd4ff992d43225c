"""Smaller copies of Avalanche benchmarks, and validation splits, for CPU-sized runs."""

from __future__ import annotations

from typing import Dict, List, Optional

import torch
from avalanche.benchmarks.scenarios.dataset_scenario import benchmark_from_datasets
from avalanche.benchmarks.scenarios.supervised import with_classes_timeline
from avalanche.benchmarks.scenarios.task_aware import with_task_labels
from avalanche_litelora.checks import check_count


def _rebuild(streams: Dict[str, List]):
    """An Avalanche benchmark with a classes timeline and task labels from per-exp datasets."""
    benchmark = with_task_labels(with_classes_timeline(benchmark_from_datasets(**streams)))
    # The timeline stores classes as sets, which Avalanche's own MultiHeadClassifier
    # cannot index with; the classic benchmarks give sorted lists.
    for name in streams:
        for exp in getattr(benchmark, f"{name}_stream"):
            exp.classes_in_this_experience = sorted(exp.classes_in_this_experience)
    return benchmark


def _check_size(size) -> None:
    if size is not None:
        check_count("a subset size", size)


def subsample_benchmark(
    benchmark,
    train_per_experience: Optional[int],
    test_per_experience: Optional[int] = None,
    seed: int = 0,
):
    """The same experiences (order, classes, task labels), each cut to a random subset.

    ``None`` keeps a stream whole. The result is an Avalanche benchmark with a classes
    timeline and task labels, so ``classes_in_this_experience`` and multi-task models work.
    """
    _check_size(train_per_experience)
    _check_size(test_per_experience)
    generator = torch.Generator().manual_seed(seed)

    def cut(stream, size):
        datasets = []
        for exp in stream:
            data = exp.dataset
            if size is not None and size < len(data):
                data = data.subset(torch.randperm(len(data), generator=generator)[:size].tolist())
            datasets.append(data)
        return datasets

    return _rebuild({
        "train": cut(benchmark.train_stream, train_per_experience),
        "test": cut(benchmark.test_stream, test_per_experience),
    })


def split_validation(benchmark, fraction: float, seed: int = 0):
    """Move a random ``fraction`` of every training experience into a ``valid_stream``.

    Hyper-parameters are picked on it, never on the test stream, which is kept unchanged.
    """
    if isinstance(fraction, bool) or not 0.0 < float(fraction) < 1.0:
        raise ValueError(f"validation fraction must lie strictly between 0 and 1, got {fraction!r}")
    generator = torch.Generator().manual_seed(seed)
    train, valid = [], []
    for exp in benchmark.train_stream:
        order = torch.randperm(len(exp.dataset), generator=generator).tolist()
        n_valid = max(1, int(round(fraction * len(order))))
        if n_valid >= len(order):
            raise ValueError(f"experience {exp.current_experience} is too small to split off a validation part")
        valid.append(exp.dataset.subset(order[:n_valid]))
        train.append(exp.dataset.subset(order[n_valid:]))
    test = [exp.dataset for exp in benchmark.test_stream]
    return _rebuild({"train": train, "valid": valid, "test": test})
