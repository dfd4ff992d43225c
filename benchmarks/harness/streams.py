"""The benchmark streams, by name: Avalanche's classic benchmarks cut to a CPU budget.

Every stream reads MNIST / Fashion-MNIST from ``data_root``, filled offline by
:func:`avalanche_litelora.data.fetch_dataset` when empty. Pixels stay in [0, 1] because
the shipped ViTs were pretrained on unnormalised images.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, Optional

import torch
from torchvision.transforms import ToTensor
from avalanche.benchmarks.classic import PermutedMNIST, SplitFMNIST, SplitMNIST

from avalanche_litelora.data import fetch_dataset
from avalanche_litelora.data.clipart import clipart_stream
from avalanche_litelora.data.redundancy_streams import known_redundancy_stream
from avalanche_litelora.data.streams import split_validation, subsample_benchmark


@dataclass(frozen=True)
class StreamSpec:
    """How to build one stream, and which pretrained backbone suits it.

    The backbone is pretrained on the *other* dataset, so no stream is learned by a model
    that has already seen its own images.
    """

    name: str
    build: Callable[[int, str], object]
    task_incremental: bool
    backbone: str
    dataset: str
    description: str
    #: SGD rate of the LoRA methods and the head-only control on this stream's backbone, when
    #: it needs another than methods.json's (EfficientNet-Lite0 diverges at 0.05).
    lora_lr: Optional[float] = None


def _split_mnist(seed: int, root: str, task_labels: bool = False):
    return SplitMNIST(
        n_experiences=5, seed=seed, return_task_id=task_labels, dataset_root=root,
        train_transform=None, eval_transform=None, class_ids_from_zero_in_each_exp=task_labels,
    )


def _split_fmnist(seed: int, root: str):
    # torchvision's FashionMNIST yields PIL images (Avalanche's MNIST already gives tensors)
    return SplitFMNIST(
        n_experiences=5, seed=seed, dataset_root=root,
        train_transform=ToTensor(), eval_transform=ToTensor(),
    )


def _permuted(n: int) -> Callable[[int, str], object]:
    def build(seed: int, root: str):
        return PermutedMNIST(
            n_experiences=n, seed=seed, return_task_id=True, dataset_root=root,
            train_transform=None, eval_transform=None,
        )
    return build


def _digits(seed: int, root: str):
    """scikit-learn's 8x8 digits upsampled to 28x28: a tiny offline stream for smoke tests."""
    from avalanche.benchmarks.scenarios.deprecated.generators import nc_benchmark
    from sklearn.datasets import load_digits
    from torch.nn import functional as F
    from torch.utils.data import TensorDataset

    x, y = load_digits(return_X_y=True)
    x = F.interpolate(torch.tensor(x, dtype=torch.float32).view(-1, 1, 8, 8) / 16.0, size=28)
    y = torch.tensor(y)
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
    cut = int(0.75 * len(y))

    def subset(idx):
        ds = TensorDataset(x[idx], y[idx])
        ds.targets = y[idx].tolist()
        return ds

    return nc_benchmark(
        subset(order[:cut]), subset(order[cut:]), n_experiences=5, task_labels=False, seed=seed,
        class_ids_from_zero_in_each_exp=False,
    )


def _known_redundancy(form: str, schedule: str, dataset: str = "mnist", train: int = 2000, test: int = 500):
    """Ground-truth streams, built at the suite's sizes (``train`` / ``test`` when it asks for all).

    Every experience draws fresh images, so a long stream must build smaller experiences: 24
    experiences of 500 test images need more of some digits than MNIST's test split holds, and
    asking for them is refused by the builder rather than silently cut.
    """
    def build(seed: int, root: str, train_per_experience: Optional[int] = None,
              test_per_experience: Optional[int] = None):
        return known_redundancy_stream(form=form, schedule=schedule, dataset=dataset, seed=seed,
                                       dataset_root=root, train_per_experience=train_per_experience or train,
                                       test_per_experience=test_per_experience or test)
    build.takes_sizes = True
    return build


#: The backbones: the shipped ViT pretrained on the *other* dataset, class token read out.
#: There a head alone learns little and adapters carry each experience (per-task LoRA is far
#: above the head-only control, BENCHMARKS.md), so a gate decision means something. The
#: ``*_tokens`` variants read every token out: a 1,632-wide read-out on which the head alone
#: matches per-task LoRA, for studies of the head rather than of adapters (``--backbone``).
FOR_MNIST, FOR_FMNIST = "vit_small28_fmnist", "vit_small28_mnist"

