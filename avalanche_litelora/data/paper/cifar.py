"""Split CIFAR-100 for a 224-pixel ViT: Avalanche's own ``SplitCIFAR100`` with ViT transforms.

Avalanche's loader calls torchvision with ``download=True``, which would reach the network
whenever the files are missing or damaged; this builder first checks the extracted files
(torchvision's MD5 list) and refuses clearly unless ``download=True`` was asked for.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from avalanche.benchmarks.classic import SplitCIFAR100
from torchvision.datasets import CIFAR100
from torchvision.datasets.utils import check_integrity

from ._folders import PaperDatasetError, split_builder

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


@split_builder(n_experiences=10, root_folder="cifar100")
def SplitCIFAR100ViT(n_experiences: int, root: Path, *, download: bool = False, **split):
    """Avalanche's ``SplitCIFAR100`` (10 x 10 in the papers), images upscaled for ViT-B/16."""
    problem = cifar100_problem(root)
    if problem and not download:
        raise PaperDatasetError("CIFAR-100", problem, LAYOUT, SOURCE)
    return SplitCIFAR100(n_experiences, dataset_root=root, **split)
