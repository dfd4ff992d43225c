"""Adapters and head rows drawn from the model's own seed: when they are built, and what else
drew random numbers meanwhile, changes nothing."""

import torch
from avalanche.models.utils import avalanche_model_adaptation

from avalanche_litelora import LoRAClassifier
from builders import MLP_TARGETS, digits_benchmark, tiny_mlp


def _adapter(model, name):
    return {n: v.clone() for n, v in model.state_dict().items() if f".adapters.{name}." in n}


def test_an_adapter_does_not_depend_on_the_global_generator_and_leaves_it_alone():
    first = LoRAClassifier(tiny_mlp(), rank=2, target_modules=MLP_TARGETS, seed=7)
    second = LoRAClassifier(tiny_mlp(), rank=2, target_modules=MLP_TARGETS, seed=7)
    torch.rand(1000)  # evaluation, a data loader... drew from the global generator
    state = torch.get_rng_state()
    first.open_candidate()
    assert torch.equal(torch.get_rng_state(), state)
    torch.rand(10)
    second.open_candidate()
    a, b = _adapter(first, "adapter_0"), _adapter(second, "adapter_0")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    other = LoRAClassifier(tiny_mlp(), rank=2, target_modules=MLP_TARGETS, seed=8)
    other.open_candidate()
    key = next(k for k in a if ".A." in k)
    assert not torch.equal(_adapter(other, "adapter_0")[key], a[key])


def test_the_default_seed_is_the_global_generators_seed_at_construction():
    backbone = tiny_mlp()  # seeds the global generator with 0
    torch.manual_seed(1993)
    model = LoRAClassifier(backbone, rank=2, target_modules=MLP_TARGETS)
    assert model.seed == 1993 and model.get_extra_state()["seed"] == 1993


def test_a_head_row_is_the_same_whenever_the_head_grows_to_hold_it():
    bm = digits_benchmark(5)
    early = LoRAClassifier(tiny_mlp(), rank=2, target_modules=MLP_TARGETS, seed=3)
    late = LoRAClassifier(tiny_mlp(), rank=2, target_modules=MLP_TARGETS, seed=3)
    early.eval()
    for exp in bm.test_stream:  # evaluation on the whole stream grows the head at once
        avalanche_model_adaptation(early, exp)
    late.train()
    state = torch.get_rng_state()
    for exp in bm.train_stream:  # training grows it experience by experience
        avalanche_model_adaptation(late, exp)
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(early.head.classifier.weight, late.head.classifier.weight)
    assert torch.equal(early.head.classifier.bias, late.head.classifier.bias)


def test_task_heads_built_by_evaluation_equal_those_built_by_training():
    bm = digits_benchmark(5, task_labels=True)
    early = LoRAClassifier(tiny_mlp(), rank=2, target_modules=MLP_TARGETS, task_incremental=True, seed=3)
    late = LoRAClassifier(tiny_mlp(), rank=2, target_modules=MLP_TARGETS, task_incremental=True, seed=3)
    early.eval()
    for exp in bm.test_stream:
        avalanche_model_adaptation(early, exp)
    late.train()
    for exp in bm.train_stream:
        avalanche_model_adaptation(late, exp)
    for task in late.head.classifiers:
        assert torch.equal(early.head.classifiers[task].classifier.weight, late.head.classifiers[task].classifier.weight)
