"""Folders in the official layouts filled with tiny generated images, for smoke tests.

Each class gets its own base colour plus per-image noise, so a model can tell classes apart
and a run on them exercises the whole pipeline; nothing here resembles the real data.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import List, Sequence, Union

import numpy as np
from PIL import Image

from .domainnet import DOMAINS
from .domainnet import N_CLASSES as DOMAINNET_CLASSES

PathLike = Union[str, Path]


def _image(rng: np.random.RandomState, label: int, size: int) -> np.ndarray:
    base = np.array([(label * 37) % 256, (label * 91) % 256, (label * 53) % 256], dtype=np.int16)
    pixels = base + rng.randint(-20, 21, size=(size, size, 3))
    return np.clip(pixels, 0, 255).astype(np.uint8)


def _write(path: Path, pixels: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG" if path.suffix == ".jpg" else "PNG")
    path.write_bytes(buffer.getvalue())


def synthetic_wnids(n: int = 200) -> List[str]:
    """Made-up WordNet-style ids, ``n00000000`` upwards."""
    return [f"n{i:08d}" for i in range(n)]


def make_imagenet_variant(root: PathLike, folder: str = "imagenet-r", images_per_class: Union[int, Sequence[int]] = 5,
                          size: int = 8, n_classes: int = 200, seed: int = 0) -> Path:
    """``root/<folder>/<wnid>/<k>.jpg``, the layout of the ImageNet-R / ImageNet-A tarballs."""
    rng = np.random.RandomState(seed)
    counts = [images_per_class] * n_classes if isinstance(images_per_class, int) else list(images_per_class)
    for label, (wnid, count) in enumerate(zip(synthetic_wnids(n_classes), counts)):
        for k in range(count):
            _write(Path(root) / folder / wnid / f"art_{k}.jpg", _image(rng, label, size))
    return Path(root) / folder


def make_cub(root: PathLike, train_per_class: int = 2, test_per_class: int = 1, size: int = 8,
             n_classes: int = 200, seed: int = 0) -> Path:
    """``root/CUB_200_2011`` with images/, images.txt, image_class_labels.txt, train_test_split.txt."""
    rng = np.random.RandomState(seed)
    cub = Path(root) / "CUB_200_2011"
    images, labels, split = [], [], []
    image_id = 0
    for label in range(n_classes):
        folder = f"{label + 1:03d}.Bird_{label + 1}"
        for k in range(train_per_class + test_per_class):
            image_id += 1
            rel = f"{folder}/Bird_{label + 1}_{k}.jpg"
            _write(cub / "images" / rel, _image(rng, label, size))
            images.append(f"{image_id} {rel}")
            labels.append(f"{image_id} {label + 1}")
            split.append(f"{image_id} {1 if k < train_per_class else 0}")
    for name, lines in (("images.txt", images), ("image_class_labels.txt", labels), ("train_test_split.txt", split)):
        (cub / name).write_text("\n".join(lines) + "\n")
    return cub


def make_domainnet(root: PathLike, domains: Sequence[str] = DOMAINS, train_per_class: int = 1,
                   test_per_class: int = 1, size: int = 8, n_classes: int = DOMAINNET_CLASSES, seed: int = 0) -> Path:
    """``root/domainnet/<domain>/<class>/*.png`` and the ``<domain>_{train,test}.txt`` files."""
    rng = np.random.RandomState(seed)
    base = Path(root) / "domainnet"
    for domain in domains:
        lines = {"train": [], "test": []}
        for label in range(n_classes):
            for k in range(train_per_class + test_per_class):
                part = "train" if k < train_per_class else "test"
                rel = f"{domain}/class_{label:03d}/{domain}_{label:03d}_{k:06d}.png"
                _write(base / rel, _image(rng, label, size))
                lines[part].append(f"{rel} {label}")
        for part, rows in lines.items():
            (base / f"{domain}_{part}.txt").write_text("\n".join(rows) + "\n")
    return base


def make_cifar100(root: PathLike, train_per_class: int = 2, test_per_class: int = 1, seed: int = 0) -> Path:
    """``root/cifar-100-python/{train,test,meta}`` pickles in the official format (32x32 RGB)."""
    rng = np.random.RandomState(seed)
    folder = Path(root) / "cifar-100-python"
    folder.mkdir(parents=True, exist_ok=True)
    for name, per_class in (("train", train_per_class), ("test", test_per_class)):
        labels = [label for label in range(100) for _ in range(per_class)]
        data = np.stack([_image(rng, label, 32).transpose(2, 0, 1).reshape(-1) for label in labels])
        with open(folder / name, "wb") as f:
            pickle.dump({"data": data, "fine_labels": labels, "coarse_labels": [l // 5 for l in labels]}, f)
    with open(folder / "meta", "wb") as f:
        pickle.dump({"fine_label_names": [f"class_{i}" for i in range(100)],
                     "coarse_label_names": [f"super_{i}" for i in range(20)]}, f)
    return folder
