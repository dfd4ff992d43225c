"""InfLoRA's settings (a :class:`~avalanche_litelora.lora.config.LoRABankConfig` with its own fields).

Defaults are the official code's CIFAR-100 configuration (``configs/cifar100_inflora.json`` of
liangyanshuo/InfLoRA: rank 10, ``lamb`` 0.95, ``lame`` 1.0); ImageNet-R uses ``lamb`` 0.98
(``configs/mimg10_inflora.json``). Optimiser settings (Adam, lr 5e-4, 20 epochs, batch 128)
belong to the optimizer and template the user passes, as for every strategy here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Optional, Sequence

from avalanche_litelora.lora.config import LoRABankConfig

#: The parts of timm's fused ``qkv`` an adapter can write to.
QKV_PARTS = ("q", "k", "v")

#: The bank settings that make the adapters a plain sum ``sum_t B_t A_t`` (no SD-LoRA
#: rescaling at the task boundary: a finished adapter's update must stay the one whose
#: interference was designed away, or measured).
PLAIN_SUM_MODEL = {"magnitude_scope": "per_layer", "boundary": "preserve"}


def check_qkv_parts(config, name: str = "qkv_parts") -> None:
    """A non-empty sequence of distinct names among q, k, v."""
    value = getattr(config, name)
    if (isinstance(value, str) or not isinstance(value, Sequence) or not value
            or any(p not in QKV_PARTS for p in value) or len(set(value)) != len(value)):
        config._fail(name, f"a non-empty sequence of distinct names among {QKV_PARTS}", ValueError)


@dataclass
class InfLoRAConfig(LoRABankConfig):
    """InfLoRA: each task's ``A`` designed outside the earlier tasks' input space, ``B`` trains.

    :param threshold_start: DualGPM's energy threshold for the first task (official ``lamb``).
    :param threshold_end: the threshold it reaches, linearly, at ``total_tasks`` (``lame``).
    :param total_tasks: the stream's length in the threshold schedule (default: the length
        of the training stream the first experience comes from).
    :param qkv_parts: the slices of a fused ``qkv`` that get the adapter; the official code
        adapts k and v (``models/vit_inflora.py`` L191-194, L246-249). Other layers are
        adapted on their whole output.
    """

    settings_of = "InfLoRA"

    threshold_start: float = 0.95
    threshold_end: float = 1.0
    total_tasks: Optional[int] = None
    qkv_parts: Sequence[str] = ("k", "v")

    def __post_init__(self):
        super().__post_init__()
        for name in ("threshold_start", "threshold_end"):
            self._real(name, positive=True)
            if getattr(self, name) > 1.0:
                self._fail(name, "in (0, 1]")
        if self.threshold_end < self.threshold_start:
            self._fail("threshold_end", f"at least threshold_start ({self.threshold_start})")
        if self.total_tasks is not None:
            self._count("total_tasks", 1)
        check_qkv_parts(self)
        self.qkv_parts = tuple(self.qkv_parts)

    def model_keywords(self) -> Dict[str, Any]:
        return {**super().model_keywords(), **PLAIN_SUM_MODEL}
