"""O-LoRA: orthogonal subspace learning for continual learning (Wang et al., 2023) on the bank."""

from avalanche_litelora.olora.config import OLoRAConfig
from avalanche_litelora.olora.metrics import OLoRAOverlapMetric, OLoRAPenaltyMetric, olora_metrics
from avalanche_litelora.olora.orthogonality import l2_loss, orthogonality_loss, overlap
from avalanche_litelora.olora.plugins import AdapterScalePlugin, OrthogonalityPlugin
from avalanche_litelora.olora.strategy import OLoRAStrategy

__all__ = [
    "OLoRAConfig",
    "OLoRAStrategy",
    "AdapterScalePlugin",
    "OrthogonalityPlugin",
    "OLoRAOverlapMetric",
    "OLoRAPenaltyMetric",
    "olora_metrics",
    "orthogonality_loss",
    "l2_loss",
    "overlap",
]
