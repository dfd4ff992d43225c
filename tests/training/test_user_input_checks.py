"""Input an Avalanche user may give by mistake: refused before anything changes, naming the fix.

And an optimizer with several groups over a headless backbone, which ``Naive`` accepts:
the head the strategy builds joins the group of the layer that feeds it.
"""

from __future__ import annotations

import logging

import pytest
import torch
from torch import nn

from avalanche_litelora import LiteLoRAStrategy, PerTaskLoRAStrategy, ShareStrategy
from builders import MLP_TARGETS, digits_benchmark, quiet_evaluator, sgd, tiny_mlp


def _snapshot(module):
    return {k: v.clone() for k, v in module.state_dict().items() if torch.is_tensor(v)}


def _same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _untouched(mlp):
    return isinstance(mlp.classifier, nn.Linear) and all(p.requires_grad for p in mlp.parameters())


def _per_task(mlp, optimizer=None):
    return PerTaskLoRAStrategy(
        model=mlp, optimizer=optimizer or sgd(mlp), rank=2, target_modules=MLP_TARGETS, train_mb_size=64,
        eval_mb_size=512, evaluator=quiet_evaluator(),
    )


# ----------------------------------------------------------- task labels
@pytest.fixture(scope="module")
def task_labelled():
    return digits_benchmark(5, task_labels=True)


def test_a_task_labelled_experience_is_refused_by_a_class_incremental_strategy_before_it_trains(task_labelled):
    strategy = _per_task(tiny_mlp())
    strategy.train(task_labelled.train_stream[0])  # task 0: nothing to object to
    before = _snapshot(strategy.model)
    with pytest.raises(ValueError, match=r"experience 1 has task label\(s\) \[1\].*task_incremental=True"):
        strategy.train(task_labelled.train_stream[1])
    assert _same(before, _snapshot(strategy.model)) and strategy.model.adapter_names == ["adapter_0"]


def test_a_task_labelled_test_stream_is_refused_before_any_evaluation(task_labelled):
    strategy = _per_task(tiny_mlp())
    with pytest.raises(ValueError, match=r"PerTaskLoRAStrategy is class-incremental.*return_task_id=False"):
        strategy.eval(task_labelled.test_stream)
    assert strategy.evaluator.get_all_metrics() == {}


def test_a_list_is_refused_before_its_first_experience_trains(task_labelled):
    strategy = _per_task(tiny_mlp())
    with pytest.raises(ValueError, match="task label"):
        strategy.train(list(task_labelled.train_stream)[:2])
    assert strategy.model.adapter_names == []


def test_a_one_shot_iterator_is_checked_as_each_experience_comes(task_labelled):
    strategy = _per_task(tiny_mlp())
    with pytest.raises(ValueError, match=r"experience 1 has task label"):
        strategy.train(iter(list(task_labelled.train_stream)[:2]), eval_streams=[])
    assert strategy.model.adapter_names == ["adapter_0"]  # experience 0 trained, 1 never opened


@pytest.mark.parametrize("strategy_class", [PerTaskLoRAStrategy, ShareStrategy])
def test_task_incremental_strategies_take_the_task_labelled_stream(task_labelled, strategy_class):
    mlp = tiny_mlp()
    kwargs = dict(rank=2, target_modules=MLP_TARGETS, train_mb_size=64, evaluator=quiet_evaluator())
    if strategy_class is PerTaskLoRAStrategy:
        kwargs["task_incremental"] = True
    strategy = strategy_class(model=mlp, optimizer=sgd(mlp), **kwargs)
    strategy.train(task_labelled.train_stream[1])
    strategy.eval(task_labelled.test_stream[:2])


# ----------------------------------------------------------- construction
def test_an_optimizer_over_another_models_parameters_is_refused():
    mlp = tiny_mlp()
    before = _snapshot(mlp)
    with pytest.raises(ValueError, match=r"optimizer holds none of the model's parameters.*model.parameters\(\)"):
        LiteLoRAStrategy(model=mlp, optimizer=sgd(tiny_mlp()), target_modules=MLP_TARGETS)
    assert _same(before, _snapshot(mlp)) and _untouched(mlp)


