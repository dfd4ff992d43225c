"""Split CUB-200 on the official ``CUB_200_2011`` folder and its own train/test split.

*Choice:* the images are read whole. Avalanche's ``CUB200`` dataset crops every image to its
bird's bounding box, which the LoRA / prompt continual-learning papers do not do.
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Tuple

from ._folders import PaperDatasetError, class_incremental, paths_dataset, split_builder

N_CLASSES = 200
URL = "https://data.caltech.edu/records/65de6-vp158/files/CUB_200_2011.tgz"
MD5 = "97eceeb196236b17998738112f37df78"  # the archive's, as Avalanche's CUB200 checks it
SOURCE = f"{URL} (Caltech-UCSD Birds-200-2011, https://www.vision.caltech.edu/datasets/cub_200_2011/); unpack into dataset_root"
LAYOUT = ("  CUB_200_2011/images/<NNN.Class_Name>/*.jpg\n"
          "  CUB_200_2011/images.txt, image_class_labels.txt, train_test_split.txt")
_TABLES = ("images.txt", "image_class_labels.txt", "train_test_split.txt")


def _table(path: Path) -> Dict[int, str]:
    """``<image id> <value>`` lines of one of CUB's metadata files."""
    rows: Dict[int, str] = {}
    with open(path) as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            parts = line.split(maxsplit=1)
            if len(parts) != 2 or not parts[0].isdigit():
                raise PaperDatasetError("CUB-200", f"{path}:{number} is not '<id> <value>'", LAYOUT, SOURCE)
            rows[int(parts[0])] = parts[1].strip()
    return rows


def read_cub(root: Path) -> Tuple[List[Tuple[str, int]], List[Tuple[str, int]]]:
    """(train, test) lists of (path relative to ``root``, class id 0..199) from the official files."""
    cub = root / "CUB_200_2011"
    missing = [name for name in _TABLES if not (cub / name).is_file()]
    if not (cub / "images").is_dir() or missing:
        what = f"no folder {cub / 'images'}" if not (cub / "images").is_dir() else f"{cub} lacks {', '.join(missing)}"
        raise PaperDatasetError("CUB-200", what, LAYOUT, SOURCE)
    images, labels, is_train = (_table(cub / name) for name in _TABLES)
    if not images or set(images) != set(labels) or set(images) != set(is_train):
        raise PaperDatasetError("CUB-200", "images.txt, image_class_labels.txt and train_test_split.txt "
                                           "do not list the same image ids", LAYOUT, SOURCE)
    train: List[Tuple[str, int]] = []
    test: List[Tuple[str, int]] = []
    for image_id in sorted(images):
        path = cub / "images" / images[image_id]
        if not path.is_file():
            raise PaperDatasetError("CUB-200", f"image {image_id} ({path}) is missing", LAYOUT, SOURCE)
        (train if is_train[image_id].strip() == "1" else test).append(
            (str(path.relative_to(root)), int(labels[image_id]) - 1))
    classes = {label for _, label in train} | {label for _, label in test}
    if classes != set(range(N_CLASSES)):
        raise PaperDatasetError("CUB-200", f"the labels cover {len(classes)} classes, expected "
                                           f"1..{N_CLASSES}", LAYOUT, SOURCE)
    return train, test


@split_builder(n_experiences=10)
def SplitCUB200(n_experiences: int, root: Path, *, download: bool = False, **split):
    """Class-incremental CUB-200 (5,994 train / 5,794 test images; 10 x 20 in LiteLoRA's config)."""
    if download and not (root / "CUB_200_2011").is_dir():
        from torchvision.datasets.utils import download_and_extract_archive

        download_and_extract_archive(URL, download_root=str(root), extract_root=str(root), md5=MD5)
    train, test = read_cub(root)
    return class_incremental(paths_dataset(root, train), paths_dataset(root, test),
                             n_experiences=n_experiences, n_classes=N_CLASSES, **split)
