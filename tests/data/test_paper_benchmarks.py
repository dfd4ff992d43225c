"""The paper benchmarks, each built from a tiny synthetic folder in its official layout."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.transforms import ToTensor

from avalanche_litelora.data import (
    DomainNet,
    PaperDatasetError,
    SplitCIFAR100ViT,
    SplitCUB200,
    SplitDomainNet,
    SplitImageNetA,
    SplitImageNetR,
    reference_class_order,
)
from avalanche_litelora.data.paper import split_class, split_sizes, vit_eval_transform, vit_train_transform
from avalanche_litelora.data.paper import cifar as cifar_module
from avalanche_litelora.data.paper import synthetic

pytestmark = pytest.mark.slow  # builds synthetic dataset folders on disk and reads them back as streams

PLAIN = dict(train_transform=ToTensor(), eval_transform=ToTensor())


@pytest.fixture(scope="module")
def imagenet_root(tmp_path_factory):
    """200 classes of 2..11 images (uneven, as ImageNet-R's classes are) and ImageNet-A's 5 each."""
    root = tmp_path_factory.mktemp("imagenet")
    counts = [2 + i % 10 for i in range(200)]
    synthetic.make_imagenet_variant(root, "imagenet-r", images_per_class=counts)
    synthetic.make_imagenet_variant(root, "imagenet-a", images_per_class=5)
    return root, counts


def _tensors(stream):
    return [x for exp in stream for x, *_ in exp.dataset]


def _classes(stream):
    return [sorted(exp.classes_in_this_experience) for exp in stream]


def test_imagenet_r_split_is_80_20_per_class_and_disjoint(imagenet_root):
    root, counts = imagenet_root
    bm = SplitImageNetR(20, seed=0, dataset_root=root, **PLAIN)
    assert len(bm.train_stream) == len(bm.test_stream) == 20
    classes = _classes(bm.train_stream)
    assert all(len(c) == 10 for c in classes) and sorted(sum(classes, [])) == list(range(200))
    assert classes == _classes(bm.test_stream)
    sizes = split_sizes(bm)
    for exp_classes, n_train, n_test in zip(classes, sizes["train"], sizes["test"]):
        assert n_train == sum(int(0.8 * counts[c]) for c in exp_classes)
        assert n_test == sum(counts[c] - int(0.8 * counts[c]) for c in exp_classes)
    # every synthetic image is unique noise: no test image may also be a training image
    train = {x.numpy().tobytes() for x in _tensors(bm.train_stream[:2])}
    assert not train & {x.numpy().tobytes() for x in _tensors(bm.test_stream[:2])}


def test_imagenet_r_is_deterministic_and_the_split_does_not_depend_on_class_order(imagenet_root):
    root, _ = imagenet_root
    a = SplitImageNetR(20, seed=3, dataset_root=root, **PLAIN)
    b = SplitImageNetR(20, seed=3, dataset_root=root, **PLAIN)
    c = SplitImageNetR(20, seed=4, dataset_root=root, **PLAIN)
    assert _classes(a.train_stream) == _classes(b.train_stream) != _classes(c.train_stream)
    assert all(torch.equal(x, y) for x, y in zip(_tensors(a.test_stream[:2]), _tensors(b.test_stream[:2])))
    test_of = lambda bm: {x.numpy().tobytes() for x in _tensors(bm.test_stream)}  # noqa: E731
    assert test_of(a) == test_of(c)  # another class order, the same 80/20 split


def test_split_class_is_fixed_per_class_and_follows_split_seed():
    files = [f"n00000001/img_{i}.jpg" for i in range(10)]
    train, test = split_class(files, "n00000001", 0)
    assert (len(train), len(test)) == (8, 2) and sorted(train + test) == files
    assert split_class(list(reversed(files)), "n00000001", 0) == (train, test)  # listing order is irrelevant
    assert split_class(files, "n00000001", 1) != (train, test)
    assert split_class(files, "n00000002", 0) != (train, test)


def test_reference_class_order_is_the_reference_codes_numpy_permutation(imagenet_root):
    np.random.seed(1993)
    expected = np.random.permutation(200).tolist()  # what the PyCIL data manager does
    assert reference_class_order(200, 1993) == expected
    root, _ = imagenet_root
    bm = SplitImageNetR(20, fixed_class_order=expected, dataset_root=root, **PLAIN)
    assert list(bm.classes_order) == expected
    assert _classes(bm.train_stream)[0] == sorted(expected[:10])


def test_imagenet_a_builds_200_classes_in_20_tasks(imagenet_root):
    root, _ = imagenet_root
    bm = SplitImageNetA(20, seed=1, return_task_id=True, dataset_root=root, **PLAIN)
    assert split_sizes(bm) == {"train": [40] * 20, "test": [10] * 20}
    assert [exp.task_label for exp in bm.train_stream] == list(range(20))


def test_a_split_made_earlier_is_used_as_it_is(tmp_path):
    for part, count in (("train", 3), ("test", 2)):
        synthetic.make_imagenet_variant(tmp_path, f"imagenet-r/{part}", images_per_class=count)
    bm = SplitImageNetR(10, seed=0, dataset_root=tmp_path, **PLAIN)
    assert split_sizes(bm) == {"train": [60] * 10, "test": [40] * 10}


def test_imagenet_errors_name_the_dataset_the_layout_and_the_source(tmp_path, imagenet_root):
    with pytest.raises(PaperDatasetError, match=r"(?s)ImageNet-R: no folder.*imagenet-r/<wnid>.*hendrycks"):
        SplitImageNetR(dataset_root=tmp_path)
    synthetic.make_imagenet_variant(tmp_path, "imagenet-a", images_per_class=2, n_classes=199)
    with pytest.raises(PaperDatasetError, match="ImageNet-A: .*199 class folders, expected 200"):
        SplitImageNetA(dataset_root=tmp_path)
    synthetic.make_imagenet_variant(tmp_path, "imagenet-r", images_per_class=[2] * 199 + [1])
    with pytest.raises(PaperDatasetError, match="1 image.*at least 2 per class"):
        SplitImageNetR(dataset_root=tmp_path)
    with pytest.raises(ValueError, match="does not divide"):
        SplitImageNetA(7, dataset_root=imagenet_root[0])


def test_nothing_is_downloaded_unless_asked(tmp_path, monkeypatch):
    calls = []

    def fake_download(url, download_root, extract_root):
        calls.append(url)
        synthetic.make_imagenet_variant(extract_root, "imagenet-r", images_per_class=2)

    monkeypatch.setattr("torchvision.datasets.utils.download_and_extract_archive", fake_download)
    with pytest.raises(PaperDatasetError):
        SplitImageNetR(dataset_root=tmp_path)
    assert calls == []
    bm = SplitImageNetR(dataset_root=tmp_path, download=True, **PLAIN)
    assert calls == ["https://people.eecs.berkeley.edu/~hendrycks/imagenet-r.tar"]
    assert split_sizes(bm)["train"] == [10] * 20


def test_cub_uses_the_official_split_files(tmp_path):
    synthetic.make_cub(tmp_path, train_per_class=2, test_per_class=1)
    bm = SplitCUB200(10, seed=0, dataset_root=tmp_path, **PLAIN)
    assert split_sizes(bm) == {"train": [40] * 10, "test": [20] * 10}
    assert sorted(sum(_classes(bm.train_stream), [])) == list(range(200))
    order = reference_class_order(200, 1995)
    assert list(SplitCUB200(10, fixed_class_order=order, dataset_root=tmp_path, **PLAIN).classes_order) == order


def test_cub_errors(tmp_path):
    with pytest.raises(PaperDatasetError, match="(?s)CUB-200: no folder.*train_test_split.txt.*caltech"):
        SplitCUB200(dataset_root=tmp_path)
    cub = synthetic.make_cub(tmp_path, train_per_class=1, test_per_class=1)
    next((cub / "images").rglob("*.jpg")).unlink()
    with pytest.raises(PaperDatasetError, match="is missing"):
        SplitCUB200(dataset_root=tmp_path)
    (cub / "train_test_split.txt").unlink()
    with pytest.raises(PaperDatasetError, match="lacks train_test_split.txt"):
        SplitCUB200(dataset_root=tmp_path)


@pytest.fixture(scope="module")
def domainnet_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("domainnet")
    synthetic.make_domainnet(root, train_per_class=1, test_per_class=1)
    return root


def test_domainnet_domain_incremental_has_one_experience_per_domain(domainnet_root):
    bm = DomainNet(return_task_id=True, dataset_root=domainnet_root, **PLAIN)
    assert bm.domains == ["clipart", "infograph", "painting", "quickdraw", "real", "sketch"]
    assert split_sizes(bm) == {"train": [345] * 6, "test": [345] * 6}
    assert all(c == list(range(345)) for c in _classes(bm.train_stream))
    assert [exp.task_label for exp in bm.train_stream] == list(range(6))
    shuffled = DomainNet(seed=2000, domains=("real", "sketch", "clipart"), dataset_root=domainnet_root, **PLAIN)
    expected = [["real", "sketch", "clipart"][i] for i in np.random.RandomState(2000).permutation(3)]
    assert shuffled.domains == expected and len(shuffled.train_stream) == 3


def test_domainnet_class_incremental_pools_the_domains(domainnet_root):
    bm = SplitDomainNet(5, seed=0, dataset_root=domainnet_root, **PLAIN)
    assert split_sizes(bm) == {"train": [69 * 6] * 5, "test": [69 * 6] * 5}
    assert sorted(sum(_classes(bm.train_stream), [])) == list(range(345))
    two = SplitDomainNet(5, seed=0, domains=("real", "sketch"), dataset_root=domainnet_root, **PLAIN)
    assert split_sizes(two)["train"] == [69 * 2] * 5


def test_domainnet_errors(tmp_path, domainnet_root):
    with pytest.raises(PaperDatasetError, match="(?s)DomainNet: no folder.*<domain>_train.txt.*M3SDA") as missing:
        DomainNet(dataset_root=tmp_path)
    # the DomainNet builders take no ``download``: the message must not offer one
    assert "download=True" not in str(missing.value) and "never downloads" in str(missing.value)
    synthetic.make_domainnet(tmp_path, domains=("real",), n_classes=345)
    (tmp_path / "domainnet" / "real_test.txt").unlink()
    with pytest.raises(PaperDatasetError, match="no split file .*real_test.txt"):
        SplitDomainNet(domains=("real",), dataset_root=tmp_path)
    with pytest.raises(ValueError, match="domains must be distinct"):
        DomainNet(domains=("real", "real"), dataset_root=domainnet_root)


def test_cifar100_refuses_missing_files_without_reaching_the_network(tmp_path, monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("tried to download")

    monkeypatch.setattr("torchvision.datasets.CIFAR100.download", no_network)
    with pytest.raises(PaperDatasetError, match="(?s)CIFAR-100: no file .*cifar-100-python.*toronto"):
        SplitCIFAR100ViT(dataset_root=tmp_path)
    synthetic.make_cifar100(tmp_path)
    with pytest.raises(PaperDatasetError, match="damaged"):  # synthetic files are not the official ones
        SplitCIFAR100ViT(dataset_root=tmp_path)


def test_cifar100_goes_through_avalanches_split_cifar100_at_224_pixels(tmp_path, monkeypatch):
    synthetic.make_cifar100(tmp_path, train_per_class=2, test_per_class=1)
    # the synthetic pickles cannot match torchvision's MD5s: accept them, as for the real files
    monkeypatch.setattr(cifar_module, "check_integrity", lambda path, md5: True)
    monkeypatch.setattr("torchvision.datasets.CIFAR100._check_integrity", lambda self: True)
    monkeypatch.setattr("torchvision.datasets.cifar.check_integrity", lambda path, md5=None: True)
    bm = SplitCIFAR100ViT(10, fixed_class_order=reference_class_order(100, 2000), dataset_root=tmp_path)
    assert split_sizes(bm) == {"train": [20] * 10, "test": [10] * 10}
    assert _classes(bm.train_stream)[0] == sorted(reference_class_order(100, 2000)[:10])
    x, y, t = bm.test_stream[0].dataset[0]
    assert x.shape == (3, 224, 224) and -1.0 <= float(x.min()) <= float(x.max()) <= 1.0


def test_vit_transforms_use_timms_in21k_statistics():
    grey = Image.fromarray(np.full((8, 8, 3), 255, dtype=np.uint8))
    for transform in (vit_eval_transform(), vit_train_transform()):
        x = transform(grey)
        assert x.shape == (3, 224, 224)
        assert torch.allclose(x, torch.ones_like(x))  # (1 - 0.5) / 0.5: mean = std = 0.5
