"""A class-incremental stream of clip art: Debian's ``openclipart-png``, one class per subcategory.

Why this stream: every other stream here is 28x28 grayscale for the shipped ViTs. This one
is small colour drawings for an ImageNet backbone (``efficientnet_lite0``): a rendition
domain, as ImageNet-R's cartoons and sketches, where the pretrained features are close but
not right, so whether adapters beat a head on frozen features is an open question. The
images come from a Debian package (``apt-get install openclipart-png``), so nothing is
downloaded at run time.

What a class is, and why (from what the package holds, ~8,000 PNGs in 22 categories):

* a class is a *subcategory* ``category/sub`` (``animals/birds``, ``shapes/stars``), its
  nested folders included (``signs_and_symbols/flags/europe/france`` is a flag). Deeper
  folders are styles or regions of one kind of picture (four card decks, flags by
  continent), not visually distinct classes;
* files lying loose in a top-level category are left out: they are that category's
  miscellany (``unsorted``, ``computer``) and overlap its own subcategories;
* symbolic links are left out: the package cross-lists a file in a second folder through
  them, which would put one image in two classes (and across the train/test split).

Images are composited on white (their transparent background is what a viewer shows as
white), padded to a white square (no distortion) and resized, as ``[0, 1]`` RGB tensors:
``efficientnet_lite0`` normalises its input itself. Unreadable files and posters over
:data:`MAX_PIXELS` are skipped (the next file of the class's fixed draw stands in). Images
are decoded once per setting and kept in memory, so epochs and seeds cost no disk reads.
"""

from __future__ import annotations

import functools
import random
import warnings
from pathlib import Path
from typing import List, Optional, Tuple, Union

import torch
from torch.utils.data import TensorDataset

from avalanche_litelora.checks import check_count, check_real

__all__ = ["CLIPART_ROOT", "discover_classes", "load_clipart", "clipart_benchmark", "clipart_stream"]

#: Where ``apt-get install openclipart-png`` puts the category folders.
CLIPART_ROOT = "/usr/share/openclipart/png"
INSTALL_HINT = "apt-get install openclipart-png"
#: Larger images are skipped (a 4096 x 4096 RGBA image decodes to 64 MB).
MAX_PIXELS = 4096 * 4096
#: Fixed, so every class-order seed sees the same images in the same split.
SPLIT_SEED = 0


def _class_files(root: Path) -> dict:
    """``{"category/sub": [files]}`` over regular PNG files at least two levels deep."""
    classes: dict = {}
    for path in root.rglob("*.png"):
        rel = path.relative_to(root).parts
        if len(rel) < 3 or path.is_symlink() or not path.is_file():
            continue
        classes.setdefault(f"{rel[0]}/{rel[1]}", []).append(path)
    return classes


def _checked_root(root: Union[str, Path]) -> Path:
    path = Path(root)
    if not path.is_dir() or not any(path.rglob("*.png")):
        raise FileNotFoundError(
            f"No clip-art PNGs under {str(path)!r}: install them with `{INSTALL_HINT}` "
            f"(they land in {CLIPART_ROOT}) or pass root= a folder of category folders"
        )
    return path


def discover_classes(root: Union[str, Path] = CLIPART_ROOT, min_images_per_class: int = 40) -> List[Tuple[str, int]]:
    """``[(class name, image count)]`` of the subcategories holding at least
    ``min_images_per_class`` images, sorted by name (so labels never depend on disk order).

    Raises ``FileNotFoundError`` naming the apt package when ``root`` is missing or empty.
    """
    check_count("min_images_per_class", min_images_per_class)
    files = _class_files(_checked_root(root))
    return sorted((name, len(f)) for name, f in files.items() if len(f) >= min_images_per_class)


