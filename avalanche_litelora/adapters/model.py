"""What every adapter model does to its backbone, whatever its adapters (LoRA bank, Share).

Surgery (find and remove the backbone's classifier, see :mod:`~avalanche_litelora.adapters.surgery`;
wrap the target layers; say what was done), the Avalanche head in its place (or a pending
one for a headless backbone), a frozen backbone whose BatchNorm statistics never drift, and
a head regrown to a saved state dict's shapes.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Type

import torch
from torch import nn

from avalanche_litelora.checks import check_count
from avalanche_litelora.adapters.layer import AdapterLayer
from avalanche_litelora.adapters.inject import build_adapter_layers, explain_targets, swap_in_adapter_layers
from avalanche_litelora.adapters import surgery
from avalanche_litelora.adapters.heads import make_head, resize_head_like
from avalanche_litelora.adapters.pending_head import PendingHead, head_for_loading

logger = logging.getLogger(__name__)
_PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def user_stacklevel() -> int:
    """The ``warnings.warn`` stacklevel, for its caller, of the first frame outside this package:
    a warning then points at the user's line, whichever strategy or model class they built."""
    frame, level = sys._getframe(1), 1
    while frame.f_back is not None and os.path.abspath(frame.f_code.co_filename).startswith(_PACKAGE):
        frame, level = frame.f_back, level + 1
    return level


@dataclass(frozen=True)
class SurgeryPlan:
    """Everything the surgery decides about a backbone before it changes anything."""

    given: nn.Module  # the user's model
    backbone: nn.Module  # what is adapted: ``given``, or a wrapper around it
    found: Optional[surgery.Classifier]  # its classifier, to drop
    dropped: Optional[str]  # that classifier in words
    in_features: Optional[int]  # the head's input width (None: measured on the first experience)
    suspect: Optional[str]  # why its output may still be an old classifier's
    excluded: List[str]  # modules kept out of LoRA injection
    anchors: Dict[str, torch.Tensor]  # whose optimizer group the head joins
    anchor_words: Optional[str]
    targets_reason: str  # why ``target_modules`` picks what it picks


def plan_surgery(given: nn.Module, target_modules: Sequence[str], feature_dim: Optional[int]) -> SurgeryPlan:
    """Find the classifier and check what can be checked; the user's model is not changed."""
    if not isinstance(given, nn.Module):
        raise TypeError(f"backbone must be an nn.Module, got {type(given).__name__}")
    if feature_dim is not None:
        check_count("feature_dim", feature_dim)
    backbone = surgery.as_feature_model(given)
    found = surgery.locate_classifier(backbone)
    in_features = surgery.check_feature_dim(found, feature_dim)
    surgery.refuse_unremovable_multitask(backbone, found, feature_dim)
    excluded = surgery.excluded_names(backbone, found)
    anchors, anchor_words = _head_group_anchors(backbone, found)
    return SurgeryPlan(
        given=given,
        backbone=backbone,
        found=found,
        dropped=surgery.describe_layer(backbone.get_submodule(found.name)) if found and found.name else None,
        in_features=in_features,
        suspect=surgery.suspected_classifier(backbone) if found is None and feature_dim is None else None,
        excluded=excluded,
        anchors=anchors,
        anchor_words=anchor_words,
        targets_reason=explain_targets(backbone, target_modules, excluded),
    )


def _head_group_anchors(backbone: nn.Module, found) -> Tuple[Dict[str, torch.Tensor], Optional[str]]:
    """The tensors whose optimizer group the head joins, and what they are in words.

    The classifier the head replaces; for a backbone without one, the layer that feeds it
    (the head then trains at that layer's learning rate when the user's optimizer has several
    groups, see :mod:`avalanche_litelora.training.optimizer_groups`).
    """
    replaced = surgery.classifier_parameters(backbone, found)
    if replaced:
        return replaced, f"the classifier it replaces ({found.name!r})"
    name, tensors = surgery.output_layer(backbone)
    return tensors, (f"the layer that feeds it ({name!r})" if tensors else None)


