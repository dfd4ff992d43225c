"""Every strategy runs with only ``model`` and ``optimizer``, on a headless backbone too."""

import pytest
import torch
from avalanche.benchmarks import nc_benchmark
from avalanche.benchmarks.utils import as_classification_dataset
from avalanche.core import SupervisedPlugin
from avalanche.models import MultiTaskModule
from torch import nn
from torch.utils.data import TensorDataset

from avalanche_litelora import LiteLoRAStrategy, PerTaskLoRAStrategy
from avalanche_litelora.lora.model import LoRAClassifier
from avalanche_litelora.adapters.pending_head import PendingHead
from builders import all_strategies

STRATEGIES = all_strategies()


def _blobs(n, seed):
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 4
    data = TensorDataset(torch.randn(n, 12, generator=g) + 2 * y[:, None].float(), y)
    data.targets = y.tolist()
    return as_classification_dataset(data)


def _stream(task_labels):
    return nc_benchmark(_blobs(64, 1), _blobs(32, 2), n_experiences=2, task_labels=task_labels, seed=0)


def _headless(width=24):
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(12, 32), nn.ReLU(), nn.Linear(32, width))


class HeadAtStart(SupervisedPlugin):
    """Records the head's input width when train() starts, where SI and RWalk record parameters."""

    def before_training(self, strategy, **kwargs):
        self.width = strategy.model.head.classifier.in_features


@pytest.mark.parametrize("task_labels", [False, True])
@pytest.mark.parametrize("strategy_class", STRATEGIES)
def test_every_strategy_trains_with_only_model_and_optimizer(strategy_class, task_labels):
    backbone = _headless()
    strategy = strategy_class(model=backbone, optimizer=torch.optim.SGD(backbone.parameters(), lr=0.01))
    if task_labels and not isinstance(strategy.model, MultiTaskModule):  # class-incremental by default
        with pytest.raises(ValueError, match="task_incremental=True"):  # refuses task label 1
            strategy.train(_stream(task_labels).train_stream)
        return
    for experience in _stream(task_labels).train_stream:
        strategy.train(experience)
    assert not isinstance(strategy.model.head, PendingHead)


def test_the_head_is_measured_before_train_starts_and_joins_the_optimizer():
    backbone = _headless(width=24)
    probe = HeadAtStart()
    strategy = LiteLoRAStrategy(
        model=backbone, optimizer=torch.optim.SGD(backbone.parameters(), lr=0.01),
        plugins=[probe], train_mb_size=16, min_selection_steps=5,
    )
    strategy.train(_stream(False).train_stream[0])
    assert probe.width == 24
    optimised = {id(p) for group in strategy.optimizer.param_groups for p in group["params"]}
    assert all(id(p) in optimised for p in strategy.model.head.parameters())


def test_default_targets_fall_back_to_every_linear_of_an_mlp_but_an_explicit_list_does_not():
    model = LoRAClassifier(_headless())
    assert model.lora_layer_names == ["0", "2"]
    with pytest.raises(ValueError, match="no nn.Linear"):
        LoRAClassifier(_headless(), target_modules=("qkv",))


def test_a_list_of_experiences_still_trains_every_one_after_the_head_is_measured():
    backbone = _headless()
    strategy = PerTaskLoRAStrategy(model=backbone, optimizer=torch.optim.SGD(backbone.parameters(), lr=0.01))
    strategy.train(list(_stream(False).train_stream))
    assert strategy.model.adapter_names == ["adapter_0", "adapter_1"]


def test_eval_first_builds_the_head_too():
    backbone = _headless(width=20)
    strategy = PerTaskLoRAStrategy(model=backbone, optimizer=torch.optim.SGD(backbone.parameters(), lr=0.01))
    strategy.eval(_stream(False).test_stream)
    assert strategy.model.head.classifier.in_features == 20


def test_a_backbone_whose_output_is_not_batch_by_features_is_refused_before_anything_changes():
    backbone = nn.Sequential(nn.Linear(12, 16), nn.Unflatten(1, (4, 4)))
    strategy = PerTaskLoRAStrategy(model=backbone, optimizer=torch.optim.SGD(backbone.parameters(), lr=0.01))
    before = {k: v.clone() for k, v in strategy.model.state_dict().items() if torch.is_tensor(v)}
    with pytest.raises(ValueError, match=r"\(1, 4, 4\), not \(batch, features\)"):
        strategy.train(_stream(False).train_stream[0])
    assert strategy.model.adapter_names == [] and isinstance(strategy.model.head, PendingHead)
    after = {k: v for k, v in strategy.model.state_dict().items() if torch.is_tensor(v)}
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)


def test_a_pending_head_says_how_to_build_it():
    with pytest.raises(RuntimeError, match="feature_dim="):
        LoRAClassifier(_headless())(torch.randn(2, 12))


def test_a_trained_headless_model_loads_into_a_fresh_one():
    backbone = _headless()
    strategy = PerTaskLoRAStrategy(model=backbone, optimizer=torch.optim.SGD(backbone.parameters(), lr=0.01))
    for experience in _stream(False).train_stream:
        strategy.train(experience)
    fresh = LoRAClassifier(_headless())
    fresh.load_state_dict(strategy.model.state_dict())
    x = torch.randn(5, 12)
    strategy.model.eval(), fresh.eval()
    assert torch.allclose(strategy.model(x), fresh(x), atol=1e-6)
