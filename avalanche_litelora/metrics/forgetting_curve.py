"""The forgetting curve: one point per training experience, with the experience index as x.

Avalanche's own forgetting metrics plot against training iterations; this one emits, after
the evaluation that follows training experience ``i``, at ``x = i``:

- ``Forgetting_Curve/<stream>/Exp<j>``: forgetting of each earlier experience ``j``
  (best accuracy it had after an earlier experience, minus its accuracy now);
- ``Forgetting_Curve/<stream>/average``: their mean (0 after the first experience);
- ``Accuracy_Seen/<stream>``: mean accuracy over the experiences trained so far;
- ``Anytime_Accuracy/<stream>``: mean of ``Accuracy_Seen`` over steps 0..i.

Accuracies are per experience, averaged with equal weight per experience (the helpers in
:mod:`avalanche_litelora.metrics.accuracy_matrix` compute every figure).
"""

from __future__ import annotations

import warnings

from avalanche_litelora.metrics.accuracy_matrix import (
    average_anytime_accuracy,
    average_forgetting,
    forgetting_per_experience,
)
from avalanche_litelora.metrics.recorder import RecordedMatrixMetric
from avalanche_litelora.registry import register


@register
class ForgettingCurveMetric(RecordedMatrixMetric):
    """Forgetting per earlier experience and on average, accuracy so far, anytime accuracy."""

    def __init__(self, stream: str = "test_stream"):
        super().__init__(stream)
        self._warned = False

    def values_at(self, step: int) -> dict:
        stream = self.recorder.stream
        matrix = self.recorder.seen_matrix(step)
        values = {f"Accuracy_Seen/{stream}": sum(matrix[step]) / len(matrix[step])}
        if self.recorder.history_complete(step):
            seen = self.recorder.trained
            for k, forgetting in forgetting_per_experience(matrix).items():
                values[f"Forgetting_Curve/{stream}/Exp{seen[k]:03d}"] = forgetting
            values[f"Forgetting_Curve/{stream}/average"] = average_forgetting(matrix)
            values[f"Anytime_Accuracy/{stream}"] = average_anytime_accuracy(matrix)
        elif not self._warned:
            self._warned = True
            warnings.warn(
                f"ForgettingCurveMetric: no evaluation on '{stream}' after some earlier training "
                "experience, so forgetting and anytime accuracy are not emitted; evaluate on "
                f"'{stream}' after every experience",
                RuntimeWarning,
            )
        return values

    def __str__(self) -> str:
        return "ForgettingCurve"
