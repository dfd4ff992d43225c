"""Streams whose redundancy is known: every experience is labelled novel, repeat or near-repeat.

LiteLoRA's claim is that its gate drops the adapters of redundant experiences. These streams
let that be judged against ground truth. Each experience is *novel* (an input transform or
class pair never seen before), a *repeat* (exactly the transform or class pair of an earlier
novel experience, on fresh samples) or a *near-repeat* (that earlier experience rotated by a
few degrees, fresh samples). Every experience uses its own train and test images: no sample
index is ever drawn twice, so a repeat's test accuracy measures transfer, not memory.

Example (the README's "ground-truth streams" quick start)::

    import torch
    from avalanche.evaluation.metrics import accuracy_metrics
    from avalanche.training.plugins import EvaluationPlugin
    from avalanche_litelora import LiteLoRAStrategy, known_redundancy_stream
    from avalanche_litelora.backbones import create_backbone

    benchmark = known_redundancy_stream(form="domain", schedule="short", dataset_root="data")
    model = create_backbone("vit_small28_fmnist")
    strategy = LiteLoRAStrategy(
        model=model, optimizer=torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9),
        rank=4, train_mb_size=64, train_epochs=3, eval_mb_size=512,
        evaluator=EvaluationPlugin(accuracy_metrics(stream=True), loggers=[]))
    for exp in benchmark.train_stream:
        strategy.train(exp)                      # experience i opens candidate "adapter_i"
    for i, label in enumerate(benchmark.redundancy):
        decision = "kept" if f"adapter_{i}" in strategy.active_adapters else "pruned"
        print(i, label.kind, label.source, label.transform, decision)
    print(strategy.pruned_adapters)

The labels ride on the datasets (a constant ``redundancy`` data attribute), so they survive
:func:`~avalanche_litelora.data.streams.subsample_benchmark`, ``split_validation`` and any
``subset``: read them back with :func:`redundancy_of` (one experience) or
:func:`stream_redundancy` (a whole stream, e.g. ``valid_stream``).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from avalanche.benchmarks.utils import ConstantSequence, DataAttribute
from avalanche.benchmarks.utils.classification_dataset import TaskAwareSupervisedClassificationDataset
from torch import Tensor, nn
from torch.utils.data import TensorDataset
from torchvision.transforms.functional import InterpolationMode, rotate

from avalanche_litelora.checks import check_count, is_finite

from .fetch import fetch_dataset
from .streams import _rebuild

KINDS = ("novel", "repeat", "near_repeat")
FORMS = ("domain", "class")
DATASETS = ("mnist", "fashion_mnist", "both")

#: Named schedules, one token per experience: ``N`` novel, ``R<k>`` a repeat of experience k,
#: ``NR<k>`` a near-repeat of experience k (k always an earlier *novel* experience).
SCHEDULES: Dict[str, str] = {
    # 8 experiences: 4 novel, 2 repeats (one 3 back, one right after its source), 2 near-repeats.
    "short": "N N N R0 N R4 NR1 NR2",
    # 24 experiences: 10 novel, 8 repeats, 6 near-repeats; each half holds both kinds
    # (first half 6 novel / 6 redundant, second half 4 / 8); sources 1 to 23 experiences back.
    "long": ("N N N R0 N NR1 N R2 R4 N NR6 R9 "
             "NR0 N R13 R1 N NR9 R6 N NR13 R16 N NR19"),
    # Repeats right after their source, while the bank still serves it: 4 novel, 4 repeats.
    "short_immediate": "N R0 N R2 N R4 N R6",
    # Repeats four experiences after their source: 4 novel, then their 4 repeats.
    "short_delayed": "N N N N R0 R1 R2 R3",
    # 24 experiences, each novel one followed by its repeat (domain form: 12 permutations).
    "long_immediate": " ".join(f"N R{2 * i}" for i in range(12)),
}

_TOKEN = re.compile(r"^(N|R|NR)(\d*)$")


@dataclass(frozen=True)
class ExperienceRedundancy:
    """The ground truth of one experience.

    ``kind`` is ``"novel"``, ``"repeat"`` or ``"near_repeat"``; ``source`` the index of the
    earlier novel experience it repeats (None when novel); ``transform`` a readable name of
    its input transform (a repeat's equals its source's); ``classes`` its class ids.
    """

    kind: str
    source: Optional[int]
    transform: str
    classes: Tuple[int, ...]

    @property
    def redundant(self) -> bool:
        """True for repeats and near-repeats: the bank already holds what they need, or nearly."""
        return self.kind != "novel"


@dataclass(frozen=True)
class InputTransform:
    """A fixed tensor transform of (N, 1, 28, 28) images in [0, 1]: rotate, then permute pixels.

    Applied to a whole batch at build time, so no per-sample PIL work happens in training.
    """

    rotation_degrees: float = 0.0
    permutation: Optional[Tuple[int, ...]] = field(default=None, repr=False)

    def __call__(self, images: Tensor) -> Tensor:
        out = images
        if self.rotation_degrees:
            # counter-clockwise about the centre, bilinear, zero (black) fill
            out = rotate(out, self.rotation_degrees, interpolation=InterpolationMode.BILINEAR).clamp_(0, 1)
        if self.permutation is not None:
            flat = out.reshape(out.shape[0], -1)
            out = flat[:, torch.tensor(self.permutation)].reshape(out.shape)
        return out


def parse_schedule(schedule: str) -> Tuple[Tuple[str, Optional[int]], ...]:
    """``"short"``, ``"long"`` or a token string such as ``"N N R0 NR1"`` -> (kind, source) pairs."""
    if not isinstance(schedule, str):
        raise ValueError(f"schedule must be 'short', 'long' or a token string, got {schedule!r}")
    tokens = SCHEDULES.get(schedule, schedule).split()
    if not tokens:
        raise ValueError(f"schedule must name at least one experience, got {schedule!r}")
    parsed: List[Tuple[str, Optional[int]]] = []
    for position, token in enumerate(tokens):
        match = _TOKEN.match(token)
        if match is None or (match.group(1) == "N") != (match.group(2) == ""):
            raise ValueError(
                f"schedule token {token!r} (experience {position}) is not N, R<k> or NR<k>; "
                f"named schedules: {sorted(SCHEDULES)}")
        if match.group(1) == "N":
            parsed.append(("novel", None))
            continue
        source = int(match.group(2))
        if source >= position or parsed[source][0] != "novel":
            raise ValueError(
                f"schedule token {token!r} (experience {position}) must point to an earlier "
                f"novel experience")
        parsed.append(("repeat" if match.group(1) == "R" else "near_repeat", source))
    return tuple(parsed)


def redundancy_of(experience) -> ExperienceRedundancy:
    """The ground-truth label of one experience of a known-redundancy stream (any stream)."""
    labels = getattr(experience.dataset, "redundancy", None)
    if labels is None:
        raise ValueError("this experience does not come from known_redundancy_stream: no 'redundancy' labels")
    uniques = labels.uniques
    if len(uniques) != 1:
        raise ValueError(f"experience mixes {len(uniques)} redundancy labels; expected one")
    return next(iter(uniques))


def stream_redundancy(stream) -> Tuple[ExperienceRedundancy, ...]:
    """Labels of every experience of a stream, in order (train, valid or test)."""
    return tuple(redundancy_of(exp) for exp in stream)


def known_redundancy_stream(
    form: str = "domain",
    schedule: str = "short",
    dataset: str = "mnist",
    seed: int = 0,
    dataset_root: Union[str, os.PathLike] = "data",
    train_per_experience: int = 1000,
    test_per_experience: int = 300,
    near_repeat_degrees: float = 10.0,
):
    """An Avalanche benchmark whose experiences are novel, repeats or near-repeats, by design.

    ``form="domain"``: one head, every class in every experience, task label 0. A novel
    experience draws a new seeded pixel permutation; a near-repeat rotates images by
    ``near_repeat_degrees`` (counter-clockwise, bilinear) and then applies its source's
    permutation. ``form="class"``: two classes per experience (seeded class order, consecutive
    pairs); a near-repeat rotates its source's pair; pixels are not permuted. Class ids are
    global (no per-experience relabelling).

    ``schedule``: ``"short"`` (8 experiences), ``"long"`` (24, 10 novel) or tokens (see
    :data:`SCHEDULES`). The long class form needs 10 disjoint class pairs, so it requires
    ``dataset="both"`` (MNIST digits 0-9 plus Fashion-MNIST as classes 10-19): a pair that
    reuses a seen class would be neither novel nor a repeat. Every experience is class-balanced
    (``n // k`` images of each of its ``k`` classes, the remainder to a seeded few).

    The seed fixes permutations, class order and samples; the schedule is fixed by name. Pixels
    stay in [0, 1], shape (1, 28, 28). Returns the benchmark with ``redundancy`` (labels aligned
    with ``train_stream``) and ``input_transforms`` (the :class:`InputTransform` of each
    experience); each dataset also carries ``sample_ids`` (indices into the source split;
    Fashion-MNIST offset by MNIST's length when ``dataset="both"``).
    """
    plan = _check_arguments(form, schedule, dataset, seed, train_per_experience,
                            test_per_experience, near_repeat_degrees)
    names = ("mnist", "fashion_mnist") if dataset == "both" else (dataset,)
    for name in names:
        fetch_dataset(name, dataset_root)
    n_classes = 10 * len(names)
    n_novel = sum(kind == "novel" for kind, _ in plan)
    if form == "class" and n_novel > n_classes // 2:
        raise ValueError(
            f"schedule {schedule!r} has {n_novel} novel experiences but dataset={dataset!r} "
            f"offers only {n_classes // 2} disjoint class pairs; use dataset='both' or form='domain'")

    rng = np.random.default_rng([seed, 0])  # transforms and class order; samples below
    transforms, labels = _design(plan, form, n_classes, near_repeat_degrees, rng)
    streams = {}
    for split, size, argument, split_id in (("train", train_per_experience, "train_per_experience", 1),
                                            ("test", test_per_experience, "test_per_experience", 2)):
        images, targets = _load_pool(names, dataset_root, train=(split == "train"))
        picks = _draw_samples(labels, targets, size, argument, np.random.default_rng([seed, split_id]))
        streams[split] = [
            _experience_dataset(images, targets, idx, transform, label)
            for idx, transform, label in zip(picks, transforms, labels)
        ]
    benchmark = _rebuild(streams)
    benchmark.redundancy = tuple(labels)
    benchmark.input_transforms = tuple(transforms)
    return benchmark


#: The narrow bank: its schedule, its feature width, and the lambda (nats) that separates there
#: (candidates worth 1.60 nats novel, 0.39 and 0.29 repeats, on closed losses of 0.81-2.25: at
#: lambda 1 the last repeat's decision would be forced, which the strategy warns about).
NARROW_SCHEDULE, NARROW_FEATURES, NARROW_LAMBDA = "N N R0 R1", 8, 0.8


def narrow_bank(dataset_root: Union[str, os.PathLike] = "data", *, lambda_sparsity: float = NARROW_LAMBDA,
                seed: int = 0, plugins: Sequence = (), evaluator=None):
    """A stream where the gate's ground truth can be tested, and an untrained LiteLoRA for it.

    On the shipped ViT the head does the work and no candidate's benefit tells a working gate
    from a broken one. Here the backbone is a frozen random ``Linear(784, 8)``: the head cannot
    absorb a new pixel permutation, so a novel experience's adapter is needed and a repeat's
    adds little. The stream is :func:`known_redundancy_stream` (domain form,
    :data:`NARROW_SCHEDULE`, 512 training and 128 test images per experience, seed 0); ``seed``
    draws the projection and the adapters. LiteLoRA weighs each candidate against
    ``lambda_sparsity`` nats (absolute rule). ``evaluator`` defaults to the stream's accuracy
    without a logger. Returns ``(stream, strategy)``; train it experience by experience
    (:func:`~avalanche_litelora.training.loop.train_stream`)::

        stream, strategy = narrow_bank("data")
        train_stream(strategy, stream, eval_streams=())
        strategy.pruned_adapters                  # ['adapter_2', 'adapter_3']: the repeats
    """
    # imported here: the data package sits below the methods and their metrics
    from avalanche_litelora.evaluation import quiet_evaluator
    from avalanche_litelora.lora.strategies import LiteLoRAStrategy

    torch.manual_seed(seed)
    stream = known_redundancy_stream(form="domain", schedule=NARROW_SCHEDULE, seed=0, dataset_root=dataset_root,
                                     train_per_experience=512, test_per_experience=128)
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, NARROW_FEATURES))
    strategy = LiteLoRAStrategy(
        model=model, optimizer=torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9),
        feature_dim=NARROW_FEATURES, target_modules=("1",), rank=4, train_mb_size=32, train_epochs=4,
        eval_mb_size=256, lambda_sparsity=lambda_sparsity, lambda_rule="absolute", selection_mb_size=16,
        plugins=list(plugins), evaluator=evaluator if evaluator is not None else quiet_evaluator(stream=True))
    return stream, strategy


# ----------------------------------------------------------------------------- internals


def _check_arguments(form, schedule, dataset, seed, train_n, test_n, degrees):
    if form not in FORMS:
        raise ValueError(f"form must be one of {FORMS}, got {form!r}")
    if dataset not in DATASETS:
        raise ValueError(f"dataset must be one of {DATASETS}, got {dataset!r}")
    check_count("seed", seed, 0)
    check_count("train_per_experience", train_n, 2)
    check_count("test_per_experience", test_n, 2)
    if not is_finite(degrees) or not 0 < abs(degrees) <= 45:
        raise ValueError(
            f"near_repeat_degrees must be a non-zero angle of at most 45 degrees, got {degrees!r}")
    return parse_schedule(schedule)


def _design(plan, form, n_classes, degrees, rng):
    """Each experience's transform and label, from the schedule and the seeded generator."""
    all_classes = tuple(range(n_classes))
    class_order = rng.permutation(n_classes).tolist()
    transforms: List[InputTransform] = []
    labels: List[ExperienceRedundancy] = []
    n_novel = 0
    for kind, source in plan:
        if kind == "novel":
            if form == "domain":
                transform = InputTransform(permutation=tuple(rng.permutation(28 * 28).tolist()))
                name, classes = f"pixel permutation {n_novel}", all_classes
            else:
                transform = InputTransform()
                classes = tuple(sorted(class_order[2 * n_novel: 2 * n_novel + 2]))
                name = f"classes {classes[0]} and {classes[1]}"
            n_novel += 1
        else:
            base, base_label = transforms[source], labels[source]
            classes, name = base_label.classes, base_label.transform
            transform = base
            if kind == "near_repeat":
                transform = InputTransform(rotation_degrees=float(degrees), permutation=base.permutation)
                name = (f"rotated {degrees:+g} deg, then {name}" if form == "domain"
                        else f"{name}, rotated {degrees:+g} deg")
        transforms.append(transform)
        labels.append(ExperienceRedundancy(kind, source, name, classes))
    return transforms, labels


def _load_pool(names: Sequence[str], root, train: bool) -> Tuple[Tensor, Tensor]:
    """uint8 images (N, 28, 28) and global class ids of one split; Fashion-MNIST as 10-19."""
    from torchvision.datasets import MNIST, FashionMNIST

    classes = {"mnist": MNIST, "fashion_mnist": FashionMNIST}
    images, targets = [], []
    for offset, name in enumerate(names):
        data = classes[name](str(root), train=train, download=False)
        images.append(data.data)
        targets.append(data.targets.long() + 10 * offset)
    return torch.cat(images), torch.cat(targets)


def _draw_samples(labels, targets: Tensor, size: int, argument: str, rng) -> List[Tensor]:
    """Fresh pool indices for every experience, class-balanced: no index is used twice in a split.

    Each experience splits ``size`` evenly over its classes (the remainder to a seeded few), so
    every promised class is present even in tiny experiences.
    """
    queues = {c: torch.from_numpy(rng.permutation((targets == c).nonzero().flatten().numpy()))
              for c in range(int(targets.max()) + 1)}
    used = {c: 0 for c in queues}
    picks = []
    for label in labels:
        k = len(label.classes)
        if size < k:
            raise ValueError(
                f"{argument}={size} cannot hold one image of each of the {k} classes of an experience")
        extra = set(rng.permutation(k)[: size % k].tolist())
        parts = []
        for j, c in enumerate(label.classes):
            n = size // k + (j in extra)
            if used[c] + n > len(queues[c]):
                raise ValueError(
                    f"{argument}={size} runs out of fresh images of class {c} ({len(queues[c])} in the "
                    f"pool, drawn by {sum(c in l.classes for l in labels)} experiences); "
                    f"choose a smaller size")
            parts.append(queues[c][used[c]:used[c] + n])
            used[c] += n
        picks.append(torch.cat(parts)[torch.from_numpy(rng.permutation(size))])
    return picks


def _experience_dataset(images: Tensor, targets: Tensor, idx: Tensor, transform: InputTransform,
                        label: ExperienceRedundancy) -> TaskAwareSupervisedClassificationDataset:
    x = transform(images[idx].unsqueeze(1).float().div_(255.0))
    y = targets[idx]
    n = len(idx)
    return TaskAwareSupervisedClassificationDataset(
        [TensorDataset(x, y)],
        data_attributes=[
            DataAttribute(y.tolist(), "targets"),
            DataAttribute(ConstantSequence(0, n), "targets_task_labels", use_in_getitem=True),
            DataAttribute(ConstantSequence(label, n), "redundancy"),
            DataAttribute(idx.tolist(), "sample_ids"),
        ],
    )
