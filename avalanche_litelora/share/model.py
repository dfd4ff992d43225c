"""Share's model: a frozen backbone whose LoRA layers share one subspace, plus a multi-head.

Task-incremental only. Avalanche's :class:`MultiTaskModule` splits each minibatch by task
label and calls :meth:`ShareClassifier.forward_single_task`, which opens the gate of that
task's coefficients in every layer and uses that task's head, so a minibatch mixing
tasks routes every sample to its own task.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Dict, List, Optional, Sequence, Union

import torch
from avalanche.models import MultiHeadClassifier, MultiTaskModule
from torch import Tensor, nn

from avalanche_litelora.checks import check_choice, check_count
from avalanche_litelora.adapters.inject import AUTO_TARGETS
from avalanche_litelora.adapters.model import AdapterModel
from avalanche_litelora.adapters.heads import head_capacity
from avalanche_litelora.share.basis import validate_basis_choice
from avalanche_litelora.share.layer import SUBSPACE_TENSORS, ShareLinear
from avalanche_litelora.registry import register

#: What a sample whose task has no coefficients gets: the bare frozen backbone, or an error.
UNKNOWN_TASK_CHOICES = ("backbone", "error")


def task_key(task_label: int) -> str:
    """Name of a task's coefficients in every layer (ModuleDict keys must be strings)."""
    return f"task_{int(task_label)}"


@dataclass
class MergeReport:
    """What one merge did: basis sizes, and how far each task's adapter moved.

    ``absolute_errors[task]["<layer>.<slice>"]`` is ``||dW_before - dW_after||_F`` of that
    slice; ``relative_errors[task]`` is the same over the whole model divided by the
    norm of the task's update before the merge (0 for a zero update).
    """

    tasks: List[int]
    basis_sizes: Dict[str, int]
    relative_errors: Dict[int, float]
    absolute_errors: Dict[int, Dict[str, float]]
    parameters: int