def _feature_extractor(plan: SurgeryPlan) -> str:
    """The feature-extractor line of :func:`describe_surgery`."""
    what = type(plan.given).__name__
    if plan.backbone is not plan.given:
        what += " (a transformers sequence classifier, fed (batch, 2, length) batches of token ids and mask)"
    if plan.dropped:
        name = surgery.name_in_user_model(plan.backbone, plan.found.name)
        return f"{what} without {name!r}, its classifier ({plan.dropped}), dropped from the forward path"
    if plan.found is not None:
        return f"{what} (timm-style, already without a classifier)"
    return f"the whole {what} (no classifier recognised: its output is taken as features)"


def _head_words(head: nn.Module) -> str:
    if isinstance(head, PendingHead):
        return "built at the first experience, on the backbone's measured output width"
    inner = getattr(head, "classifier", None)  # IncrementalClassifier's Linear
    width = getattr(head, "in_features", None) or getattr(inner, "in_features", None)
    return type(head).__name__ + (f" on {width} features" if width else "")


def describe_surgery(model_name: str, plan: SurgeryPlan, head: nn.Module, layer_names: List[str]) -> str:
    """What :meth:`AdapterModel._adapt_backbone` did to the user's model, in four lines."""
    shown = ", ".join(layer_names[:8]) + (f", ... ({len(layer_names)} in all)" if len(layer_names) > 8 else "")
    return (
        f"{model_name} on {type(plan.given).__name__}:\n"
        f"  feature extractor: {_feature_extractor(plan)}\n"
        f"  head: {_head_words(head)}\n"
        f"  adapters on {len(layer_names)} module(s): {shown}; {plan.targets_reason}"
    )


def suspect_message(given: nn.Module, why: str) -> str:
    """The :class:`~avalanche_litelora.adapters.surgery.UnrecognisedClassifierWarning` text."""
    return (
        f"{type(given).__name__} has no classifier the package recognises, and {why}. The new "
        "head is built on the backbone's output: if that output is an old classifier's logits, "
        "the head learns from them. If it is, replace that layer with nn.Identity() before "
        "building the strategy; if the output is features, give feature_dim=<its width> to "
        "say so (no warning then)."
    )


def backbone_signature(backbone: nn.Module) -> List[list]:
    """Names, shapes and dtypes of the frozen weights: everything but what adapter layers grow."""
    adapted = tuple(f"{n}." for n, m in backbone.named_modules() if isinstance(m, AdapterLayer) and n)
    signature = []
    for name, tensor in backbone.state_dict().items():
        inside = next((p for p in adapted if name.startswith(p)), None)
        if torch.is_tensor(tensor) and (inside is None or name.startswith(inside + "base.")):
            signature.append([name, list(tensor.shape), str(tensor.dtype)])
    return signature


