"""Ground-truth redundancy streams on the real MNIST / Fashion-MNIST (fetched offline once)."""

from __future__ import annotations

import pickle

import pytest
import torch
from avalanche.evaluation.metrics import accuracy_metrics
from avalanche.training.plugins import EvaluationPlugin
from torchvision.datasets import MNIST
from torchvision.transforms.functional import InterpolationMode, rotate

from avalanche_litelora import (
    LiteLoRAStrategy,
    PerTaskLoRAStrategy,
    known_redundancy_stream,
    redundancy_of,
    stream_redundancy,
)
from avalanche_litelora.backbones import create_backbone
from avalanche_litelora.data.redundancy_streams import SCHEDULES, parse_schedule
from avalanche_litelora.data.streams import split_validation, subsample_benchmark

SMALL = dict(train_per_experience=40, test_per_experience=20)


@pytest.fixture(scope="module")
def root(fetched):
    fetched("fashion_mnist")
    return fetched("mnist")[0]


@pytest.fixture(scope="module")
def domain_short(root):
    return known_redundancy_stream(form="domain", schedule="short", seed=3, dataset_root=root, **SMALL)


@pytest.fixture(scope="module")
def mnist_test_images(root):
    return MNIST(str(root), train=False, download=False).data


@pytest.fixture(scope="module")
def mnist_test_targets(root):
    return MNIST(str(root), train=False, download=False).targets


def _images(exp) -> torch.Tensor:
    return torch.stack([exp.dataset[i][0] for i in range(len(exp.dataset))])


# ------------------------------------------------------------------ schedules


def test_named_schedules_have_the_promised_shape():
    short, long = parse_schedule("short"), parse_schedule("long")
    kinds = lambda plan: [k for k, _ in plan]  # noqa: E731
    assert len(short) == 8 and kinds(short).count("novel") == 4
    assert kinds(short).count("repeat") == 2 and kinds(short).count("near_repeat") == 2
    assert len(long) >= 24 and kinds(long).count("novel") >= 8
    for plan in (short, long):
        assert plan[0] == ("novel", None)
        for position, (kind, source) in enumerate(plan):
            assert (source is None) == (kind == "novel")
            if source is not None:
                assert source < position and plan[source][0] == "novel"
    half = len(long) // 2
    for part in (long[:half], long[half:]):
        assert "novel" in kinds(part) and {"repeat", "near_repeat"} <= set(kinds(part))


@pytest.mark.parametrize("spec", ["", "R0", "N R1", "N NR0 R1", "N X", "N R", "N0", 7])
def test_bad_schedules_are_refused(spec):
    with pytest.raises(ValueError, match="schedule"):
        parse_schedule(spec)


def test_custom_schedule_tokens():
    assert parse_schedule("N N NR1 R0") == (("novel", None), ("novel", None),
                                            ("near_repeat", 1), ("repeat", 0))


# ------------------------------------------------------------------ domain form


def test_domain_labels_follow_the_schedule(domain_short):
    labels = domain_short.redundancy
    assert [(l.kind, l.source) for l in labels] == list(parse_schedule("short"))
    assert stream_redundancy(domain_short.train_stream) == labels
    assert stream_redundancy(domain_short.test_stream) == labels
    assert [l.redundant for l in labels] == [l.kind != "novel" for l in labels]
    for exp, label in zip(domain_short.train_stream, labels):
        assert exp.classes_in_this_experience == list(range(10)) == list(label.classes)
        assert set(exp.dataset.targets.count.values()) == {4}  # 40 images, balanced
        assert exp.task_labels == [0]
        x, y, t = exp.dataset[0]
        assert x.shape == (1, 28, 28) and x.dtype == torch.float32 and t == 0
        assert 0.0 <= float(_images(exp).min()) and float(_images(exp).max()) <= 1.0


def test_samples_are_fresh_in_every_experience(domain_short):
    for stream in (domain_short.train_stream, domain_short.test_stream):
        ids = [list(exp.dataset.sample_ids) for exp in stream]
        flat = [i for part in ids for i in part]
        assert len(flat) == len(set(flat)) == sum(len(p) for p in ids)


