"""The user's model, as they wrote it, made into a feature extractor: its classifier found and dropped.

A user hands over the model they train with Avalanche's ``Naive``: ``SimpleCNN``, a
torchvision ResNet, a timm ViT, a transformers sequence classifier. Its classifier must
leave the forward path, or the new head would learn from the old one's random logits, and
it must stay out of LoRA injection. Recognised here, in this order:

* a transformers ``*ForSequenceClassification`` model: wrapped (:class:`SequenceClassifierFeatures`)
  to take the package's ``(batch, 2, length)`` token batches, its classifier's last Linear dropped;
* timm's classifier API (``reset_classifier``, ``num_features``), which the package's own
  backbones follow;
* the model's last layer with parameters, when it is called ``head`` / ``classifier`` /
  ``fc`` / ``heads`` / ``linear`` and is an ``nn.Linear`` (ResNet's ``fc``, ``SimpleMLP``'s
  ``classifier``), Avalanche's ``IncrementalClassifier`` or ``MultiHeadClassifier``
  (``MTSimpleCNN``, ``MTSimpleMLP``), a ``Sequential`` ending in one of those (``SimpleCNN``'s
  ``classifier``, VGG's, MobileNet's, torchvision ViT's ``heads``) or another module whose
  last layer with parameters is one. Only that last layer is dropped: the layers before it
  stay in the feature extractor.

A model with none of them is taken to output features. If its output still looks like an old
classifier's, an :class:`UnrecognisedClassifierWarning` says so and how to fix it, rather
than letting a new head learn from old logits without a word.

Nothing here changes a model until :func:`remove_classifier` (or
:func:`accept_input_alone`) is called, so every check runs first.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from avalanche.models import IncrementalClassifier, MultiHeadClassifier, MultiTaskModule
from torch import nn

from avalanche_litelora.backbones.text.tokens import unpack_tokens

#: Names under which models keep their classifier (as their last layer with parameters).
CLASSIFIER_NAMES = ("head", "classifier", "fc", "heads", "linear")
#: transformers' decoder-style sequence classifiers call theirs ``score``.
TRANSFORMERS_CLASSIFIER_NAMES = CLASSIFIER_NAMES + ("score",)
#: How a timm-style classifier is removed: ``reset_classifier(0)``.
TIMM = "reset_classifier"


class UnrecognisedClassifierWarning(UserWarning):
    """The backbone's output may be an old classifier's that the package could not remove."""


@dataclass(frozen=True)
class Classifier:
    """A backbone's own classifier, found and not yet removed.

    :param how: :data:`TIMM`, or the dotted name of the module replaced by
        :class:`RemovedClassifier`.
    :param name: the dotted name of the module that leaves the forward path (``None``: a
        timm-style model that already has no classifier).
    :param in_features: the width of what it received, the new head's input width.
    """

    how: str
    name: Optional[str]
    in_features: int


class RemovedClassifier(nn.Identity):
    """Where the classifier was: passes the features through and ignores task labels, which
    a removed ``MultiHeadClassifier`` was called with."""

    def forward(self, input, *args, **kwargs):
        return input


class SequenceClassifierFeatures(nn.Module):
    """A transformers ``*ForSequenceClassification`` model as a backbone.

    The package's text streams give ``(batch, 2, length)`` token batches (ids and attention
    mask, see :mod:`avalanche_litelora.backbones.text.tokens`); the model returns a
    ``ModelOutput`` whose ``logits`` are, once its classifier's last Linear is dropped, what
    that Linear received: the features (BERT's pooled output, RoBERTa's dense layer's).
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ids, mask = unpack_tokens(x)
        return self.model(input_ids=ids, attention_mask=mask).logits


def name_in_user_model(backbone: nn.Module, name: str) -> str:
    """A module's name in the model as the user wrote it (a wrapper's ``model.`` removed)."""
    if isinstance(backbone, SequenceClassifierFeatures) and name.startswith("model."):
        return name[len("model."):]
    return name


def describe_layer(module: nn.Module) -> str:
    """``nn.Linear(64 -> 10)`` for a Linear, the class name for anything else."""
    if isinstance(module, nn.Linear):
        return f"nn.Linear({module.in_features} -> {module.out_features})"
    return type(module).__name__


# ------------------------------------------------------------------- transformers
def _is_transformers_model(model: nn.Module) -> bool:
    """Without importing transformers: a model of it exists only once it was imported."""
    transformers = sys.modules.get("transformers")
    return transformers is not None and isinstance(model, transformers.PreTrainedModel)


def as_feature_model(backbone: nn.Module) -> nn.Module:
    """The module to adapt: a transformers sequence classifier wrapped, any other model itself.

    The user's model is not changed (a wrapper holds it).
    :raises TypeError: another kind of transformers model, with the ways to use it.
    """
    if not _is_transformers_model(backbone):
        return backbone
    if type(backbone).__name__.endswith("ForSequenceClassification"):
        return SequenceClassifierFeatures(backbone)
    raise TypeError(
        f"{type(backbone).__name__} is a transformers model that is not a sequence classifier: "
        "give a *ForSequenceClassification model, or an encoder through the package's text "
        "backbones (avalanche_litelora.backbones.create_backbone('hf_text', config=...) or "
        "HFTextEncoder(encoder)), or wrap it in a module whose forward(x) returns (batch, features)"
    )


# ------------------------------------------------------------------- finding it
def _has_parameters(module: nn.Module) -> bool:
    return next(module.parameters(), None) is not None


def _last_child(module: nn.Module, with_parameters: bool) -> Optional[Tuple[str, nn.Module]]:
    """The last child in registration order (forward order for a ``Sequential``)."""
    children = [(n, c) for n, c in module.named_children() if not with_parameters or _has_parameters(c)]
    return children[-1] if children else None


def _input_width(module: nn.Module) -> Optional[int]:
    """The input width of a layer that can be dropped whole as a classifier, else ``None``."""
    if isinstance(module, nn.Linear):
        return module.in_features
    if isinstance(module, IncrementalClassifier):
        return module.classifier.in_features
    if isinstance(module, MultiHeadClassifier):
        return module.in_features
    return None


def _droppable_part(module: nn.Module, path: str) -> Optional[Tuple[str, int]]:
    """``(dotted name, input width)`` of the classifier's last layer, or ``None``.

    A ``Sequential``'s last layer is its last child (a softmax after the Linear makes it
    unrecognised, rather than leaving the softmax on the features); another module's is its
    last child with parameters.
    """
    width = _input_width(module)
    if width is not None:
        return path, width
    last = _last_child(module, with_parameters=not isinstance(module, nn.Sequential))
    if last is None:
        return None
    name, child = last
    return _droppable_part(child, f"{path}.{name}")


def _named_classifier(backbone: nn.Module, names: Sequence[str], prefix: str = "") -> Optional[Classifier]:
    """The last layer with parameters (of ``backbone``, or of its submodule ``prefix``), if it
    is called one of ``names`` and ends in a layer that can be dropped."""
    root = backbone.get_submodule(prefix) if prefix else backbone
    last = _last_child(root, with_parameters=True)
    if last is None or last[0] not in names:
        return None
    path = f"{prefix}.{last[0]}" if prefix else last[0]
    part = _droppable_part(last[1], path)
    return None if part is None else Classifier(how=part[0], name=part[0], in_features=part[1])


def _module_name(backbone: nn.Module, module: nn.Module) -> Optional[str]:
    return next((n for n, m in backbone.named_modules() if m is module), None)


def _timm_classifier(backbone: nn.Module) -> Optional[Classifier]:
    """timm's API: ``reset_classifier(0)`` removes it, ``num_features`` (or
    ``head_hidden_size``, where a pre-logits layer widens it) is the width left."""
    if not (hasattr(backbone, "reset_classifier") and hasattr(backbone, "num_features")):
        return None
    if hasattr(backbone, "get_classifier"):
        module = backbone.get_classifier()
        name = _module_name(backbone, module) if isinstance(module, nn.Module) else None
    else:  # the package's text encoder: its pretrained_cfg names the head
        name = (getattr(backbone, "pretrained_cfg", None) or {}).get("classifier", "head")
        module = getattr(backbone, name, None)
    if not isinstance(module, nn.Module) or not _has_parameters(module):
        name = None  # already headless (num_classes=0)
    width = module.in_features if isinstance(module, nn.Linear) else None
    if width is None:
        width = getattr(backbone, "head_hidden_size", None) or backbone.num_features
    return Classifier(how=TIMM, name=name, in_features=int(width))


def locate_classifier(backbone: nn.Module) -> Optional[Classifier]:
    """The backbone's own classifier (see the module's docstring), without changing anything."""
    if isinstance(backbone, SequenceClassifierFeatures):
        return _named_classifier(backbone, TRANSFORMERS_CLASSIFIER_NAMES, prefix="model")
    return _timm_classifier(backbone) or _named_classifier(backbone, CLASSIFIER_NAMES)


def check_feature_dim(found: Optional[Classifier], feature_dim: Optional[int]) -> Optional[int]:
    """The head's input width: the classifier's input, which a given ``feature_dim`` must match."""
    if found is None or feature_dim is None:
        return feature_dim if found is None else found.in_features
    if feature_dim != found.in_features:
        dropped = f"its classifier {found.name!r}" if found.name else "its classifier"
        raise ValueError(
            f"feature_dim={feature_dim}, but {dropped} is removed and the backbone then outputs "
            f"{found.in_features} features: drop feature_dim (it is only needed for a backbone "
            f"that already outputs features), or give feature_dim={found.in_features}"
        )
    return feature_dim


def suspected_classifier(backbone: nn.Module) -> Optional[str]:
    """Why the output of a backbone with no recognised classifier may be an old classifier's
    (``None``: nothing suggests it)."""
    leaves = [(n, m) for n, m in backbone.named_modules() if next(m.children(), None) is None]
    if leaves and isinstance(leaves[-1][1], nn.Linear):
        name, layer = leaves[-1]
        where = f"{name!r}, " if name else ""
        return (
            f"it ends in {where}an {describe_layer(layer)} whose {layer.out_features} outputs "
            "are taken as features"
        )
    for name in CLASSIFIER_NAMES:
        module = getattr(backbone, name, None)
        if isinstance(module, nn.Module) and _has_parameters(module):
            return (
                f"its {name!r} ({describe_layer(module)}) is not a layer the package can drop (an "
                "nn.Linear, Avalanche's IncrementalClassifier or MultiHeadClassifier, or a "
                "Sequential ending in one, as the model's last layer with parameters)"
            )
    return None


def output_layer(backbone: nn.Module) -> Tuple[Optional[str], Dict[str, torch.Tensor]]:
    """The last layer with parameters of its own, and its tensors by local name: the layer that
    feeds the head of a backbone without a classifier (see ``optimizer_groups``)."""
    layers = [(n, m) for n, m in backbone.named_modules() if next(m.parameters(recurse=False), None) is not None]
    if not layers:
        return None, {}
    name, layer = layers[-1]
    return name, dict(layer.named_parameters(recurse=False))


# ------------------------------------------------------------------- changing it
def classifier_parameters(backbone: nn.Module, found: Optional[Classifier]) -> Dict[str, torch.Tensor]:
    """The classifier's tensors by local name (``weight``, ``bias``), before it is removed."""
    if found is None or found.name is None:
        return {}
    return {n.rsplit(".", 1)[-1]: p for n, p in backbone.get_submodule(found.name).named_parameters()}


def remove_classifier(backbone: nn.Module, how: Optional[str]) -> None:
    """Take the classifier out of the forward path: the backbone then outputs features."""
    if how == TIMM:
        backbone.reset_classifier(0)
    elif how is not None:
        parent_name, _, child = how.rpartition(".")
        parent = backbone.get_submodule(parent_name) if parent_name else backbone
        # nn.Module's own setattr: Avalanche's as_multitask() wrapper forwards its own
        # setattr to the model it wraps, which would leave its MultiHeadClassifier in place.
        nn.Module.__setattr__(parent, child, RemovedClassifier())


def needs_task_labels(backbone: nn.Module) -> bool:
    """An Avalanche ``MultiTaskModule`` is called with task labels (``MTSimpleCNN``'s forward
    requires them); the adapter model calls its backbone with the input alone."""
    return isinstance(backbone, MultiTaskModule)


def _task_label_zero(module: nn.Module, args: tuple, kwargs: dict):
    """Forward pre-hook: a multi-task backbone called with its input alone gets task label 0.

    Avalanche's multi-task models read task labels only in their classifier, which is gone;
    an int takes ``MultiTaskModule.forward``'s single-task path, which returns features as
    they are (its multi-task path pads outputs to its number of classes).
    """
    if len(args) == 1 and "task_labels" not in kwargs:
        return (args[0], 0), kwargs
    return None


def accept_input_alone(backbone: nn.Module) -> None:
    """Let a multi-task backbone be called as ``backbone(x)`` (a hook: no state-dict change)."""
    backbone.register_forward_pre_hook(_task_label_zero, with_kwargs=True)


def refuse_unremovable_multitask(backbone: nn.Module, found: Optional[Classifier], feature_dim) -> None:
    """A multi-task model whose task-specific classifier stays would give task 0's logits as features."""
    if needs_task_labels(backbone) and found is None and feature_dim is None:
        raise ValueError(
            f"{type(backbone).__name__} is a MultiTaskModule whose classifier the package does "
            "not recognise (it drops a MultiHeadClassifier, or a Linear, as the model's last layer "
            f"with parameters, called one of {list(CLASSIFIER_NAMES)}): its output would be one "
            "task's logits. Replace its classifier with nn.Identity() and give feature_dim=, or "
            "give the model as a feature extractor"
        )


def excluded_names(backbone: nn.Module, found: Optional[Classifier]) -> List[str]:
    """Module names to keep out of LoRA injection: the classifier (and what it holds)."""
    return [found.name] if found is not None and found.name else []
