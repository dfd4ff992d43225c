"""O-LoRA's settings (a :class:`~avalanche_litelora.lora.config.LoRABankConfig` with its own fields).

Defaults are the official code's (cmnfriend/O-LoRA): ``lamda_1`` 0.5 and ``lamda_2`` 0
(``src/run_uie_lora.py`` L240-241, the values every ``scripts/order_*.sh`` passes).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Optional

from avalanche_litelora.lora.config import LoRABankConfig
from avalanche_litelora.inflora.config import PLAIN_SUM_MODEL


@dataclass
class OLoRAConfig(LoRABankConfig):
    """O-LoRA: a new adapter per task, its ``A`` pushed orthogonal to the frozen ones'.

    :param lambda_orth: weight of ``sum |A_old A_new^T|`` (the paper's lambda_1).
    :param lambda_l2: weight of ``||A_new||_F + ||B_new||_F`` (lambda_2).
    :param lora_alpha: the update is ``lora_alpha / rank * B A`` as in peft (the official
        runs use 32 with rank 8); ``None``: ``B A``, the scale of every other method on this bank.
    """

    settings_of = "O-LoRA"

    lambda_orth: float = 0.5
    lambda_l2: float = 0.0
    lora_alpha: Optional[float] = None

    def __post_init__(self):
        super().__post_init__()
        self._real("lambda_orth", at_least_zero=True)
        self._real("lambda_l2", at_least_zero=True)
        if self.lora_alpha is not None:
            self._real("lora_alpha", positive=True)

    @property
    def scale(self) -> float:
        """The factor on every adapter's ``B A``."""
        return 1.0 if self.lora_alpha is None else self.lora_alpha / self.rank

    def model_keywords(self) -> Dict[str, Any]:
        return {**super().model_keywords(), **PLAIN_SUM_MODEL}
