"""Models assembled from the LoRA blocks."""

from avalanche_litelora.models.lora_classifier import LoRAClassifier

__all__ = ["LoRAClassifier"]
