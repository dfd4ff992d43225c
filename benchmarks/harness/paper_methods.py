"""The ``--paper`` path's strategy builders: each method with its published settings
(``configs/paper.json``), for :func:`benchmarks.harness.runner.run_one`'s ``build``."""

from __future__ import annotations

import functools
import math
from pathlib import Path
from typing import Any, Dict, List, Optional

import torch
from avalanche.core import SupervisedPlugin
from avalanche.distributed import DistributedHelper
from avalanche.evaluation.metrics import accuracy_metrics, forgetting_metrics, loss_metrics
from avalanche.training.plugins import EvaluationPlugin

from avalanche_litelora.evaluation import litelora_evaluator, litelora_metrics
from avalanche_litelora.training.optimizer_groups import ROLE_KEY
from avalanche_litelora.training.plugins.autocast import AutocastPlugin
from avalanche_litelora.training.plugins.lr_milestones import EpochMilestonesLRPlugin
from benchmarks.harness.paper_config import STRATEGIES, strategy_fields

#: The key under which a parameter group keeps its rate before the cosine scales it.
COSINE_BASE_KEY = "coda_cosine_base_lr"


class CodaCosineLRPlugin(SupervisedPlugin, supports_distributed=True):
    """InfLoRA's per-task schedule (its ``utils/schedulers.py`` ``CosineSchedule``, CODA-Prompt's):
    epoch ``e`` of ``K`` trains at ``lr * cos(99 pi e / (200 (K - 1)))``, restarting every task.
    Computed from Avalanche's clock, so a resumed run gets the same rates (one epoch: ``lr``)."""

    @staticmethod
    def factor(epoch: int, epochs: int) -> float:
        return 1.0 if epochs < 2 else math.cos(99 * math.pi * epoch / (200 * (epochs - 1)))

    def _scale(self, strategy, factor: float) -> None:
        for group in strategy.optimizer.param_groups:
            group["lr"] = group.setdefault(COSINE_BASE_KEY, group["lr"]) * factor

    def before_training_epoch(self, strategy, **kwargs):
        self._scale(strategy, self.factor(strategy.clock.train_exp_epochs, strategy.train_epochs))

    def after_training_exp(self, strategy, **kwargs):
        self._scale(strategy, 1.0)


def evaluator(log_dir: Optional[Path]) -> EvaluationPlugin:
    """The package's evaluator on rank 0; the same metrics without loggers on the others
    (Avalanche refuses loggers there, and a checkpoint must name the same metrics)."""
    if DistributedHelper.is_main_process and log_dir is not None:
        return litelora_evaluator(log_dir, interactive=False)
    return EvaluationPlugin(accuracy_metrics(epoch=True, experience=True, stream=True),
                            loss_metrics(epoch=True, experience=True, stream=True),
                            forgetting_metrics(experience=True, stream=True), *litelora_metrics(), loggers=[])


def _litelora_family(name: str, backbone, cfg: Dict[str, Any], world: int) -> Dict[str, Any]:
    # the reference's groups: its magnitudes at their own rate with the weight decay, the
    # adapters and the head without (nothing trains a magnitude in the first task)
    optimizer = torch.optim.SGD(
        [{"params": backbone.parameters(), "weight_decay": 0.0},
         {"params": [], "lr": cfg["magnitude_lr"], "weight_decay": cfg["weight_decay"], ROLE_KEY: "magnitudes"}],
        lr=cfg["lr"], momentum=cfg["momentum"])
    kwargs = dict(optimizer=optimizer, rank=cfg["rank"], target_modules=cfg["target_modules"],
                  init_logit=cfg["init_logit"], tau=cfg["tau"], magnitude_scope=cfg["magnitude_scope"],
                  boundary=cfg["boundary"])
    if name == "litelora":
        kwargs.update(lambda_sparsity=cfg["lambda_sparsity"], selection_epochs=cfg["selection_epochs"],
                      selection_lr=cfg["selection_lr"], min_selection_steps=cfg["min_selection_steps"],
                      selection_mb_size=max(1, cfg["selection_mb_size"] // world),
                      gate_noise=cfg["gate_noise"], refit_steps=cfg["refit_steps"],
                      gate_sampling=cfg["gate_sampling"], lambda_rule=cfg["lambda_rule"])
    return kwargs


def _published_method(name: str, backbone, settings: Dict[str, Any], n_tasks: int) -> Dict[str, Any]:
    optimizer = torch.optim.Adam(backbone.parameters(), lr=settings["lr"], betas=tuple(settings["betas"]),
                                 weight_decay=settings["weight_decay"])
    kwargs = dict(strategy_fields(name, settings), optimizer=optimizer)
    if name == "inflora":  # the threshold schedule runs over the benchmark's full length
        kwargs["total_tasks"] = n_tasks
    return kwargs


def training_plugins(name: str, cfg: Dict[str, Any], amp_device: Optional[str]) -> List[Any]:
    """The method's learning-rate schedule, and bf16 autocast when asked."""
    if name in cfg["methods"]:
        plugins = [CodaCosineLRPlugin()]
    else:
        plugins = [EpochMilestonesLRPlugin(cfg["lr"], cfg["lr_milestones"], cfg["lr_gamma"], from_experience=1)]
    if amp_device is not None:
        plugins.append(AutocastPlugin(torch.bfloat16, device_types=(amp_device,)))
    return plugins


def build_paper_strategy(name: str, backbone, cfg: Dict[str, Any], *, device, world: int, workers: int,
                         amp_device: Optional[str], plugins: List[Any], log_dir: Optional[Path]):
    """``name`` around ``backbone`` with its settings in ``cfg`` (see :func:`paper_config.load_config`),
    the runner's measuring ``plugins`` first; ``world`` processes share the global batch."""
    budget = cfg["methods"].get(name, cfg)
    if budget["train_mb_size"] % world:
        raise SystemExit(f"the batch {budget['train_mb_size']} does not split over {world} processes")
    if name in cfg["methods"]:
        kwargs = _published_method(name, backbone, budget, cfg["n_experiences"])
    else:
        kwargs = _litelora_family(name, backbone, cfg, world)
    strategy = STRATEGIES[name](
        model=backbone, **kwargs, train_mb_size=budget["train_mb_size"] // world,
        train_epochs=budget["train_epochs"], eval_mb_size=budget["eval_mb_size"], device=device,
        evaluator=evaluator(log_dir), plugins=list(plugins) + training_plugins(name, cfg, amp_device))
    if workers:  # Avalanche takes loader settings as train()/eval() keywords
        strategy.train = functools.partial(strategy.train, num_workers=workers)
        strategy.eval = functools.partial(strategy.eval, num_workers=workers)
    return strategy
