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


#: Where an adapter's SD-LoRA magnitude lives: one scalar shared by every layer and slice
#: (the reference code's and SD-LoRA's), or one per layer and output slice.
MAGNITUDE_SCOPES = ("per_adapter", "per_layer")
#: What happens to a finished adapter at the task boundary: ``"rescale"``: when the next
#: experience opens it is normalised keeping its magnitude, so its output changes by
#: ``1/(||B|| ||A||)``, and the first adapter's magnitude does not train during the first
#: experience, as the reference code does; ``"preserve"``: the norms are folded into the
#: per-layer magnitudes when it is frozen, so nothing it computes changes.
BOUNDARIES = ("rescale", "preserve")