class AdapterModel(nn.Module):
    """Base of :class:`~avalanche_litelora.LoRAClassifier` and
    :class:`~avalanche_litelora.ShareClassifier`: a frozen backbone, adapted layers, a head."""

    #: What the learned state is called in messages (a failed experience restores it).
    learned_state_name = "adapters"
    #: Whose plugins need this kind of model, in :func:`~avalanche_litelora.adapters.access.adapter_model_of`'s message.
    method_name = "The adapter strategies'"

    @staticmethod
    def is_learned_key(key: str) -> bool:
        """A state-dict entry the stream may change (adapters, head, metadata); the rest is
        the frozen backbone, which nothing needs to snapshot or broadcast."""
        return ".adapters." in key or key.startswith("head.") or key == "_extra_state"

    @classmethod
    def build(cls, backbone: nn.Module, **settings) -> "AdapterModel":
        """The model a strategy wires a plain backbone into (a family may pick a subclass)."""
        return cls(backbone, **settings)

    def learned_state(self) -> Dict[str, object]:
        """A detached copy of every learned entry: what a failed experience restores."""
        return {
            k: (v.detach().clone() if torch.is_tensor(v) else v)
            for k, v in self.state_dict().items()
            if self.is_learned_key(k)
        }

    def fingerprint_settings(self) -> Dict[str, Any]:
        """The settings this model was built with that a checkpoint must share to load."""
        return {"rank": self.rank}

    def checkpoint_fingerprint(self) -> Dict[str, Any]:
        """What a checkpoint's model must match: the settings and the frozen backbone's shapes."""
        return {**self.fingerprint_settings(), "backbone": backbone_signature(self.backbone)}

    def _adapt_backbone(
        self,
        backbone: nn.Module,
        *,
        target_modules: Sequence[str],
        rank: int,
        layer_type: Type[AdapterLayer],
        feature_dim: Optional[int],
        head: Optional[nn.Module],
        task_incremental: bool,
        initial_out_features: int,
        head_seed: Optional[int],
    ) -> Dict[str, AdapterLayer]:
        """Wrap the targets, swap the classifier for the head; the wrapped layers by name.

        Every check runs before the backbone changes (:func:`plan_surgery`, and building the
        adapter layers). What was done is said once, in :attr:`surgery_report` and to the
        ``avalanche_litelora`` logger (INFO); a backbone whose output may still be an old
        classifier's gets an :class:`~avalanche_litelora.adapters.surgery.UnrecognisedClassifierWarning`.
        """
        plan = plan_surgery(backbone, target_modules, feature_dim)
        layers = build_adapter_layers(plan.backbone, target_modules, rank, plan.excluded, layer_type=layer_type)
        # The last check has passed: from here on the backbone changes.
        surgery.remove_classifier(plan.backbone, plan.found.how if plan.found else None)
        swap_in_adapter_layers(plan.backbone, layers)
        if surgery.needs_task_labels(plan.backbone):
            surgery.accept_input_alone(plan.backbone)
        self.backbone = plan.backbone
        #: ids of the tensors whose optimizer group the head joins, by local name: the
        #: classifier it replaced or, for a backbone without one, the layer that feeds it.
        self.replaced_classifier_ids: Dict[str, int] = {k: id(v) for k, v in plan.anchors.items()}
        #: Those tensors in words, for the strategy to say which optimizer group the head joins.
        self.head_group_anchor = plan.anchor_words
        self.head = self._initial_head(head, plan.in_features, task_incremental, initial_out_features, head_seed)
        #: What the backbone surgery did, in words: the feature extractor, what was dropped,
        #: the head, and which modules got adapters and why.
        self.surgery_report = describe_surgery(type(self).__name__, plan, self.head, list(layers))
        logger.info(self.surgery_report)
        if plan.suspect:
            message = suspect_message(plan.given, plan.suspect)
            warnings.warn(message, surgery.UnrecognisedClassifierWarning, stacklevel=user_stacklevel())
        return layers

    @staticmethod
    def _initial_head(head, in_features, task_incremental, initial_out_features, seed) -> nn.Module:
        """The head given, Avalanche's (at a known width), or a pending one; trainable."""
        if head is None and in_features is None:  # headless: measured on the first experience
            head = PendingHead(task_incremental, initial_out_features, seed)
        if head is None:
            head = make_head(in_features, task_incremental, initial_out_features, seed=seed)
        for p in head.parameters():
            p.requires_grad_(True)
        return head

    def train(self, mode: bool = True):
        """Train mode everywhere but in the backbone's normalisation statistics.

        The backbone is frozen: BatchNorm running means must not drift with the stream
        either, or the function earlier experiences were learned on would change.
        """
        super().train(mode)
        for module in self.backbone.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.eval()
        return self

    def _regrow_head_for_loading(self, state_dict: Mapping[str, torch.Tensor], prefix: str) -> None:
        """Build a pending head and grow the head to the shapes ``state_dict`` holds."""
        self.head = head_for_loading(self.head, state_dict, prefix + "head.")
        resize_head_like(self.head, state_dict, prefix + "head.")
