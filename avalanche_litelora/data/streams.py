"""Smaller copies of Avalanche benchmarks, for demos and quick runs on a CPU."""

from __future__ import annotations

from typing import Optional

import torch
from avalanche.benchmarks.scenarios.dataset_scenario import benchmark_from_datasets
from avalanche.benchmarks.scenarios.supervised import with_classes_timeline
from avalanche.benchmarks.scenarios.task_aware import with_task_labels


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
    generator = torch.Generator().manual_seed(seed)

    def cut(stream, size):
        datasets = []
        for exp in stream:
            data = exp.dataset
            if size is not None and size < len(data):
                data = data.subset(torch.randperm(len(data), generator=generator)[:size].tolist())
            datasets.append(data)
        return datasets

    for size in (train_per_experience, test_per_experience):
        if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 1):
            raise ValueError(f"subset sizes must be positive integers or None, got {size!r}")
    smaller = with_task_labels(
        with_classes_timeline(
            benchmark_from_datasets(
                train=cut(benchmark.train_stream, train_per_experience),
                test=cut(benchmark.test_stream, test_per_experience),
            )
        )
    )
    # The timeline stores classes as sets, which Avalanche's own MultiHeadClassifier
    # cannot index with; the classic benchmarks give sorted lists.
    for stream in (smaller.train_stream, smaller.test_stream):
        for exp in stream:
            exp.classes_in_this_experience = sorted(exp.classes_in_this_experience)
    return smaller
