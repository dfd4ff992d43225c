"""The adapter-bank model: frozen backbone with LoRA layers, one model-level gate, a head."""

from __future__ import annotations

import math
import numbers
from typing import Dict, List, Optional, Sequence

import torch
from avalanche.models import MultiTaskModule
from torch import Tensor, nn

from avalanche_litelora.lora.gate import AdapterGate
from avalanche_litelora.lora.inject import DEFAULT_TARGET_MODULES, inject_lora
from avalanche_litelora.lora.layer import LoRALinear
from avalanche_litelora.models.heads import (
    classifier_module_names,
    find_classifier,
    make_head,
    remove_classifier,
    resize_head_like,
)


class LoRAClassifier(MultiTaskModule):
    """A backbone adapted by a bank of gated LoRA adapters, plus an Avalanche head.

    The bank is the set of adapters that every wrapped layer holds under the same names;
    each adapter has one gate logit in :attr:`gate`, sampled once per forward pass and
    pushed to every layer, so one decision keeps or drops an adapter everywhere.
    Lifecycle operations (:meth:`open_candidate`, :meth:`prune`, :meth:`freeze`) are called
    by the plugins in :mod:`avalanche_litelora.training.plugins`.
    """

    def __init__(
        self,
        backbone: nn.Module,
        *,
        rank: int = 10,
        target_modules: Sequence[str] = DEFAULT_TARGET_MODULES,
        task_incremental: bool = False,
        head: Optional[nn.Module] = None,
        feature_dim: Optional[int] = None,
        init_logit: float = 0.5,
        tau: float = 1.0,
        initial_out_features: int = 2,
    ):
        super().__init__()
        if not isinstance(backbone, nn.Module):
            raise TypeError(f"backbone must be an nn.Module, got {type(backbone).__name__}")
        if (
            not isinstance(init_logit, numbers.Real) or isinstance(init_logit, bool)
            or not math.isfinite(init_logit)
        ):
            raise ValueError(f"init_logit must be a finite number, got {init_logit!r}")
        gate = AdapterGate(tau)  # validates tau before the backbone is touched
        how, in_features = find_classifier(backbone, feature_dim)
        excluded = classifier_module_names(backbone, how)
        layers = inject_lora(backbone, target_modules, rank, exclude=excluded)  # checks targets
        remove_classifier(backbone, how)

        self.backbone = backbone
        self.head = head if head is not None else make_head(
            in_features, task_incremental, initial_out_features
        )
        for p in self.head.parameters():
            p.requires_grad_(True)
        self.gate = gate
        self.rank = rank
        self.init_logit = float(init_logit)
        self.task_incremental = bool(task_incremental)
        self.lora_layer_names: List[str] = list(layers)
        self.pruned_adapters: List[str] = []
        self._opened = 0
        self.register_load_state_dict_pre_hook(_rebuild_bank_for_loading)

    # ------------------------------------------------------------------ forward
    def train(self, mode: bool = True) -> "LoRAClassifier":
        """Train mode everywhere but in the backbone's normalisation statistics.

        The backbone is frozen: BatchNorm running means must not drift with the stream
        either, or the function earlier experiences were learned on would change.
        """
        super().train(mode)
        for module in self.backbone.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.eval()
        return self

    def lora_layers(self) -> Dict[str, LoRALinear]:
        return {n: self.backbone.get_submodule(n) for n in self.lora_layer_names}

    def _push_gate_values(self, values: Dict[str, Tensor]) -> None:
        for layer in self.lora_layers().values():
            layer.gate_values = values

    def forward(self, x: Tensor, task_labels: Optional[Tensor] = None) -> Tensor:
        self._push_gate_values(self.gate.values())
        features = self.backbone(x)
        if isinstance(self.head, MultiTaskModule):
            if task_labels is None:
                raise ValueError("a task-incremental (multi-head) model needs task labels")
            return self.head(features, task_labels)
        return self.head(features)

    def forward_single_task(self, x: Tensor, task_label: int) -> Tensor:
        labels = torch.full((x.shape[0],), int(task_label), dtype=torch.long, device=x.device)
        return self.forward(x, labels)

    # ------------------------------------------------------------- bank lifecycle
    @property
    def adapter_names(self) -> List[str]:
        """Adapters stored in the bank (kept or still candidate), oldest first."""
        return list(self.gate.logits.keys())

    @property
    def candidate(self) -> Optional[str]:
        return self.gate.candidate

    def open_candidate(self) -> str:
        """Add a new adapter to every wrapped layer, with its gate logit and magnitudes."""
        if self.gate.candidate is not None:
            raise RuntimeError(f"candidate {self.gate.candidate!r} is still open")
        self.unmerge()
        name = f"adapter_{self._opened}"
        for layer in self.lora_layers().values():
            layer.add_adapter(name)
        device = next(iter(self.lora_layers().values())).weight.device
        self.gate.add(name, self.init_logit, device=device)  # beside its adapters
        self.gate.logits[name].requires_grad_(False)
        self.gate.candidate = name
        self._opened += 1
        return name

    def prune(self, name: str) -> None:
        """Remove an adapter for good: its tensors leave the model."""
        self.unmerge()
        for layer in self.lora_layers().values():
            layer.delete_adapter(name)
        self.gate.remove(name)
        self.pruned_adapters.append(name)

    def freeze(self, name: str) -> None:
        """Turn a trained adapter into a frozen SD-LoRA direction; its logit stops training."""
        for layer in self.lora_layers().values():
            adapter = layer.adapters[name]
            adapter.to_direction_form()
            adapter.set_requires_grad(adapter=False, magnitude=False)
        logit = self.gate.logits[name]
        logit.requires_grad_(False)
        logit.grad = None
        if self.gate.candidate == name:
            self.gate.candidate = None
            self.gate.selecting = False

    def is_frozen(self, name: str) -> bool:
        return any(bool(l.adapters[name].normalized) for l in self.lora_layers().values())

    def set_trainable(
        self,
        *,
        candidate_adapter: bool,
        candidate_magnitude: bool,
        past_magnitudes: bool,
        candidate_logit: bool,
        head: bool,
    ) -> None:
        """Choose what trains in the current phase; everything else gets no gradient."""
        candidate = self.gate.candidate
        for layer in self.lora_layers().values():
            for name, adapter in layer.adapters.items():
                is_candidate = name == candidate
                adapter.set_requires_grad(
                    adapter=is_candidate and candidate_adapter,
                    magnitude=candidate_magnitude if is_candidate else past_magnitudes,
                )
        for name, logit in self.gate.logits.items():
            trainable = name == candidate and candidate_logit
            logit.requires_grad_(trainable)
            if not trainable:
                logit.grad = None
        for p in self.head.parameters():
            p.requires_grad_(head)
            if not head:
                p.grad = None

    # ------------------------------------------------------------------ merging
    @torch.no_grad()
    def merge(self) -> None:
        """Fold every open adapter into the base weights for inference at the backbone's cost."""
        self._push_gate_values(self.gate.eval_values())
        for layer in self.lora_layers().values():
            layer.merge()

    @torch.no_grad()
    def unmerge(self) -> None:
        for layer in self.lora_layers().values():
            layer.unmerge()

    @property
    def merged(self) -> bool:
        return any(l.merged for l in self.lora_layers().values())

    # ---------------------------------------------------------------- read-outs
    @property
    def active_adapters(self) -> List[str]:
        """Adapters whose gate is open at test time."""
        return [n for n in self.adapter_names if self.gate.is_open(n)]

    def adapter_parameter_count(self) -> int:
        """Numbers stored for the bank: A, B and magnitudes of every layer, plus the logits."""
        count = sum(l.numel() for l in self.gate.logits.values())
        for layer in self.lora_layers().values():
            count += sum(p.numel() for p in layer.adapters.parameters())
        return count

    def adapter_parameter_bytes(self) -> int:
        total = sum(l.numel() * l.element_size() for l in self.gate.logits.values())
        for layer in self.lora_layers().values():
            total += sum(p.numel() * p.element_size() for p in layer.adapters.parameters())
        return total

    def gate_logits(self) -> Dict[str, float]:
        return {n: float(l.detach()) for n, l in self.gate.logits.items()}

    def magnitudes(self) -> Dict[str, Dict[str, float]]:
        """Per adapter: ``{"<layer>.<slice>": alpha}`` for every wrapped layer."""
        out: Dict[str, Dict[str, float]] = {n: {} for n in self.adapter_names}
        for layer_name, layer in self.lora_layers().items():
            for name, adapter in layer.adapters.items():
                for key, alpha in adapter.magnitude.items():
                    out[name][f"{layer_name}.{key}"] = float(alpha.detach())
        return out

    # ------------------------------------------------------------- persistence
    def get_extra_state(self) -> dict:
        return {
            "pruned_adapters": list(self.pruned_adapters),
            "opened": self._opened,
            "candidate": self.gate.candidate,
        }

    def set_extra_state(self, state: dict) -> None:
        self.pruned_adapters = list(state["pruned_adapters"])
        self._opened = int(state["opened"])
        self.gate.candidate = state["candidate"]


