"""O-LoRA (Wang et al., Findings of EMNLP 2023) as an Avalanche strategy on the adapter bank."""

from __future__ import annotations

from typing import Dict, List, Optional

from avalanche.core import BasePlugin
from torch import nn

from avalanche_litelora.adapters.config import accepts_config_keywords
from avalanche_litelora.inflora.plain_sum import check_ready_model
from avalanche_litelora.olora.config import OLoRAConfig
from avalanche_litelora.olora.plugins import AdapterScalePlugin, OrthogonalityPlugin, bank_overlap
from avalanche_litelora.lora import plugins as bank
from avalanche_litelora.lora.strategies import LoRABankStrategy
from avalanche_litelora.registry import register


@register
@accepts_config_keywords
class OLoRAStrategy(LoRABankStrategy):
    """O-LoRA: one adapter per experience, trained with its ``A`` pushed orthogonal to the
    frozen adapters' ``A``; earlier adapters stay frozen and summed.

    The penalty is ``lambda_orth * sum |A_old A_new^T|`` (+ ``lambda_l2`` times the new
    factors' norms), summed over the adapted layers. Runs on any backbone the bank adapts
    (a ViT's ``qkv``, a transformers encoder's ``query`` / ``value``, an MLP's Linears).
    Settings: :class:`~avalanche_litelora.olora.config.OLoRAConfig`.
    """

    config_class = OLoRAConfig
    method_name = "O-LoRA"

    def _check_model(self, model: nn.Module) -> None:
        check_ready_model(model, type(self).__name__, allow_adapters=True)

    def _bank_plugins(self, config: OLoRAConfig) -> List[BasePlugin]:
        return [
            bank.OpenCandidatePlugin(train_past_magnitudes=False),
            AdapterScalePlugin(config.scale),
            OrthogonalityPlugin(config.lambda_orth, config.lambda_l2),
            bank.FreezeBankPlugin(),
        ]

    def overlap(self, name: Optional[str] = None) -> Dict[str, float]:
        """Per layer and slice, the overlap of adapter ``name`` (default: the newest) with the others."""
        model = self.adapter_model
        name = name if name is not None else model.adapter_names[-1]
        return bank_overlap(model, name)
