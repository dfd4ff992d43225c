"""What every adapter model does to its backbone, whatever its adapters (LoRA bank, Share).

Surgery (find and remove the backbone's classifier, wrap the target layers), the Avalanche
head in its place (or a pending one for a headless backbone), a frozen backbone whose
BatchNorm statistics never drift, and a head regrown to a saved state dict's shapes.
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Sequence, Type

import torch
from torch import nn

from avalanche_litelora.lora.inject import inject_lora
from avalanche_litelora.lora.adapter_layer import AdapterLayer
from avalanche_litelora.models.heads import (
    classifier_module_names,
    classifier_parameters,
    find_classifier,
    make_head,
    remove_classifier,
    resize_head_like,
)
from avalanche_litelora.models.pending_head import PendingHead, head_for_loading


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

    @staticmethod
    def is_learned_key(key: str) -> bool:
        """A state-dict entry the stream may change (adapters, head, metadata); the rest is
        the frozen backbone, which nothing needs to snapshot or broadcast."""
        return ".adapters." in key or key.startswith("head.") or key == "_extra_state"

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

        Every check runs before the backbone changes (``inject_lora`` validates first).
        """
        if not isinstance(backbone, nn.Module):
            raise TypeError(f"backbone must be an nn.Module, got {type(backbone).__name__}")
        how, in_features = find_classifier(backbone, feature_dim)
        excluded = classifier_module_names(backbone, how)
        replaced = classifier_parameters(backbone, how)
        layers = inject_lora(backbone, target_modules, rank, exclude=excluded, layer_type=layer_type)
        remove_classifier(backbone, how)
        self.backbone = backbone
        #: ids of the backbone classifier's tensors the head replaced, by local name: a
        #: user's optimizer built on the backbone holds them (its group is the head's).
        self.replaced_classifier_ids: Dict[str, int] = {k: id(v) for k, v in replaced.items()}
        if head is None and in_features is None:  # headless: measured on the first experience
            head = PendingHead(task_incremental, initial_out_features, head_seed)
        if head is None:
            head = make_head(in_features, task_incremental, initial_out_features, seed=head_seed)
        self.head = head
        for p in self.head.parameters():
            p.requires_grad_(True)
        return layers

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