def _rebuild_bank_for_loading(module: LoRAClassifier, state_dict, prefix, *args) -> None:
    """Recreate the adapters, logits and head sizes a state dict holds, so it loads as is.

    Only a dict saved from a LoRAClassifier (it carries the bank's extra state) rebuilds the
    bank; a partial dict (say, a head alone) leaves the adapters as they are.
    """
    resize_head_like(module.head, state_dict, prefix + "head.")
    if prefix + "_extra_state" not in state_dict:
        return
    gate_prefix = prefix + "gate.logits."
    names = [k[len(gate_prefix):] for k in state_dict if k.startswith(gate_prefix)]
    names.sort(key=lambda n: int(n.rsplit("_", 1)[-1]) if n.rsplit("_", 1)[-1].isdigit() else 0)
    module.unmerge()
    for name in [n for n in module.adapter_names if n not in names]:
        module.prune(name)
        module.pruned_adapters.remove(name)
    for name in names:
        if name in module.gate.logits:
            continue
        for layer in module.lora_layers().values():
            layer.add_adapter(name)
        module.gate.add(name, module.init_logit)
    candidate = state_dict[prefix + "_extra_state"].get("candidate")
    for name in names:
        if name != candidate:  # finished adapters load frozen, as they were saved
            for layer in module.lora_layers().values():
                layer.adapters[name].set_requires_grad(adapter=False, magnitude=False)
            module.gate.logits[name].requires_grad_(False)
