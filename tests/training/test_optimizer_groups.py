"""New tensors join the user's optimizer group of what they replace or adapt."""

import pytest
import torch
from torch import nn

from avalanche_litelora import LoRAClassifier
from avalanche_litelora.training.optimizer_groups import place_new_parameters
from builders import MLP_TARGETS, tiny_mlp


def _split(backbone):
    return torch.optim.SGD(
        [
            {"params": [p for n, p in backbone.named_parameters() if n.endswith("weight") and "classifier" not in n]},
            {"params": [p for n, p in backbone.named_parameters() if n.endswith("bias") and "classifier" not in n],
             "weight_decay": 0.0},
            {"params": list(backbone.classifier.parameters()), "lr": 1.0},
        ],
        lr=0.1,
    )


def test_head_adapters_and_logits_find_their_groups():
    backbone = tiny_mlp()
    optimizer = _split(backbone)
    model = LoRAClassifier(backbone, rank=2, target_modules=MLP_TARGETS)
    model.open_candidate()
    added = place_new_parameters(optimizer, model)
    group = {id(p): g for g, grp in enumerate(optimizer.param_groups) for p in grp["params"]}
    assert all(id(p) in group for p in model.parameters())  # nothing left for Avalanche to guess
    assert {id(p) for p in added} == {id(p) for n, p in model.named_parameters() if ".base." not in n}
    for name, param in model.named_parameters():
        if name.startswith("head."):
            assert group[id(param)] == 2, name
        elif ".adapters." in name or name.startswith("gate."):
            assert group[id(param)] == 0, name
    assert place_new_parameters(optimizer, model) == []  # nothing new the second time


def test_one_group_is_left_to_avalanche():
    backbone = tiny_mlp()
    optimizer = torch.optim.SGD(backbone.parameters(), lr=0.1)
    model = LoRAClassifier(backbone, rank=2, target_modules=MLP_TARGETS)
    assert place_new_parameters(optimizer, model) == []


def test_a_group_nothing_decides_is_an_error_naming_the_parameter():
    model = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2))
    optimizer = torch.optim.SGD([{"params": [model[0].weight]}, {"params": [model[1].weight]}], lr=0.1)
    model.add_module("extra", nn.Linear(2, 2))
    with pytest.raises(ValueError, match="'extra.weight'"):  # 0.bias goes beside 0.weight
        place_new_parameters(optimizer, model)


def test_a_group_that_claims_the_magnitudes_gets_every_magnitude_and_keeps_its_ratio_under_milestones(ci_benchmark):
    """The reference's optimizer: magnitudes at their own rate and weight decay, the rest without."""
    from avalanche_litelora import PerTaskLoRAStrategy
    from avalanche_litelora.training.optimizer_groups import ROLE_KEY
    from avalanche_litelora.training.plugins.lr_milestones import EpochMilestonesLRPlugin
    from builders import MLP_TARGETS, quiet_evaluator, tiny_mlp

    mlp = tiny_mlp()
    optimizer = torch.optim.SGD(
        [{"params": mlp.parameters(), "weight_decay": 0.0},
         {"params": [], "lr": 0.008, "weight_decay": 2e-4, ROLE_KEY: "magnitudes"}], lr=0.01, momentum=0.9)
    seen = []

    class Rates(EpochMilestonesLRPlugin):
        def before_training_epoch(self, strategy, **kwargs):
            super().before_training_epoch(strategy, **kwargs)
            seen.append([g["lr"] for g in strategy.optimizer.param_groups])

    strategy = PerTaskLoRAStrategy(
        model=mlp, optimizer=optimizer, rank=4, target_modules=MLP_TARGETS, train_mb_size=32,
        train_epochs=5, eval_mb_size=512, evaluator=quiet_evaluator(),
        plugins=[Rates(0.01, milestones=(0.6,), gamma=0.5, from_experience=1)],
    )
    for exp in list(ci_benchmark.train_stream)[:2]:
        strategy.train(exp)
    model = strategy.adapter_model
    magnitudes = {id(p) for n, p in model.named_parameters() if model.optimizer_group_role(n) == "magnitudes"}
    groups = strategy.optimizer.param_groups
    assert strategy.optimizer is optimizer and len(groups) == 2
    assert magnitudes and magnitudes == {id(p) for p in groups[1]["params"]}
    assert not magnitudes & {id(p) for p in groups[0]["params"]}
    assert {id(p) for p in model.head.parameters()} <= {id(p) for p in groups[0]["params"]}
    assert seen[5] == [0.01, 0.008] and seen[-1] == pytest.approx([0.005, 0.004])  # one factor for both
