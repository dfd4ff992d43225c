"""Tiny real streams (scikit-learn's digits through Avalanche's generator) and backbones."""

from __future__ import annotations

import torch
from avalanche.benchmarks.scenarios.deprecated.generators import nc_benchmark
from avalanche.evaluation.metrics import accuracy_metrics
from avalanche.models import SimpleMLP
from avalanche.training.plugins import EvaluationPlugin
from sklearn.datasets import load_digits
from timm.models.vision_transformer import VisionTransformer
from torch.utils.data import TensorDataset


def _digits_split(seed: int = 0):
    x, y = load_digits(return_X_y=True)
    x = torch.tensor(x, dtype=torch.float32).view(-1, 1, 8, 8) / 16.0
    y = torch.tensor(y)
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    cut = int(0.8 * len(y))

    def subset(idx):
        ds = TensorDataset(x[idx], y[idx])
        ds.targets = y[idx].tolist()
        return ds

    return subset(perm[:cut]), subset(perm[cut:])


def digits_benchmark(n_experiences: int = 5, task_labels: bool = False, seed: int = 1993):
    """Split digits with Avalanche's own generator: 10 classes over ``n_experiences``."""
    train, test = _digits_split()
    return nc_benchmark(
        train,
        test,
        n_experiences=n_experiences,
        task_labels=task_labels,
        seed=seed,
        class_ids_from_zero_in_each_exp=False,
    )


def tiny_vit(seed: int = 0) -> VisionTransformer:
    """A timm ViT with a fused qkv, small enough for CPU tests on 8x8 digits."""
    torch.manual_seed(seed)
    return VisionTransformer(
        img_size=8, patch_size=2, in_chans=1, embed_dim=32, depth=2, num_heads=2,
        num_classes=10, global_pool="avg", class_token=False,
    )


def tiny_mlp(seed: int = 0) -> SimpleMLP:
    torch.manual_seed(seed)
    return SimpleMLP(num_classes=10, input_size=64, hidden_size=64, hidden_layers=2, drop_rate=0)


#: SimpleMLP's Linear layers (its classifier is replaced by the package's head).
MLP_TARGETS = ["features.0", "features.3.0"]


def random_bank(model, n_adapters: int):
    """Open and freeze ``n_adapters`` adapters with ``B`` drawn from N(0, 1): a bank whose
    updates are nonzero without training (the analysis and read-out tests' input)."""
    for _ in range(n_adapters):
        name = model.open_candidate()
        for layer in model.lora_layers().values():
            for b in layer.adapters[name].B.values():
                torch.nn.init.normal_(b)
        model.freeze(name)
    return model


def random_vit_bank(n_adapters: int, seed: int = 0):
    """:func:`random_bank` on a rank-2 :func:`tiny_vit` bank (fused ``qkv``: q and v slices)."""
    from avalanche_litelora.lora.model import LoRAClassifier

    torch.manual_seed(seed)
    return random_bank(LoRAClassifier(tiny_vit(), rank=2), n_adapters)


def quiet_evaluator() -> EvaluationPlugin:
    return EvaluationPlugin(accuracy_metrics(stream=True, experience=True), loggers=[])


def sgd(model, lr: float = 0.05):
    return torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)


def lite_kwargs(**overrides):
    """Small, fast LiteLoRA settings for the MLP on digits."""
    kwargs = dict(
        rank=4, target_modules=MLP_TARGETS, train_mb_size=32, train_epochs=3,
        eval_mb_size=512, selection_mb_size=8, evaluator=quiet_evaluator(),
    )
    kwargs.update(overrides)
    return kwargs


def single_thread():
    """Fixture body: tiny models and small SVDs gain nothing from threads, and two threads on
    a busy 2-core box run about 10x slower. Use as
    ``one_thread = pytest.fixture(scope="module", autouse=True)(single_thread)``."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def all_strategies():
    """Every strategy class the package exports (tests that must hold for each of them)."""
    from avalanche_litelora import (HeadOnlyStrategy, LiteLoRAStrategy, PerTaskLoRAStrategy,
                                    SequentialLoRAStrategy, ShareStrategy, TaskRoutedLoRAStrategy)
    return [LiteLoRAStrategy, PerTaskLoRAStrategy, SequentialLoRAStrategy, ShareStrategy,
            TaskRoutedLoRAStrategy, HeadOnlyStrategy]