@register
class ShareClassifier(AdapterModel, MultiTaskModule):
    """A backbone adapted by Share (one shared LoRA subspace per layer) and a multi-head.

    :param rank: rank of the first adapter, the one that seeds the basis.
    :param unknown_task: ``"backbone"`` runs a sample whose task has no coefficients yet
        through the frozen backbone without adapter (what Avalanche's evaluation of
        future experiences needs); ``"error"`` raises instead.
    Called without task labels it returns every trained task's output, as every
    ``MultiTaskModule`` does.
    """

    learned_state_name = "shared subspace"
    method_name = "Share"

    @staticmethod
    def is_learned_key(key: str) -> bool:
        return AdapterModel.is_learned_key(key) or ".basis_" in key or ".extra_" in key

    def __init__(
        self,
        backbone: nn.Module,
        *,
        rank: int = 10,
        target_modules: Union[str, Sequence[str]] = AUTO_TARGETS,
        head: Optional[nn.Module] = None,
        feature_dim: Optional[int] = None,
        initial_out_features: int = 2,
        unknown_task: str = "backbone",
    ):
        super().__init__()
        check_choice("unknown_task", unknown_task, UNKNOWN_TASK_CHOICES)
        layers = self._adapt_backbone(
            backbone, target_modules=target_modules, rank=rank, layer_type=ShareLinear,
            feature_dim=feature_dim, head=head, task_incremental=True,
            initial_out_features=initial_out_features, head_seed=None,
        )
        self.rank = rank
        self.unknown_task = unknown_task
        self.share_layer_names: List[str] = list(layers)
        self.merge_reports: List[MergeReport] = []
        self.register_load_state_dict_pre_hook(_regrow_for_loading)

    # ------------------------------------------------------------------ forward
    def share_layers(self) -> Dict[str, ShareLinear]:
        return {n: self.backbone.get_submodule(n) for n in self.share_layer_names}

    def forward(self, x: Tensor, task_labels: Optional[Tensor] = None):
        """Each sample through its task's coefficients; with ``task_labels=None``, as every
        ``MultiTaskModule``, a dict of every trained task's output (LwF distils them all)."""
        # Avalanche pads every task's logits to max_class_label columns: cover every head.
        if isinstance(self.head, MultiHeadClassifier):
            widths = [c.classifier.out_features for c in self.head.classifiers.values()]
        else:
            widths = [head_capacity(self.head) or 0]
        self.max_class_label = max([self.max_class_label] + widths)
        return super().forward(x, task_labels)

    def forward_single_task(self, x: Tensor, task_label: int) -> Tensor:
        name = task_key(task_label)
        if name in self.task_names:
            gates = {name: 1.0}
        elif self.unknown_task == "error":
            raise ValueError(
                f"task {task_label} has no Share coefficients (trained tasks: {self.tasks}); "
                "build the model with unknown_task='backbone' to run such samples through "
                "the frozen backbone without adapter"
            )
        else:
            gates = {}
        for layer in self.share_layers().values():
            layer.gate_values = gates
        features = self.backbone(x)
        if isinstance(self.head, MultiTaskModule):
            if isinstance(self.head, MultiHeadClassifier) and str(task_label) not in self.head.classifiers:
                raise ValueError(f"the multi-head has no classifier for task {task_label}")
            return self.head.forward_single_task(features, task_label)
        return self.head(features)

    # -------------------------------------------------------------- lifecycle
    @property
    def task_names(self) -> List[str]:
        """Tasks with coefficients, in the order they were first trained."""
        first = self.share_layers()[self.share_layer_names[0]]
        return list(first.adapters)

    @property
    def tasks(self) -> List[int]:
        return [int(n.split("_", 1)[1]) for n in self.task_names]

    def open_tasks(self, task_labels: Sequence[int], *, pseudo_rank: int, temporary_vectors: int) -> List[str]:
        """Coefficients (and ``phi`` temporary basis vectors) for the tasks about to train.

        Before any basis exists the first task trains a plain rank-``rank`` adapter: ``rank``
        temporary vectors and coefficients of width ``rank``. Later tasks get
        ``temporary_vectors`` vectors and width ``pseudo_rank``.
        """
        check_count("pseudo_rank", pseudo_rank)
        check_count("temporary_vectors", temporary_vectors)
        labels = sorted({int(t) for t in task_labels})
        if not labels:
            raise ValueError("open_tasks needs at least one task label")
        first = not self.task_names
        width = self.rank if first else pseudo_rank
        phi = self.rank if first else temporary_vectors
        names = [task_key(t) for t in labels]
        for layer in self.share_layers().values():
            layer.unmerge()
            if layer.temporary_vectors == 0:
                layer.add_temporary_vectors(phi)
            for name in names:
                layer.open_task(name, width)
        return names

    def set_trainable(self, task_names: Sequence[str]) -> None:
        """Only these tasks' coefficients, the temporary vectors and the head train."""
        for layer in self.share_layers().values():
            for name, coef in layer.adapters.items():
                coef.set_requires_grad(name in task_names)
            for attr in SUBSPACE_TENSORS:
                for p in getattr(layer, attr).values():
                    p.requires_grad_(attr.startswith("extra") and p.numel() > 0)
                    p.grad = None
        for p in self.head.parameters():
            p.requires_grad_(True)

    @torch.no_grad()
    def merge_subspace(
        self, *, explained_variance: Optional[float] = None, k: Optional[int] = None
    ) -> MergeReport:
        """Share's merge in every layer; all layers are computed before any changes."""
        validate_basis_choice(explained_variance, k)
        names, tasks = self.task_names, self.tasks
        if not names:
            raise RuntimeError("no task has been trained: nothing to merge")
        layers = self.share_layers()
        results = {
            n: l.compute_merge(explained_variance=explained_variance, k=k) for n, l in layers.items()
        }
        absolute: Dict[int, Dict[str, float]] = {t: {} for t in tasks}
        squared_err = {t: 0.0 for t in tasks}
        squared_norm = {t: 0.0 for t in tasks}
        sizes: Dict[str, int] = {}
        for layer_name, by_key in results.items():
            layers[layer_name].apply_merge(by_key)
            for key, result in by_key.items():
                sizes[f"{layer_name}.{key}"] = result.k
                for t, err, norm in zip(tasks, result.errors, result.norms):
                    absolute[t][f"{layer_name}.{key}"] = err
                    squared_err[t] += err**2
                    squared_norm[t] += norm**2
        relative = {
            t: math.sqrt(squared_err[t] / squared_norm[t]) if squared_norm[t] > 0 else 0.0
            for t in tasks
        }
        report = MergeReport(tasks, sizes, relative, absolute, self.adapter_parameter_count())
        self.merge_reports.append(report)
        return report

    # ---------------------------------------------------------------- read-outs
    def basis_sizes(self) -> Dict[str, int]:
        """k of every adapted layer slice, as ``{"<layer>.<slice>": k}``."""
        return {
            f"{n}.{key}": layer.basis_size(key)
            for n, layer in self.share_layers().items()
            for key in layer.out_slices
        }

    def adapter_parameter_count(self) -> int:
        """Numbers stored for adaptation: bases, temporary vectors and every task's coefficients."""
        count = 0
        for layer in self.share_layers().values():
            count += sum(p.numel() for p in layer.adapters.parameters())
            count += sum(p.numel() for a in SUBSPACE_TENSORS for p in getattr(layer, a).values())
        return count

    def per_task_lora_parameter_count(self, n_tasks: Optional[int] = None) -> int:
        """What per-task LoRA (``PerTaskLoRAStrategy``, same rank and targets) stores for
        ``n_tasks`` tasks (default: the tasks trained): A, B, magnitudes and a gate logit each."""
        n = len(self.task_names) if n_tasks is None else n_tasks
        per_task = sum(l.per_task_lora_parameter_count() for l in self.share_layers().values())
        return n * (per_task + 1)

    def parameter_ratio(self) -> float:
        """Per-task LoRA's stored parameters over Share's (how many times fewer)."""
        stored = self.adapter_parameter_count()
        return self.per_task_lora_parameter_count() / stored if stored else float("nan")

    def reconstruction_errors(self) -> List[Dict[int, float]]:
        """Per merge, each task's relative adapter reconstruction error."""
        return [dict(r.relative_errors) for r in self.merge_reports]

    # ------------------------------------------------------------- persistence
    def get_extra_state(self) -> dict:
        return {
            "merge_reports": [asdict(r) for r in self.merge_reports],
            "max_class_label": int(self.max_class_label),
            "known_train_tasks_labels": sorted(int(t) for t in self.known_train_tasks_labels),
        }

    def set_extra_state(self, state: dict) -> None:
        self.merge_reports = [MergeReport(**r) for r in state["merge_reports"]]
        self.max_class_label = int(state["max_class_label"])
        self.known_train_tasks_labels = set(state["known_train_tasks_labels"])


def _regrow_for_loading(module: ShareClassifier, state_dict, prefix, *args) -> None:
    """Give heads, bases and task coefficients the shapes a saved Share model had.

    Only a full ShareClassifier state dict (it carries the extra state) reshapes the
    layers; a partial one (a head alone) leaves them as they are.
    """
    module._regrow_head_for_loading(state_dict, prefix)
    if prefix + "_extra_state" not in state_dict:
        return
    for name, layer in module.share_layers().items():
        layer.regrow_like(state_dict, f"{prefix}backbone.{name}.")