def test_experience_images_are_the_transformed_pool_images(domain_short, mnist_test_images,
                                                          mnist_test_targets):
    """Oracle: permute the raw pixels by hand (and rotate with torchvision) and compare."""
    for exp, label, transform in zip(domain_short.test_stream, domain_short.redundancy,
                                     domain_short.input_transforms):
        raw = mnist_test_images[torch.tensor(list(exp.dataset.sample_ids))].unsqueeze(1).float() / 255
        if label.kind == "near_repeat":
            raw = rotate(raw, 10.0, interpolation=InterpolationMode.BILINEAR).clamp(0, 1)
        expected = raw.reshape(len(raw), -1)[:, list(transform.permutation)].reshape(raw.shape)
        torch.testing.assert_close(_images(exp), expected, rtol=0, atol=1e-6)
        ids = list(exp.dataset.sample_ids)
        assert [int(exp.dataset[i][1]) for i in range(len(ids))] == mnist_test_targets[ids].tolist()


def test_repeats_apply_their_source_transform(domain_short, mnist_test_images):
    probe = mnist_test_images[:16].unsqueeze(1).float() / 255
    transforms = domain_short.input_transforms
    for i, label in enumerate(domain_short.redundancy):
        if label.kind == "repeat":
            assert torch.equal(transforms[i](probe), transforms[label.source](probe))
            assert label.transform == domain_short.redundancy[label.source].transform


def test_near_repeats_differ_slightly_and_novel_ones_differ(domain_short, mnist_test_images):
    probe = mnist_test_images[:64].unsqueeze(1).float() / 255
    transforms, labels = domain_short.input_transforms, domain_short.redundancy
    novel = [i for i, l in enumerate(labels) if l.kind == "novel"]
    perms = {transforms[i].permutation for i in novel}
    assert len(perms) == len(novel)  # every novel experience has its own permutation
    other = (transforms[novel[0]](probe) - transforms[novel[1]](probe)).abs().mean()
    for i, label in enumerate(labels):
        if label.kind == "near_repeat":
            gap = (transforms[i](probe) - transforms[label.source](probe)).abs().mean()
            assert 0 < gap < 0.5 * other
            assert transforms[i].permutation == transforms[label.source].permutation


def test_determinism_by_seed(root, domain_short):
    again = known_redundancy_stream(form="domain", schedule="short", seed=3, dataset_root=root, **SMALL)
    other = known_redundancy_stream(form="domain", schedule="short", seed=4, dataset_root=root, **SMALL)
    assert again.input_transforms == domain_short.input_transforms
    assert again.redundancy == domain_short.redundancy
    for a, b in zip(again.train_stream, domain_short.train_stream):
        assert list(a.dataset.sample_ids) == list(b.dataset.sample_ids)
        assert torch.equal(_images(a), _images(b))
    assert other.input_transforms[0].permutation != domain_short.input_transforms[0].permutation
    first_ids = list(domain_short.train_stream[0].dataset.sample_ids)
    assert list(other.train_stream[0].dataset.sample_ids) != first_ids


def test_long_domain_stream_at_default_sizes(root):
    bench = known_redundancy_stream(form="domain", schedule="long", dataset_root=root)
    assert len(bench.train_stream) == len(bench.redundancy) == len(SCHEDULES["long"].split())
    assert {len(e.dataset) for e in bench.train_stream} == {1000}
    assert {len(e.dataset) for e in bench.test_stream} == {300}
    assert sum(l.kind == "novel" for l in bench.redundancy) >= 8


# ------------------------------------------------------------------ class form


def test_class_form_pairs(root):
    bench = known_redundancy_stream(form="class", schedule="short", seed=1, dataset_root=root, **SMALL)
    labels = bench.redundancy
    novel_pairs = [set(l.classes) for l in labels if l.kind == "novel"]
    assert all(len(p) == 2 for p in novel_pairs)
    assert len(set().union(*novel_pairs)) == 2 * len(novel_pairs)  # pairs are disjoint
    for exp, test_exp, label in zip(bench.train_stream, bench.test_stream, labels):
        assert exp.classes_in_this_experience == list(label.classes)
        assert test_exp.classes_in_this_experience == list(label.classes)
        assert sorted(exp.dataset.targets.count.values()) == [20, 20]  # balanced pair
        if label.source is not None:
            assert label.classes == labels[label.source].classes
    near = [i for i, l in enumerate(labels) if l.kind == "near_repeat"]
    assert near and all(bench.input_transforms[i].rotation_degrees == 10.0 for i in near)
    assert all(t.permutation is None for t in bench.input_transforms)


def test_long_class_form_uses_both_datasets(root):
    bench = known_redundancy_stream(form="class", schedule="long", dataset="both", dataset_root=root, **SMALL)
    novel = [l.classes for l in bench.redundancy if l.kind == "novel"]
    assert len(novel) == 10 and sorted(c for pair in novel for c in pair) == list(range(20))
    ids = [i for exp in bench.train_stream for i in exp.dataset.sample_ids]
    assert len(ids) == len(set(ids))
    with pytest.raises(ValueError, match="dataset"):
        known_redundancy_stream(form="class", schedule="long", dataset="mnist", dataset_root=root, **SMALL)