def test_an_optimizer_over_part_of_the_model_is_fine():
    mlp = tiny_mlp()
    strategy = _per_task(mlp, optimizer=torch.optim.SGD(mlp.features.parameters(), lr=0.1))
    assert strategy.model.backbone is mlp


@pytest.mark.parametrize("device", ["cuda", "cuda:0", torch.device("cuda", 1)])
def test_cuda_on_a_machine_without_it_is_refused(monkeypatch, device):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    mlp = tiny_mlp()
    with pytest.raises(ValueError, match=r"CUDA is not available on this machine.*device='cpu'"):
        LiteLoRAStrategy(model=mlp, optimizer=sgd(mlp), target_modules=MLP_TARGETS, device=device)
    assert _untouched(mlp)


def test_a_cuda_index_the_machine_lacks_is_refused(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    mlp = tiny_mlp()
    with pytest.raises(ValueError, match=r"has 2 CUDA device\(s\): cuda:0 to cuda:1"):
        LiteLoRAStrategy(model=mlp, optimizer=sgd(mlp), target_modules=MLP_TARGETS, device="cuda:2")
    assert _untouched(mlp)


def test_a_device_string_torch_cannot_read_is_refused():
    mlp = tiny_mlp()
    with pytest.raises(ValueError, match=r"device='gpu' is not a torch device"):
        LiteLoRAStrategy(model=mlp, optimizer=sgd(mlp), target_modules=MLP_TARGETS, device="gpu")


@pytest.mark.parametrize("dtype", [torch.float64, torch.float16])
def test_a_model_not_in_float32_is_refused_with_the_fix(dtype):
    mlp = tiny_mlp().to(dtype)
    before = _snapshot(mlp)
    with pytest.raises(TypeError, match=rf"'features.0.weight' is {dtype}.*model.float\(\)"):
        LiteLoRAStrategy(model=mlp, optimizer=sgd(mlp), target_modules=MLP_TARGETS)
    assert _same(before, _snapshot(mlp)) and _untouched(mlp)


# ----------------------------------------------------------- several groups, no classifier
def _headless():
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 16), nn.ReLU())


def _groups_of(optimizer):
    return {id(p): g for g, group in enumerate(optimizer.param_groups) for p in group["params"]}


def test_the_head_of_a_headless_backbone_joins_the_group_of_the_layer_that_feeds_it(caplog):
    backbone = _headless()
    optimizer = torch.optim.SGD(
        [{"params": backbone[1].parameters(), "lr": 0.01}, {"params": backbone[3].parameters(), "lr": 0.1}], lr=0.05
    )
    with caplog.at_level(logging.INFO, logger="avalanche_litelora"):
        strategy = LiteLoRAStrategy(model=backbone, optimizer=optimizer, train_mb_size=64, min_selection_steps=3,
                                    rank=2, evaluator=quiet_evaluator())
    assert "the layer that feeds it ('3')" in caplog.text and "group 1 (lr=0.1)" in caplog.text
    strategy.train(digits_benchmark(5).train_stream[0])
    groups = _groups_of(strategy.optimizer)
    assert {groups[id(p)] for p in strategy.model.head.parameters()} == {1}


def test_a_weight_and_bias_split_puts_each_head_tensor_beside_its_kind():
    backbone = _headless()
    weights = [p for n, p in backbone.named_parameters() if n.endswith("weight")]
    biases = [p for n, p in backbone.named_parameters() if n.endswith("bias")]
    optimizer = torch.optim.SGD([{"params": weights}, {"params": biases, "weight_decay": 0.0}], lr=0.05,
                                weight_decay=1e-4)
    strategy = PerTaskLoRAStrategy(model=backbone, optimizer=optimizer, train_mb_size=64, rank=2,
                                   evaluator=quiet_evaluator())
    strategy.train(digits_benchmark(5).train_stream[0])
    groups = _groups_of(strategy.optimizer)
    head = strategy.model.head.classifier
    assert (groups[id(head.weight)], groups[id(head.bias)]) == (0, 1)
