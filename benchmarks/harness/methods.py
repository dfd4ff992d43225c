"""Strategy builders by name: the package's LoRA strategies and Avalanche's baselines.

Settings come from ``configs/methods.json``; the runner adds the stream's scenario, the
training budget, the evaluator and its measuring plugins.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List

import torch
from avalanche.training import EWC, JointTraining, LwF, Naive, Replay
from torch.nn import CrossEntropyLoss

from avalanche_litelora import (
    HeadOnlyStrategy,
    InfLoRAStrategy,
    LiteLoRAStrategy,
    OLoRAStrategy,
    PerTaskLoRAStrategy,
    SequentialLoRAStrategy,
    ShareStrategy,
    TaskRoutedLoRAStrategy,
)
from avalanche.training.plugins import ReplayPlugin
from benchmarks.harness.baseline_model import FineTunedClassifier

METHODS_FILE = Path(__file__).parents[1] / "configs" / "methods.json"

#: The package's strategies by method name; every other key of such a method in
#: methods.json is a field of the strategy's config (``config_class``).
LORA_STRATEGIES = {
    "litelora": LiteLoRAStrategy,
    "litelora_replay": LiteLoRAStrategy,
    "per_task_lora": PerTaskLoRAStrategy,
    "head_only": HeadOnlyStrategy,
    "task_routed_lora": TaskRoutedLoRAStrategy,
    "sequential_lora": SequentialLoRAStrategy,
    "share": ShareStrategy,
    "inflora": InfLoRAStrategy,
    "olora": OLoRAStrategy,
}
#: Keys of methods.json that the harness itself reads (not strategy settings).
HARNESS_KEYS = ("family", "lr", "mem_size")


def load_method_configs() -> Dict[str, Dict[str, Any]]:
    with open(METHODS_FILE) as f:
        return {k: v for k, v in json.load(f).items() if not k.startswith("_")}


@dataclass
class Budget:
    """What every strategy of one run shares."""

    epochs: int
    train_mb_size: int = 64
    eval_mb_size: int = 256
    device: str = "cpu"
    task_incremental: bool = False
    plugins: List[Any] = field(default_factory=list)


def _sgd(model, lr: float):
    return torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)


def _common(budget: Budget, evaluator, epochs: int) -> Dict[str, Any]:
    return dict(
        train_mb_size=budget.train_mb_size, train_epochs=epochs, eval_mb_size=budget.eval_mb_size,
        device=budget.device, evaluator=evaluator, plugins=list(budget.plugins),
    )


def build_strategy(name: str, backbone, budget: Budget, evaluator, overrides: Dict[str, Any] = None):
    """A ready Avalanche strategy for ``name`` around ``backbone`` (which it adapts or fine-tunes)."""
    configs = load_method_configs()
    if name not in configs:
        raise ValueError(f"unknown strategy {name!r}; choose from {sorted(configs)}")
    cfg = {**configs[name], **(overrides or {})}
    family, lr = cfg.pop("family"), cfg.pop("lr")
    if family in ("lora", "share"):
        cls = LORA_STRATEGIES[name]
        common = _common(budget, evaluator, budget.epochs)  # LiteLoRA's selection is extra
        if "mem_size" in cfg:  # Avalanche's own rehearsal plugin, composed with the bank
            common["plugins"].append(ReplayPlugin(mem_size=cfg.pop("mem_size")))
        if family == "lora":  # Share is task-incremental by construction
            cfg["task_incremental"] = budget.task_incremental
        return cls(model=backbone, optimizer=_sgd(backbone, lr), **cfg, **common)

    model = FineTunedClassifier(backbone, budget.task_incremental)
    kwargs = dict(model=model, optimizer=_sgd(model, lr), criterion=CrossEntropyLoss(),
                  **_common(budget, evaluator, budget.epochs))
    if name == "naive":
        return Naive(**kwargs)
    if name == "ewc":
        return EWC(ewc_lambda=cfg["ewc_lambda"], **kwargs)
    if name == "lwf":
        return LwF(alpha=cfg["alpha"], temperature=cfg["temperature"], **kwargs)
    if name == "replay":
        return Replay(mem_size=cfg["mem_size"], **kwargs)
    if name == "joint":
        return JointTraining(**kwargs)
    raise ValueError(f"no builder for strategy {name!r}")


def is_lora_family(name: str) -> bool:
    """One of the package's strategies (a frozen backbone under adapters), not a baseline."""
    return name in LORA_STRATEGIES


def has_candidates(name: str) -> bool:
    """A method whose candidates are judged and may be pruned (its strategy class says so)."""
    return name in LORA_STRATEGIES and LORA_STRATEGIES[name].has_candidates


def runs_on(name: str, task_incremental: bool) -> bool:
    """A method runs where its strategy's ``scenarios`` say (Share and task routing need task
    identity at inference); Avalanche's baselines run everywhere."""
    cls = LORA_STRATEGIES.get(name)
    return task_incremental or cls is None or "class_incremental" in cls.scenarios