# ------------------------------------------------------------------ through the harness


def test_labels_survive_subsample_and_validation_split(domain_short):
    cut = subsample_benchmark(domain_short, 30, 10, seed=0)
    split = split_validation(cut, 0.25, seed=0)
    for stream in (split.train_stream, split.valid_stream, split.test_stream):
        assert stream_redundancy(stream) == domain_short.redundancy
    assert {len(e.dataset) for e in split.train_stream} == {22}
    assert {len(e.dataset) for e in split.valid_stream} == {8}
    assert {len(e.dataset) for e in split.test_stream} == {10}
    for exp, orig in zip(split.valid_stream, domain_short.train_stream):
        assert set(exp.dataset.sample_ids) <= set(orig.dataset.sample_ids)
    assert redundancy_of(split.valid_stream[3]).source == 0


def test_labels_survive_pickling(domain_short):
    """Checkpoints and worker processes pickle datasets; the label must come back intact."""
    exp = domain_short.train_stream[6]
    copy = pickle.loads(pickle.dumps(exp.dataset))
    assert redundancy_of(copy_experience(copy)) == domain_short.redundancy[6]


def copy_experience(dataset):
    return type("Experience", (), {"dataset": dataset})()


def test_redundancy_of_a_plain_stream_is_refused(ci_benchmark):
    with pytest.raises(ValueError, match="known_redundancy_stream"):
        redundancy_of(ci_benchmark.train_stream[0])


# ------------------------------------------------------------------ strategies run on it


def _evaluator():
    return EvaluationPlugin(accuracy_metrics(experience=True), loggers=[])


def test_litelora_trains_the_domain_form(root):
    torch.manual_seed(0)
    bench = known_redundancy_stream(form="domain", schedule="N R0", dataset_root=root,
                                    train_per_experience=32, test_per_experience=16)
    model = create_backbone("vit_small28_fmnist")
    strategy = LiteLoRAStrategy(
        model=model, optimizer=torch.optim.SGD(model.parameters(), lr=0.05), rank=2,
        train_mb_size=16, train_epochs=2, eval_mb_size=32, min_selection_steps=2, evaluator=_evaluator())
    strategy.train(bench.train_stream[0])
    assert strategy.active_adapters == ["adapter_0"] and strategy.pruned_adapters == []
    results = strategy.eval(bench.test_stream[:1])
    assert any(k.startswith("Top1_Acc_Exp") for k in results)


def test_per_task_lora_trains_the_class_form(root):
    torch.manual_seed(0)
    bench = known_redundancy_stream(form="class", schedule="N R0", dataset_root=root,
                                    train_per_experience=32, test_per_experience=16)
    model = create_backbone("vit_small28_fmnist")
    strategy = PerTaskLoRAStrategy(
        model=model, optimizer=torch.optim.SGD(model.parameters(), lr=0.05), rank=2,
        train_mb_size=16, train_epochs=1, eval_mb_size=32, evaluator=_evaluator())
    for exp in bench.train_stream:
        strategy.train(exp)
    assert strategy.active_adapters == ["adapter_0", "adapter_1"]


# ------------------------------------------------------------------ bad arguments


@pytest.mark.parametrize("argument, value", [
    ("form", "task"), ("dataset", "cifar"), ("seed", -1), ("seed", 1.5), ("seed", True),
    ("train_per_experience", 0), ("train_per_experience", None), ("test_per_experience", 1),
    ("near_repeat_degrees", 0), ("near_repeat_degrees", 90), ("near_repeat_degrees", float("nan")),
    ("schedule", "R0 N"),
])
def test_bad_arguments_name_themselves(tmp_path, argument, value):
    # checked before any data is read: the empty tmp root is never touched
    with pytest.raises(ValueError, match=argument):
        known_redundancy_stream(dataset_root=tmp_path, **{argument: value})
    assert list(tmp_path.iterdir()) == []


def test_too_many_samples_names_the_size(root):
    with pytest.raises(ValueError, match="train_per_experience=9 cannot hold one image of each of the 10"):
        known_redundancy_stream(dataset_root=root, train_per_experience=9)
    with pytest.raises(ValueError, match="train_per_experience"):
        known_redundancy_stream(schedule="long", dataset_root=root, train_per_experience=3000)
    with pytest.raises(ValueError, match="test_per_experience"):
        known_redundancy_stream(form="class", schedule="short", dataset_root=root, test_per_experience=1200)
