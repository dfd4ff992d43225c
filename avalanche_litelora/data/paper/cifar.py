"""Split CIFAR-100 for a 224-pixel ViT: Avalanche's own ``SplitCIFAR100`` with ViT transforms.

Avalanche's loader calls torchvision with ``download=True``, which would reach the network
whenever the files are missing or damaged; this builder first checks the extracted files
(torchvision's MD5 list) and refuses clearly unless ``download=True`` was asked for.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, Sequence, Union

from avalanche.benchmarks.classic import SplitCIFAR100
from avalanche.benchmarks.datasets.dataset_utils import default_dataset_location
from torchvision.datasets import CIFAR100
from torchvision.datasets.utils import check_integrity

from ._folders import PaperDatasetError, check_int
from .transforms import vit_eval_transform, vit_train_transform

SOURCE = "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz (unpack into dataset_root)"
LAYOUT = "  cifar-100-python/train, cifar-100-python/test, cifar-100-python/meta (the python version)"


def cifar100_problem(root: Path) -> Optional[str]:
    """What is wrong with ``root``'s CIFAR-100 files (torchvision's own MD5 list), or None."""
    folder = root / CIFAR100.base_folder
    for name, md5 in CIFAR100.train_list + CIFAR100.test_list + [[CIFAR100.meta["filename"], CIFAR100.meta["md5"]]]:
        path = folder / name
        if not path.is_file():
            return f"no file {path}"
        if not check_integrity(str(path), md5):
            return f"{path} is damaged (MD5 differs from the official file)"
    return None


def SplitCIFAR100ViT(
    n_experiences: int = 10,
    *,
    return_task_id: bool = False,
    seed: Optional[int] = None,
    fixed_class_order: Optional[Sequence[int]] = None,
    class_ids_from_zero_in_each_exp: bool = False,
    train_transform: Optional[Any] = vit_train_transform(),
    eval_transform: Optional[Any] = vit_eval_transform(),
    dataset_root: Optional[Union[str, Path]] = None,
    download: bool = False,
):
    """Avalanche's ``SplitCIFAR100`` (10 x 10 in the papers), images upscaled for ViT-B/16."""
    check_int("n_experiences", n_experiences, 1)
    root = Path(dataset_root) if dataset_root is not None else Path(default_dataset_location("cifar100"))
    problem = cifar100_problem(root)
    if problem and not download:
        raise PaperDatasetError("CIFAR-100", problem, LAYOUT, SOURCE)
    return SplitCIFAR100(
        n_experiences, return_task_id=return_task_id, seed=seed, fixed_class_order=fixed_class_order,
        class_ids_from_zero_in_each_exp=class_ids_from_zero_in_each_exp,
        train_transform=train_transform, eval_transform=eval_transform, dataset_root=root,
    )
