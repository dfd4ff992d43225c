"""Shared pieces of the paper benchmarks: file listing, the fixed 80/20 split, clear errors.

Every builder reads a folder the user filled by hand (or with ``download=True``), turns it
into Avalanche ``PathsDataset``s (images load lazily, as RGB) and hands them to Avalanche's
own ``nc_benchmark``, so the result is a classic Avalanche benchmark.
"""

from __future__ import annotations

import functools
import inspect
import zlib
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
from avalanche.benchmarks import nc_benchmark
from avalanche.benchmarks.datasets.dataset_utils import default_dataset_location
from avalanche.benchmarks.utils import PathsDataset

from avalanche_litelora.checks import check_count

from .transforms import vit_eval_transform, vit_train_transform

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
    check_count("n_classes", n_classes)
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


#: The keywords of Avalanche's classic split benchmarks that every builder here takes, with
#: their defaults (the transforms: the papers' ViT-B/16 preprocessing).
SPLIT_KEYWORDS: Dict[str, Any] = {
    "return_task_id": False,
    "seed": None,
    "fixed_class_order": None,
    "class_ids_from_zero_in_each_exp": False,
    "train_transform": vit_train_transform(),
    "eval_transform": vit_eval_transform(),
}


def split_builder(n_experiences: int, root_folder: str = "") -> Callable[[Callable], Callable]:
    """Decorator: ``build(n_experiences, root, *, <its own keywords>, **split)`` becomes a public
    builder ``(n_experiences=<default>, *, <its own keywords>, dataset_root=None, <SPLIT_KEYWORDS>)``.

    The builder checks ``n_experiences``, resolves ``dataset_root`` (default: Avalanche's
    dataset location, ``root_folder`` below it), refuses an unknown keyword, and passes
    ``build`` every split keyword with its default filled in; its signature lists them all,
    for ``help()`` and IDEs.
    """

    def decorate(build: Callable) -> Callable:
        params = list(inspect.signature(build).parameters.values())
        own = [p for p in params[2:] if p.kind is inspect.Parameter.KEYWORD_ONLY]
        accepted = {"n_experiences", "dataset_root"} | {p.name for p in own} | set(SPLIT_KEYWORDS)

        @functools.wraps(build)
        def builder(n_experiences: int = n_experiences, **kwargs):
            unknown = sorted(set(kwargs) - accepted)
            if unknown:
                raise TypeError(f"{build.__name__}() got unexpected keyword arguments {unknown}")
            check_count("n_experiences", n_experiences)
            root = dataset_root_or_default(kwargs.pop("dataset_root", None), root_folder)
            split = {name: kwargs.pop(name, default) for name, default in SPLIT_KEYWORDS.items()}
            return build(n_experiences, root, **kwargs, **split)

        keyword = inspect.Parameter.KEYWORD_ONLY
        builder.__signature__ = inspect.Signature(
            [inspect.Parameter("n_experiences", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=n_experiences)]
            + own + [inspect.Parameter("dataset_root", keyword, default=None)]
            + [inspect.Parameter(n, keyword, default=d) for n, d in SPLIT_KEYWORDS.items()]
        )
        return builder

    return decorate


def dataset_root_or_default(dataset_root: Optional[Union[str, Path]], name: str = "") -> Path:
    """``dataset_root``, else Avalanche's default dataset location (``name`` below it)."""
    return Path(dataset_root) if dataset_root is not None else Path(default_dataset_location(name))


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
    check_count("n_experiences", n_experiences)
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
