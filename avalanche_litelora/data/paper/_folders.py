"""Shared pieces of the paper benchmarks: file listing, the fixed 80/20 split, clear errors.

Every builder reads a folder the user filled by hand (or with ``download=True``), turns it
into Avalanche ``PathsDataset``s (images load lazily, as RGB) and hands them to Avalanche's
own ``nc_benchmark``, so the result is a classic Avalanche benchmark.
"""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
from avalanche.benchmarks import nc_benchmark
from avalanche.benchmarks.utils import PathsDataset

#: Image file suffixes the folder datasets read (case-insensitive).
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")

#: Share of every class that goes to training when a builder draws the split itself.
TRAIN_FRACTION = 0.8


class PaperDatasetError(FileNotFoundError):
    """A benchmark's folder is missing or incomplete; the message says what to put where."""

    def __init__(self, dataset: str, problem: str, layout: str, source: str, downloadable: bool = True):
        fetch = ("(Nothing is downloaded unless you pass download=True.)" if downloadable
                 else "(This builder never downloads: fetch the files by hand.)")
        super().__init__(
            f"{dataset}: {problem}.\nExpected under dataset_root:\n{layout}\n"
            f"Where to get it: {source}\n{fetch}"
        )
        self.dataset = dataset
        self.downloadable = downloadable


def reference_class_order(n_classes: int, seed: int) -> List[int]:
    """The class order of the LiteLoRA / SD-LoRA / PyCIL code for ``seed``.

    Their data manager calls ``np.random.seed(seed)`` and ``np.random.permutation(n)`` over
    the dataset's class ids; NumPy's legacy generator is frozen, so the order is stable.
    Pass it as ``fixed_class_order`` to reproduce the reference's tasks exactly.
    """
    if isinstance(n_classes, bool) or not isinstance(n_classes, int) or n_classes < 1:
        raise ValueError(f"n_classes must be a positive integer, got {n_classes!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed must be an integer, got {seed!r}")
    return np.random.RandomState(seed).permutation(n_classes).tolist()


def list_images(folder: Path) -> List[Path]:
    """Image files anywhere under ``folder``, sorted, so listings never depend on the file system."""
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def class_folders(root: Path) -> List[str]:
    """Names of the sub-folders of ``root``, sorted (ImageFolder's class numbering)."""
    return sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []


def split_class(files: Sequence[str], name: str, split_seed: int) -> Tuple[List[str], List[str]]:
    """One class's fixed 80/20 split: its sorted files permuted by a generator seeded with
    ``(split_seed, crc32(class name))``; the first ``int(0.8 * n)`` train, the rest test.

    Seeding per class keeps every other class's split unchanged when one class gains a file.
    """
    files = sorted(files)
    generator = np.random.RandomState([split_seed, zlib.crc32(name.encode())])
    order = generator.permutation(len(files))
    n_train = int(TRAIN_FRACTION * len(files))
    return [files[i] for i in order[:n_train]], [files[i] for i in order[n_train:]]


def check_int(name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


def class_incremental(
    train: PathsDataset,
    test: PathsDataset,
    *,
    n_experiences: int,
    n_classes: int,
    return_task_id: bool,
    seed: Optional[int],
    fixed_class_order: Optional[Sequence[int]],
    train_transform,
    eval_transform,
    class_ids_from_zero_in_each_exp: bool = False,
):
    """Avalanche's ``nc_benchmark`` over the two datasets (the classic benchmarks' call)."""
    check_int("n_experiences", n_experiences, 1)
    if n_classes % n_experiences:
        raise ValueError(
            f"n_experiences={n_experiences} does not divide the {n_classes} classes evenly"
        )
    if fixed_class_order is not None and sorted(int(c) for c in fixed_class_order) != list(range(n_classes)):
        raise ValueError(f"fixed_class_order must be a permutation of 0..{n_classes - 1}")
    return nc_benchmark(
        train_dataset=train,
        test_dataset=test,
        n_experiences=n_experiences,
        task_labels=return_task_id,
        seed=seed,
        fixed_class_order=list(fixed_class_order) if fixed_class_order is not None else None,
        shuffle=True,
        class_ids_from_zero_in_each_exp=class_ids_from_zero_in_each_exp,
        train_transform=train_transform,
        eval_transform=eval_transform,
    )


def paths_dataset(root: Path, files: Sequence[Tuple[str, int]]) -> PathsDataset:
    """An Avalanche ``PathsDataset`` of ``(path relative to root, class id)`` pairs."""
    return PathsDataset(root, list(files))


def split_sizes(benchmark) -> Dict[str, List[int]]:
    """Samples per experience of the train and test streams (for reports and tests)."""
    return {name: [len(exp.dataset) for exp in getattr(benchmark, f"{name}_stream")]
            for name in ("train", "test")}
