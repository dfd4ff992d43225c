"""The phases of an experience in the LoRA bank, and what each one trains."""

from __future__ import annotations

import enum


class Phase(enum.Enum):
    """What trains: the experience's epochs (and between experiences), the gate's selection
    phase, or the head refit after a pruning."""

    TRAIN = "train"  # the candidate, its magnitude, the head; earlier magnitudes if asked
    SELECTION = "selection"  # the candidate's gate logit alone
    HEAD_REFIT = "head_refit"  # the head alone


#: Per phase: (candidate adapter, candidate magnitude, candidate logit, head).
PHASE_TRAINS = {
    Phase.TRAIN: (True, True, False, True),
    Phase.SELECTION: (False, False, True, False),
    Phase.HEAD_REFIT: (False, False, False, True),
}
