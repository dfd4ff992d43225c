"""The numbers users watch on a LoRA bank: which adapters are open, what they store, their
logits and magnitudes. A mixin of :class:`~avalanche_litelora.lora.model.LoRAClassifier`,
kept apart so the model's file holds its lifecycle."""

from __future__ import annotations

from typing import Dict, List


class BankReadoutsMixin:
    """Read-outs over ``self.gate``, ``self.shared_magnitudes`` and ``self.lora_layers()``."""

    @property
    def active_adapters(self) -> List[str]:
        """Adapters whose gate is open at test time."""
        return [n for n in self.adapter_names if self.gate.is_open(n)]

    def adapter_parameter_count(self) -> int:
        """Numbers stored for the bank: A, B and magnitudes of every layer, plus the logits."""
        count = sum(t.numel() for t in [*self.gate.logits.values(), *self.shared_magnitudes.values()])
        for layer in self.lora_layers().values():
            count += sum(p.numel() for p in layer.adapters.parameters())
        return count

    def adapter_parameter_bytes(self) -> int:
        total = sum(t.numel() * t.element_size()
                    for t in [*self.gate.logits.values(), *self.shared_magnitudes.values()])
        for layer in self.lora_layers().values():
            total += sum(p.numel() * p.element_size() for p in layer.adapters.parameters())
        return total

    def gate_logits(self) -> Dict[str, float]:
        return {n: float(l.detach()) for n, l in self.gate.logits.items()}

    def magnitudes(self) -> Dict[str, Dict[str, float]]:
        """Per adapter: ``{"<layer>.<slice>": alpha}`` for every wrapped layer (a shared
        magnitude times the layer's own)."""
        out: Dict[str, Dict[str, float]] = {n: {} for n in self.adapter_names}
        for layer_name, layer in self.lora_layers().items():
            for name, adapter in layer.adapters.items():
                shared = float(self.shared_magnitudes[name].detach()) if name in self.shared_magnitudes else 1.0
                for key, alpha in adapter.magnitude.items():
                    out[name][f"{layer_name}.{key}"] = shared * float(alpha.detach())
        return out
