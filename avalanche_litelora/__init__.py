"""avalanche-litelora: gated, prunable LoRA adapter banks for continual learning in Avalanche."""

from avalanche_litelora.lora import AdapterGate, LoRALinear, inject_lora
from avalanche_litelora.models import LoRAClassifier
from avalanche_litelora.training import (
    LiteLoRAStrategy,
    PerTaskLoRAStrategy,
    SequentialLoRAStrategy,
)
from avalanche_litelora.training.plugins import (
    BankGuardPlugin,
    CurrentClassesLossPlugin,
    FreezeBankPlugin,
    GateSelectionPlugin,
    MergedEvalPlugin,
    OpenCandidatePlugin,
    PruneClosedCandidatePlugin,
)

__version__ = "0.1.0"

__all__ = [
    "LiteLoRAStrategy",
    "PerTaskLoRAStrategy",
    "SequentialLoRAStrategy",
    "LoRAClassifier",
    "LoRALinear",
    "AdapterGate",
    "inject_lora",
    "BankGuardPlugin",
    "OpenCandidatePlugin",
    "GateSelectionPlugin",
    "PruneClosedCandidatePlugin",
    "FreezeBankPlugin",
    "CurrentClassesLossPlugin",
    "MergedEvalPlugin",
]
