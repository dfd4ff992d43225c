"""Backbone surgery for classification: remove the backbone's own head, build Avalanche's.

Which classifier is removed, for which model shapes, is :mod:`avalanche_litelora.adapters.surgery`'s
business; the functions here keep the ``(how, feature_size)`` interface the harness uses.

Avalanche's heads grow during training (new classes, new tasks), so a freshly built model
cannot load a trained ``state_dict`` as is; :func:`resize_head_like` regrows a head to the
shapes a state dict holds before loading it.
"""

from __future__ import annotations

import re
from typing import Dict, List, Mapping, Optional, Tuple

import torch
from avalanche.models import IncrementalClassifier, MultiHeadClassifier
from torch import nn

from avalanche_litelora.checks import check_count
from avalanche_litelora.adapters import surgery
from avalanche_litelora.adapters.seeding import global_rng_untouched
from avalanche_litelora.adapters.seeded_heads import SeededIncrementalClassifier, SeededMultiHeadClassifier


def find_classifier(
    backbone: nn.Module, feature_dim: Optional[int] = None
) -> Tuple[Optional[str], Optional[int]]:
    """Locate the backbone's own classifier without changing anything.

    Returns ``(how_to_remove, feature_size)``: ``"reset_classifier"`` for timm-style models,
    the dotted name of the layer to drop (``"fc"``, ``"classifier.0"``: see
    :mod:`avalanche_litelora.adapters.surgery` for the shapes recognised), or ``None`` for a
    backbone that already outputs features, whose ``feature_size`` is then ``feature_dim``,
    or ``None`` to be measured on the first experience
    (:mod:`avalanche_litelora.adapters.pending_head`).
    """
    if feature_dim is not None:
        check_count("feature_dim", feature_dim)
    found = surgery.locate_classifier(backbone)
    return (found.how if found else None), surgery.check_feature_dim(found, feature_dim)


def classifier_module_names(backbone: nn.Module, how: Optional[str]) -> List[str]:
    """Module names of the backbone's own classifier, to keep out of LoRA injection."""
    if how == surgery.TIMM:
        found = surgery.locate_classifier(backbone)
        return surgery.excluded_names(backbone, found)
    return [how] if how else []


def classifier_parameters(backbone: nn.Module, how: Optional[str]) -> Dict[str, torch.Tensor]:
    """The backbone's own classifier's tensors by local name (``weight``, ``bias``), before removal.

    A user's optimizer built on the backbone holds them; the head built in their place joins
    their optimizer group (see :mod:`avalanche_litelora.training.optimizer_groups`).
    """
    if how == surgery.TIMM:
        return surgery.classifier_parameters(backbone, surgery.locate_classifier(backbone))
    if how is None:
        return {}
    return surgery.classifier_parameters(backbone, surgery.Classifier(how, how, 0))


#: Applies what :func:`find_classifier` found: the backbone then outputs features.
remove_classifier = surgery.remove_classifier


def make_head(
    in_features: int, task_incremental: bool, initial_out_features: int = 2, seed: Optional[int] = None
) -> nn.Module:
    """Avalanche's growing head (class-incremental) or multi-head (task-incremental).

    With a ``seed``, the heads draw their rows from it instead of the global generator (see
    :mod:`avalanche_litelora.adapters.seeded_heads`).
    """
    if seed is not None:
        if task_incremental:
            return SeededMultiHeadClassifier(in_features, initial_out_features, seed=seed)
        return SeededIncrementalClassifier(in_features, initial_out_features, seed=seed)
    if task_incremental:
        return MultiHeadClassifier(in_features, initial_out_features)
    return IncrementalClassifier(in_features, initial_out_features)


def head_capacity(head: nn.Module) -> Optional[int]:
    """How many classes a fixed head can hold; ``None`` for heads that grow."""
    if isinstance(head, (IncrementalClassifier, MultiHeadClassifier)):
        return None
    if isinstance(head, nn.Linear):
        return head.out_features
    return getattr(head, "out_features", None)


@torch.no_grad()
def _resize_incremental(head: IncrementalClassifier, n_out: int, n_units: Optional[int]) -> None:
    if head.classifier.out_features != n_out:
        old = head.classifier
        with global_rng_untouched():  # the values are about to be loaded: draw nothing
            head.classifier = nn.Linear(old.in_features, n_out).to(old.weight.device, old.weight.dtype)
    if n_units is not None and head.active_units.shape[0] != n_units:
        head.active_units = torch.zeros(n_units, dtype=torch.int8, device=head.active_units.device)


def resize_head_like(head: nn.Module, state_dict: Mapping[str, torch.Tensor], prefix: str) -> None:
    """Grow Avalanche heads in place to the shapes stored in ``state_dict`` under ``prefix``."""
    if isinstance(head, IncrementalClassifier):
        weight = state_dict.get(prefix + "classifier.weight")
        units = state_dict.get(prefix + "active_units")
        if weight is not None:
            _resize_incremental(head, weight.shape[0], None if units is None else units.shape[0])
    elif isinstance(head, MultiHeadClassifier):
        pattern = re.compile(re.escape(prefix) + r"classifiers\.([^.]+)\.classifier\.weight$")
        for key, weight in state_dict.items():
            match = pattern.match(key)
            if not match:
                continue
            tid = match.group(1)
            if tid not in head.classifiers and isinstance(head, SeededMultiHeadClassifier):
                head.classifiers[tid] = head.new_task_head(tid)
            elif tid not in head.classifiers:
                head.classifiers[tid] = IncrementalClassifier(
                    head.in_features, weight.shape[0], masking=False, auto_adapt=False
                ).to(weight.device)
            head.max_class_label = max(head.max_class_label, weight.shape[0])
            inner_units = state_dict.get(f"{prefix}classifiers.{tid}.active_units")
            _resize_incremental(
                head.classifiers[tid],
                weight.shape[0],
                None if inner_units is None else inner_units.shape[0],
            )
            units = state_dict.get(f"{prefix}active_units_T{tid}")
            if units is not None:
                head.register_buffer(f"active_units_T{tid}", torch.zeros_like(units))
                if tid.isdigit():
                    head.known_train_tasks_labels.add(int(tid))