STREAMS: Dict[str, StreamSpec] = {
    s.name: s
    for s in (
        StreamSpec("split_mnist", _split_mnist, False, FOR_MNIST, "mnist",
                   "Split MNIST, 5 experiences of 2 classes, class-incremental"),
        StreamSpec("split_mnist_ti", lambda seed, root: _split_mnist(seed, root, task_labels=True),
                   True, FOR_MNIST, "mnist",
                   "Split MNIST, 5 experiences of 2 classes, task-incremental"),
        StreamSpec("split_fmnist", _split_fmnist, False, FOR_FMNIST, "fashion_mnist",
                   "Split Fashion-MNIST, 5 experiences of 2 classes, class-incremental"),
        StreamSpec("permuted_mnist10", _permuted(10), True, FOR_MNIST, "mnist",
                   "Permuted MNIST, 10 experiences of 10 classes, task-incremental"),
        StreamSpec("permuted_mnist20", _permuted(20), True, FOR_MNIST, "mnist",
                   "Permuted MNIST, 20 experiences of 10 classes, task-incremental (long stream)"),
        StreamSpec("digits", _digits, False, "vit_small28_fmnist", "",
                   "scikit-learn digits upsampled to 28x28, 5 experiences, class-incremental (tests)"),
        StreamSpec("redundant_domain_short", _known_redundancy("domain", "short"), False, FOR_MNIST,
                   "mnist", "Known redundancy, domain-incremental MNIST: 8 experiences "
                   "(4 novel permutations, 2 repeats, 2 near-repeats), one head"),
        StreamSpec("redundant_domain_long", _known_redundancy("domain", "long", train=2000, test=300), False, FOR_MNIST,
                   "mnist", "Known redundancy, domain-incremental MNIST: 24 experiences "
                   "(10 novel, 8 repeats, 6 near-repeats), one head"),
        StreamSpec("redundant_class_short", _known_redundancy("class", "short"), False, FOR_MNIST,
                   "mnist", "Known redundancy, class-incremental MNIST: 8 experiences of 2 classes "
                   "(4 novel pairs, 2 repeats, 2 near-repeats)"),
        StreamSpec("clipart", clipart_stream, False, "efficientnet_lite0", "",
                   "Open Clip Art (Debian openclipart-png), 5 experiences of 4 subcategories, 96 px RGB, "
                   "class-incremental; needs `apt-get install openclipart-png`", lora_lr=0.01),
        StreamSpec("redundant_domain_immediate", _known_redundancy("domain", "short_immediate"), False,
                   FOR_MNIST, "mnist", "Known redundancy, domain-incremental MNIST: 8 experiences, "
                   "each of 4 novel permutations followed at once by its repeat"),
        StreamSpec("redundant_domain_delayed", _known_redundancy("domain", "short_delayed"), False,
                   FOR_MNIST, "mnist", "Known redundancy, domain-incremental MNIST: 4 novel "
                   "permutations, then their 4 repeats"),
        StreamSpec("redundant_domain_long_immediate",
                   _known_redundancy("domain", "long_immediate", train=2000, test=300), False, FOR_MNIST,
                   "mnist", "Known redundancy, domain-incremental MNIST: 24 experiences, each of 12 "
                   "novel permutations followed at once by its repeat"),
    )
}


def get_stream(name: str) -> StreamSpec:
    if name not in STREAMS:
        raise ValueError(f"unknown stream {name!r}; choose from {sorted(STREAMS)}")
    return STREAMS[name]


def build_stream(
    spec: StreamSpec,
    seed: int,
    data_root: str,
    train_per_experience: Optional[int],
    test_per_experience: Optional[int],
    validation_fraction: float = 0.0,
):
    """The stream for one seed (= class order / permutations), cut to the given sizes.

    With ``validation_fraction`` > 0 the training experiences are split and the returned
    benchmark has a ``valid_stream`` (used to pick hyper-parameters, never the test stream).
    """
    if spec.dataset:
        fetch_dataset(spec.dataset, data_root)
    if getattr(spec.build, "takes_sizes", False):  # built at the asked sizes, never silently cut
        benchmark = spec.build(seed, data_root, train_per_experience, test_per_experience)
    else:
        benchmark = spec.build(seed, data_root)
    benchmark = subsample_benchmark(benchmark, train_per_experience, test_per_experience, seed=seed)
    if validation_fraction:
        benchmark = split_validation(benchmark, validation_fraction, seed=seed)
    return benchmark