def _to_rgb_square(path: Path, size: int) -> Optional[torch.Tensor]:
    """One PNG as a ``(3, size, size)`` float tensor in ``[0, 1]`` on white; ``None`` for a
    file that is not a readable image or is a poster over :data:`MAX_PIXELS` (the package
    has eleven 10,500 x 16,000 drawings: 0.7 GB each decoded, some over PIL's bomb limit)."""
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                if img.width * img.height > MAX_PIXELS:
                    return None
                rgba = img.convert("RGBA")  # palette transparency and LA become an alpha channel
    except (OSError, Image.DecompressionBombError):
        return None
    white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    rgb = Image.alpha_composite(white, rgba).convert("RGB")
    side = max(rgb.size)
    square = Image.new("RGB", (side, side), (255, 255, 255))
    square.paste(rgb, ((side - rgb.width) // 2, (side - rgb.height) // 2))
    square = square.resize((size, size), Image.BICUBIC, reducing_gap=2.0)
    data = torch.frombuffer(bytearray(square.tobytes()), dtype=torch.uint8)
    return data.view(size, size, 3).permute(2, 0, 1).float().div_(255.0)


@functools.lru_cache(maxsize=4)
def _load(root: str, names: Tuple[str, ...], per_class: int, size: int, test_fraction: float):
    files = _class_files(Path(root))
    rng = random.Random(SPLIT_SEED)
    parts = {"train": ([], []), "test": ([], [])}
    for label, name in enumerate(names):
        candidates = sorted(files[name])
        rng.shuffle(candidates)  # a fixed draw across the class's folders (themes, regions)
        images = []
        for path in candidates:  # the next file stands in for an unreadable one
            if len(images) == per_class:
                break
            image = _to_rgb_square(path, size)
            if image is not None:
                images.append(image)
        n_test = max(1, round(test_fraction * len(images)))
        for split, group in (("test", images[:n_test]), ("train", images[n_test:])):
            parts[split][0].extend(group)
            parts[split][1].extend([label] * len(group))
    return tuple((torch.stack(x) if x else torch.empty(0, 3, size, size), torch.tensor(y, dtype=torch.long))
                 for x, y in (parts["train"], parts["test"]))


def load_clipart(
    root: Union[str, Path] = CLIPART_ROOT,
    n_classes: int = 20,
    images_per_class: int = 40,
    image_size: int = 96,
    test_fraction: float = 0.25,
    min_images_per_class: int = 40,
) -> Tuple[TensorDataset, TensorDataset, List[str]]:
    """``(train, test, class names)``: the ``n_classes`` best-populated subcategories (ties by
    name), each cut to ``images_per_class`` images drawn with a fixed seed, a fixed
    ``test_fraction`` of them held out. Labels index the names, which are sorted.

    The datasets are ``TensorDataset`` s with ``.targets`` (what Avalanche's generators read);
    the decoded tensors are cached, so a second call with the same settings is free.
    """
    check_count("n_classes", n_classes, 2)
    check_count("images_per_class", images_per_class, 2)
    check_count("image_size", image_size, 8)
    check_real("test_fraction", test_fraction, positive=True)
    if test_fraction >= 1:
        raise ValueError(f"test_fraction must be < 1, got {test_fraction!r}")
    found = discover_classes(root, min_images_per_class)
    if len(found) < n_classes:
        raise ValueError(
            f"{n_classes} classes asked for, but only {len(found)} subcategories under {str(root)!r} "
            f"hold at least min_images_per_class={min_images_per_class} images: {[n for n, _ in found]}"
        )
    names = tuple(sorted(n for n, _ in sorted(found, key=lambda nc: (-nc[1], nc[0]))[:n_classes]))
    (x_tr, y_tr), (x_te, y_te) = _load(str(Path(root).resolve()), names, images_per_class, image_size,
                                       float(test_fraction))
    if len(y_tr) == 0 or len(torch.unique(y_tr)) < n_classes:
        raise ValueError(f"images_per_class={images_per_class} leaves a class without training images")

    def dataset(x: torch.Tensor, y: torch.Tensor) -> TensorDataset:
        ds = TensorDataset(x, y)
        ds.targets = y.tolist()
        return ds

    return dataset(x_tr, y_tr), dataset(x_te, y_te), list(names)


def clipart_benchmark(
    n_experiences: int = 5,
    seed: int = 1993,
    root: Union[str, Path] = CLIPART_ROOT,
    classes_per_experience: int = 4,
    images_per_class: int = 40,
    image_size: int = 96,
    test_fraction: float = 0.25,
    min_images_per_class: int = 40,
):
    """A class-incremental Avalanche benchmark of ``n_experiences`` x ``classes_per_experience``
    clip-art subcategories (see :func:`load_clipart`); ``seed`` is the class order only.

    Built with Avalanche's ``nc_benchmark`` (no task labels, original class ids), so the
    suite's ``subsample_benchmark`` and the strategies' growing heads apply unchanged. The
    class names are on ``benchmark.class_names`` (index = class id).
    """
    from avalanche.benchmarks.scenarios.deprecated.generators import nc_benchmark

    check_count("n_experiences", n_experiences)
    check_count("classes_per_experience", classes_per_experience)
    check_count("seed", seed, 0)
    train, test, names = load_clipart(root, n_experiences * classes_per_experience, images_per_class,
                                      image_size, test_fraction, min_images_per_class)
    benchmark = nc_benchmark(train, test, n_experiences=n_experiences, task_labels=False, seed=seed,
                             class_ids_from_zero_in_each_exp=False)
    benchmark.class_names = names
    return benchmark


def clipart_stream(seed: int, root: str):
    """``StreamSpec.build`` for the benchmark harness: :func:`clipart_benchmark`'s defaults.

    The harness passes its MNIST data root; the clip art is a system package, so ``root``
    is read only when it holds an ``openclipart/png`` copy, and :data:`CLIPART_ROOT` otherwise.
    """
    copy = Path(root) / "openclipart" / "png"
    return clipart_benchmark(seed=seed, root=copy if copy.is_dir() else CLIPART_ROOT)
