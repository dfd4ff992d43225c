"""Hostile streams and models: each case has a defined outcome, and none corrupts the bank.

(Bad strategy arguments, a NaN loss injected by a plugin and a fixed head too small for the
first experience are covered in tests/training/test_bad_input.py.)
"""

from __future__ import annotations

import math
import warnings

import pytest
import torch
from avalanche.benchmarks.scenarios.deprecated.generators import nc_benchmark
from torch import nn
from torch.utils.data import TensorDataset

from avalanche_litelora import LiteLoRAStrategy, LoRAClassifier, LoRALinear
from avalanche_litelora.training.plugins.current_classes import SingleClassExperienceWarning
from builders import MLP_TARGETS, _digits_split, lite_kwargs, sgd, tiny_mlp


def _stream(per_exp_classes=None, n_experiences=5, poison=None):
    """Split digits in class order 0..9; ``poison=(value, cls)`` writes ``value`` into the
    first training image of class ``cls``."""
    train, test = _digits_split()
    if poison is not None:
        value, cls = poison
        x, y = (t.clone() for t in train.tensors)
        x[int((y == cls).nonzero()[0])] = value
        train = TensorDataset(x, y)
        train.targets = y.tolist()
    return nc_benchmark(
        train, test, n_experiences=n_experiences, task_labels=False,
        fixed_class_order=list(range(10)), per_exp_classes=per_exp_classes,
        class_ids_from_zero_in_each_exp=False,
    )


def _strategy(**overrides):
    mlp = tiny_mlp()
    fast = dict(train_epochs=2, selection_mb_size=32, refit_steps=5)
    return LiteLoRAStrategy(model=mlp, optimizer=sgd(mlp), **lite_kwargs(**{**fast, **overrides}))


def _state(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items() if torch.is_tensor(v)}


def _assert_same(before, after, skip=()):
    assert before.keys() == after.keys()
    for key in before:
        if not key.startswith(skip):
            assert torch.equal(before[key], after[key]), key


@pytest.mark.parametrize("value", [math.nan, math.inf])
def test_non_finite_pixels_stop_training_and_restore_the_bank(value):
    benchmark = _stream(poison=(value, 3))  # class 3 is in experience 1
    strategy = _strategy()
    strategy.train(benchmark.train_stream[0])
    bank = _state(strategy.model)
    with pytest.raises(FloatingPointError, match="experience 1"):
        strategy.train(benchmark.train_stream[1])
    model = strategy.model
    assert model.adapter_names == ["adapter_0"] and model.candidate is None
    _assert_same(bank, _state(model), skip=("head.",))  # the head grew for experience 1
    assert all(torch.isfinite(v).all() for v in _state(model).values() if v.is_floating_point())


def test_non_finite_pixels_in_evaluation_leave_the_model_unchanged():
    train, test = _digits_split()
    x, y = (t.clone() for t in test.tensors)
    x[:5] = math.nan
    poisoned = TensorDataset(x, y)
    poisoned.targets = y.tolist()
    benchmark = nc_benchmark(train, poisoned, n_experiences=5, task_labels=False,
                             fixed_class_order=list(range(10)),
                             class_ids_from_zero_in_each_exp=False)
    strategy = _strategy()
    strategy.train(benchmark.train_stream[0])
    bank = _state(strategy.model)
    metrics = strategy.eval(benchmark.test_stream)  # runs; a NaN row is simply not a hit
    assert 0.0 <= metrics["Top1_Acc_Stream/eval_phase/test_stream/Task000"] <= 1.0
    assert not strategy.model.merged
    # Avalanche's evaluation grows the head's class mask for unseen classes; the rest is intact
    _assert_same(bank, _state(strategy.model), skip=("head.",))


def test_empty_experience_is_refused_before_the_bank_changes():
    benchmark = _stream()
    strategy = _strategy()
    strategy.train(benchmark.train_stream[0])
    bank = _state(strategy.model)
    empty = benchmark.train_stream[1]
    empty.dataset = empty.dataset.subset([])
    with pytest.raises(ValueError, match="experience 1 has no training samples"):
        strategy.train(empty)
    assert strategy.model.adapter_names == ["adapter_0"]
    _assert_same(bank, _state(strategy.model))
    strategy.train(benchmark.train_stream[2])  # the stream goes on
    assert strategy.model.candidate is None


