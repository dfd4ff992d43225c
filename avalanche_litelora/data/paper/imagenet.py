"""Split ImageNet-R and Split ImageNet-A: 200 ImageNet classes, class-incremental.

Layout read under ``dataset_root`` (the official tarballs unpack to it)::

    imagenet-r/<wnid>/*.jpg                    200 class folders
    imagenet-r/train/<wnid>/, imagenet-r/test/<wnid>/   (optional: a split made earlier)

The field uses a fixed 80/20 train/test split. CODA-Prompt ships it as a list file; the
SD-LoRA / LiteLoRA code reads ``train/`` and ``test/`` folders made once by a random 80/20
split of the whole folder. When ``train/`` and ``test/`` exist they are used as they are;
otherwise the split is drawn per class (see :func:`~._folders.split_class`): deterministic
for a given ``split_seed``, and every class keeps 80% of its images for training.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import List, Sequence, Tuple

from avalanche_litelora.checks import check_count

from ._folders import PaperDatasetError, class_folders, class_incremental, list_images
from ._folders import paths_dataset, split_builder, split_class

_WNID = re.compile(r"n\d{8}")
N_CLASSES = 200


def _source(name: str) -> Tuple[str, str]:
    base = "imagenet-r" if name == "ImageNet-R" else "imagenet-a"
    repo = "hendrycks/imagenet-r" if name == "ImageNet-R" else "hendrycks/natural-adv-examples"
    return (f"https://people.eecs.berkeley.edu/~hendrycks/{base}.tar",
            f"https://people.eecs.berkeley.edu/~hendrycks/{base}.tar (see https://github.com/{repo}); "
            f"unpack it into dataset_root")


def _layout(folder: str) -> str:
    return (f"  {folder}/<wnid>/*.jpg   ({N_CLASSES} class folders named like n01443537)\n"
            f"  or {folder}/train/<wnid>/*.jpg and {folder}/test/<wnid>/*.jpg (a split made earlier)")


def _class_files(root: Path, wnid: str) -> List[str]:
    return [str(p.relative_to(root)) for p in list_images(root / wnid)]


def _read_folder(name: str, folder: str, dataset_root: Path, split_seed: int):
    """(train files, test files, wnids): lists of (path relative to dataset_root, class id)."""
    _, source = _source(name)
    base = dataset_root / folder
    if not base.is_dir():
        raise PaperDatasetError(name, f"no folder {base}", _layout(folder), source)
    presplit = (base / "train").is_dir() and (base / "test").is_dir()
    train: List[Tuple[str, int]] = []
    test: List[Tuple[str, int]] = []
    if presplit:
        wnids = [w for w in class_folders(base / "train") if _WNID.fullmatch(w)]
        _check_classes(name, folder, wnids, base / "train")
        missing = sorted(set(wnids) - set(class_folders(base / "test")))
        if missing:
            raise PaperDatasetError(name, f"{base / 'test'} lacks {len(missing)} classes of train/ "
                                          f"(e.g. {missing[0]})", _layout(folder), source)
        for label, wnid in enumerate(wnids):
            for part, out in (("train", train), ("test", test)):
                files = _class_files(dataset_root, f"{folder}/{part}/{wnid}")
                if not files:
                    raise PaperDatasetError(name, f"{base / part / wnid} holds no images", _layout(folder), source)
                out.extend((f, label) for f in files)
        return train, test, wnids
    wnids = [w for w in class_folders(base) if _WNID.fullmatch(w)]
    _check_classes(name, folder, wnids, base)
    for label, wnid in enumerate(wnids):
        files = _class_files(dataset_root, f"{folder}/{wnid}")
        if len(files) < 2:
            raise PaperDatasetError(name, f"{base / wnid} holds {len(files)} image(s); the 80/20 split "
                                          "needs at least 2 per class", _layout(folder), source)
        class_train, class_test = split_class(files, wnid, split_seed)
        train.extend((f, label) for f in class_train)
        test.extend((f, label) for f in class_test)
    return train, test, wnids


def _check_classes(name: str, folder: str, wnids: Sequence[str], where: Path) -> None:
    if len(wnids) != N_CLASSES:
        raise PaperDatasetError(
            name, f"{where} holds {len(wnids)} class folders, expected {N_CLASSES} (incomplete or "
                  "not the official archive)", _layout(folder), _source(name)[1])


def _download(name: str, dataset_root: Path) -> None:
    from torchvision.datasets.utils import download_and_extract_archive

    url, _ = _source(name)
    download_and_extract_archive(url, download_root=str(dataset_root), extract_root=str(dataset_root))


def _imagenet_variant(name: str, folder: str, public_name: str, doc: str):
    """The builder of one 200-class ImageNet variant: ``folder`` under ``dataset_root``."""

    @split_builder(n_experiences=20)
    def build(n_experiences: int, root: Path, *, split_seed: int = 0, download: bool = False, **split):
        check_count("split_seed", split_seed, 0)
        if download and not (root / folder).is_dir():
            _download(name, root)
        train, test, _ = _read_folder(name, folder, root, split_seed)
        return class_incremental(paths_dataset(root, train), paths_dataset(root, test),
                                 n_experiences=n_experiences, n_classes=N_CLASSES, **split)

    build.__name__ = build.__qualname__ = public_name
    build.__doc__ = doc
    return build


SplitImageNetR = _imagenet_variant("ImageNet-R", "imagenet-r", "SplitImageNetR", """\
Class-incremental ImageNet-R (200 classes; 20 x 10 in LiteLoRA / SD-LoRA, 10 x 20 in Share).

``seed`` shuffles the class order as Avalanche does; ``fixed_class_order`` (e.g.
:func:`reference_class_order`) overrides it. Class ids are the sorted wnids' indices.
""")

SplitImageNetA = _imagenet_variant("ImageNet-A", "imagenet-a", "SplitImageNetA", """\
Class-incremental ImageNet-A (200 classes, 7,500 natural adversarial images; 20 x 10).""")
