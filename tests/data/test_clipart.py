"""The clip-art stream on a tiny synthetic tree of RGBA PNGs, and once on the real package."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from PIL import Image

from avalanche_litelora.data import CLIPART_ROOT, clipart_benchmark
from avalanche_litelora.data import clipart
from avalanche_litelora.data.clipart import clipart_stream, discover_classes, load_clipart

#: subcategory -> (number of images, opaque colour); each image also has a unique green value.
CLASSES = {
    "animals/birds": (8, (255, 0, 0)),
    "animals/bugs": (8, (0, 0, 255)),
    "food/fruit": (8, (255, 255, 0)),
    "shapes/stars": (8, (0, 0, 0)),  # below: half of it nested one folder deeper
}


def _png(path: Path, colour, uid: int, size=(12, 6)) -> None:
    """A non-square RGBA image: the left half opaque ``colour`` (green = ``uid``), the
    right half fully transparent (and black, so only compositing can make it white)."""
    img = Image.new("RGBA", size, (0, 0, 0, 0))
    for x in range(size[0] // 2):
        for y in range(size[1]):
            img.putpixel((x, y), (colour[0], uid, colour[2], 255))
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)


@pytest.fixture
def tree(tmp_path) -> Path:
    uid = 0
    for name, (count, colour) in CLASSES.items():
        for i in range(count):
            sub = "nested/" if name == "shapes/stars" and i % 2 else ""
            uid += 1
            _png(tmp_path / name / f"{sub}img_{i:02d}.png", colour, uid * 7)
    _png(tmp_path / "animals" / "loose.png", (9, 9, 9), 250)  # a category's miscellany: ignored
    _png(tmp_path / "people" / "tiny" / "one.png", (9, 9, 9), 251)  # too few images
    os.symlink(tmp_path / "animals/birds/img_00.png", tmp_path / "food/fruit/link.png")  # cross-listing
    clipart._load.cache_clear()
    return tmp_path


def test_discovery_sorted_subcategories_regular_files_only(tree):
    found = discover_classes(tree, min_images_per_class=2)
    assert found == sorted((name, count) for name, (count, _) in CLASSES.items())
    assert discover_classes(tree, min_images_per_class=9) == []


def test_transparency_is_composited_on_white_and_padded_square(tree):
    train, _, names = load_clipart(tree, n_classes=4, images_per_class=8, image_size=16, min_images_per_class=8)
    x, y = train.tensors
    assert x.shape[1:] == (3, 16, 16) and x.dtype == torch.float32
    assert 0.0 <= float(x.min()) and float(x.max()) <= 1.0
    img = x[(y == names.index("animals/birds")).nonzero()[0, 0]]
    assert torch.allclose(img[:, 8, 3], torch.tensor([1.0, img[1, 8, 3], 0.0]), atol=0.02)  # opaque red half
    assert torch.allclose(img[:, 8, 13], torch.ones(3), atol=0.02)  # transparent half -> white
    assert torch.allclose(img[:, 1, 3], torch.ones(3), atol=0.02)  # square padding -> white


def _uids(dataset) -> set:
    x, y = dataset.tensors
    return {(int(label), round(float(img[1, 8, 3]) * 255)) for img, label in zip(x, y)}


def test_split_is_deterministic_disjoint_and_sized(tree):
    train, test, names = load_clipart(tree, n_classes=4, images_per_class=8, image_size=16,
                                      test_fraction=0.25, min_images_per_class=8)
    clipart._load.cache_clear()
    train2, test2, names2 = load_clipart(tree, n_classes=4, images_per_class=8, image_size=16,
                                         test_fraction=0.25, min_images_per_class=8)
    assert names == names2 == sorted(CLASSES)
    assert torch.equal(train.tensors[0], train2.tensors[0]) and torch.equal(test.tensors[1], test2.tensors[1])
    assert train.targets == train.tensors[1].tolist()
    assert sorted(test.targets) == [c for c in range(4) for _ in range(2)]
    assert sorted(train.targets) == [c for c in range(4) for _ in range(6)]
    assert not _uids(train) & _uids(test) and len(_uids(train)) == 24


def test_unreadable_and_oversized_files_are_replaced_by_the_next(tree, monkeypatch):
    (tree / "animals/birds/broken.png").write_bytes(b"not a png")
    Image.new("RGBA", (40, 40), (0, 255, 0, 255)).save(tree / "animals/birds/poster.png")
    monkeypatch.setattr(clipart, "MAX_PIXELS", 12 * 12)
    train, test, names = load_clipart(tree, n_classes=4, images_per_class=8, image_size=16, min_images_per_class=8)
    birds = names.index("animals/birds")
    assert train.targets.count(birds) + test.targets.count(birds) == 8
    assert {uid for label, uid in _uids(train) | _uids(test) if label == birds} == {7 * i for i in range(1, 9)}


def test_best_populated_classes_are_kept(tree):
    _png(tree / "food/fruit/extra.png", (255, 255, 0), 1)
    _, _, names = load_clipart(tree, n_classes=2, images_per_class=4, image_size=16, min_images_per_class=8)
    assert names == ["animals/birds", "food/fruit"]  # 9 images, then the first name among the 8s


def test_seed_sets_the_class_order_only(tree):
    def order(seed):
        bm = clipart_benchmark(n_experiences=2, seed=seed, root=tree, classes_per_experience=2,
                               images_per_class=8, image_size=16, min_images_per_class=8)
        assert bm.class_names == sorted(CLASSES)
        assert [len(e.dataset) for e in bm.train_stream] == [12, 12]
        return [list(e.classes_in_this_experience) for e in bm.train_stream]

    orders = {seed: order(seed) for seed in range(6)}
    assert order(3) == orders[3]
    assert all(sorted(sum(o, [])) == [0, 1, 2, 3] for o in orders.values())
    assert len({str(o) for o in orders.values()}) > 1


@pytest.mark.parametrize("make", [lambda p: p / "absent", lambda p: p])
def test_missing_or_empty_folder_names_the_apt_package(tmp_path, make):
    with pytest.raises(FileNotFoundError, match="apt-get install openclipart-png"):
        discover_classes(make(tmp_path))
    with pytest.raises(FileNotFoundError, match="apt-get install openclipart-png"):
        clipart_benchmark(root=make(tmp_path))


@pytest.mark.parametrize("kwargs", [dict(n_experiences=0), dict(classes_per_experience=1.5),
                                    dict(image_size=4), dict(test_fraction=1.0), dict(seed=-1),
                                    dict(images_per_class=True)])
def test_bad_arguments_are_refused_before_reading_the_disk(tmp_path, kwargs):
    with pytest.raises(ValueError):
        clipart_benchmark(root=tmp_path / "absent", **kwargs)


def test_too_few_classes_lists_what_was_found(tree):
    with pytest.raises(ValueError, match="only 4 subcategories"):
        clipart_benchmark(n_experiences=5, root=tree, min_images_per_class=8)


def test_stream_builder_reads_a_copy_under_the_harness_root(tree, tmp_path_factory):
    harness_root = tmp_path_factory.mktemp("data")
    (harness_root / "openclipart").mkdir()
    (harness_root / "openclipart" / "png").symlink_to(tree, target_is_directory=True)
    with pytest.raises(ValueError, match="20 classes asked for"):  # the defaults need 20 classes
        clipart_stream(0, str(harness_root))


@pytest.mark.slow
@pytest.mark.skipif(not any(Path(CLIPART_ROOT).glob("*/*/*.png")), reason=f"{CLIPART_ROOT} absent")
def test_real_package_stream():
    bm = clipart_stream(1993, "/nonexistent-harness-root")
    assert len(bm.train_stream) == 5 and len(bm.class_names) == 20
    assert all(len(e.classes_in_this_experience) == 4 for e in bm.train_stream)
    assert sum(len(e.dataset) for e in bm.train_stream) == 600
    assert sum(len(e.dataset) for e in bm.test_stream) == 200
    x, y, *_ = bm.train_stream[0].dataset[0]
    assert x.shape == (3, 96, 96) and 0.0 <= float(x.min()) <= float(x.max()) <= 1.0