def test_empty_evaluation_experience_runs_and_changes_nothing():
    benchmark = _stream()
    strategy = _strategy()
    strategy.train(benchmark.train_stream[0])
    bank = _state(strategy.model)
    empty = benchmark.test_stream[1]
    empty.dataset = empty.dataset.subset([])
    strategy.eval([empty])
    assert not strategy.model.merged
    _assert_same(bank, _state(strategy.model), skip=("head.",))  # see above: class mask


def test_single_class_experience_warns_and_its_adapter_learns_nothing():
    benchmark = _stream(per_exp_classes={0: 2, 1: 1}, n_experiences=3)
    assert benchmark.train_stream[1].classes_in_this_experience == [2]
    # boundary="preserve": the reference's rescale would change adapter_0 when adapter_1 opens
    strategy = _strategy(train_past_magnitudes=False, selection_mb_size=8, boundary="preserve")
    strategy.train(benchmark.train_stream[0])
    bank = _state(strategy.model)
    with pytest.warns(SingleClassExperienceWarning, match="single class 2"):
        strategy.train(benchmark.train_stream[1])
    model = strategy.model
    # cross-entropy over one class is exactly zero: no gradient, the gate's L1 closes it
    assert model.pruned_adapters == ["adapter_1"] and model.adapter_names == ["adapter_0"]
    _assert_same(bank, _state(model), skip=("head.", "_extra_state"))


def test_two_class_experiences_do_not_warn():
    benchmark = _stream(per_exp_classes={0: 2}, n_experiences=5)
    strategy = _strategy()
    with warnings.catch_warnings():
        warnings.simplefilter("error", SingleClassExperienceWarning)
        strategy.train(benchmark.train_stream[0])


def test_a_meta_device_model_is_refused_before_wiring():
    mlp = tiny_mlp().to("meta")
    with pytest.raises(ValueError, match="meta device"):
        LiteLoRAStrategy(model=mlp, optimizer=sgd(mlp), **lite_kwargs())
    assert isinstance(mlp.classifier, nn.Linear)
    assert not any(isinstance(m, LoRALinear) for m in mlp.modules())


def test_new_gate_logits_follow_the_adapters_device():
    """A bank moved to another device before its first adapter opens keeps one device."""
    model = LoRAClassifier(tiny_mlp(), rank=2, target_modules=MLP_TARGETS).to("meta")
    model.open_candidate()
    assert model.gate.logits["adapter_0"].device.type == "meta"
    for layer in model.lora_layers().values():
        assert all(p.device.type == "meta" for p in layer.adapters["adapter_0"].parameters())


def test_duplicate_target_names_are_refused_before_wiring():
    mlp = tiny_mlp()
    with pytest.raises(ValueError, match="duplicate"):
        LiteLoRAStrategy(model=mlp, optimizer=sgd(mlp),
                         **lite_kwargs(target_modules=["features.0", "features.0"]))
    assert not any(isinstance(m, LoRALinear) for m in mlp.modules())


def test_patterns_reaching_the_same_layer_wrap_it_once():
    strategy = _strategy(target_modules=["features.3.0", "features.*.0", "features.0"])
    model = strategy.model
    assert sorted(model.lora_layer_names) == sorted(MLP_TARGETS)
    model.open_candidate()
    for layer in model.lora_layers().values():
        assert isinstance(layer.base, nn.Linear) and list(layer.adapters) == ["adapter_0"]


def test_classes_beyond_a_fixed_head_mid_stream_leave_the_trained_bank_alone():
    benchmark = _stream()  # experiences {0,1}, {2,3}, {4,5}, ...
    model = LoRAClassifier(tiny_mlp(), rank=4, target_modules=MLP_TARGETS, head=nn.Linear(64, 4))
    strategy = LiteLoRAStrategy(
        model=model, optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
        **{k: v for k, v in lite_kwargs().items() if k not in ("rank", "target_modules")},
    )
    strategy.train(benchmark.train_stream[0])
    strategy.train(benchmark.train_stream[1])
    bank = _state(model)
    with pytest.raises(ValueError, match="class 5 but the head holds only 4 classes"):
        strategy.train(benchmark.train_stream[2])
    assert model.candidate is None and len(model.adapter_names) + len(model.pruned_adapters) == 2
    _assert_same(bank, _state(model))
