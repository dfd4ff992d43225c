"""The TensorBoard views a continual-learning researcher draws, written into a run's events.

- :class:`AccuracyCurveMetric`: ``Accuracy_Curve/<stream>/Exp<j>``, the accuracy of every
  experience trained so far, after each training experience (x = its index), so one chart
  holds the rows of the accuracy matrix as curves;
- :func:`custom_scalars_layout` / :func:`write_layout`: a ``custom_scalars`` layout with one
  chart for those curves, one for forgetting per experience and charts for the bank;
- :func:`write_hparams`: a ``hparams`` session (hyper-parameters and final metrics) for a
  finished run, so a sweep or a suite becomes one sortable table in the HParams tab.
"""

from __future__ import annotations

import math
import numbers
import re
import time
from pathlib import Path
from typing import Any, Dict, Mapping, Tuple, Union


from avalanche_litelora.metrics.recorder import RecordedMatrixMetric
from avalanche_litelora.registry import register

#: Subfolder of a run's log dir that holds its HParams session (and nothing else), so the
#: HParams table lists only the metrics written there, not every scalar of the run.
HPARAMS_RUN = "hparams"


@register
class AccuracyCurveMetric(RecordedMatrixMetric):
    """``Accuracy_Curve/<stream>/Exp<j>`` for each experience ``j`` trained so far, at x = step.

    Fed by the same recorder rules as :class:`ForgettingCurveMetric`: only evaluations of
    ``stream`` between training experiences count, once a row holds every trained experience.
    """

    def values_at(self, step: int) -> dict:
        row = self.recorder.rows[step]
        return {f"Accuracy_Curve/{self.recorder.stream}/Exp{j:03d}": row[j] for j in self.recorder.trained[: step + 1]}

    def __str__(self) -> str:
        return "AccuracyCurve"


def custom_scalars_layout(stream: str = "test_stream", bank: bool = True) -> Dict[str, Dict[str, list]]:
    """The layout in ``SummaryWriter.add_custom_scalars`` form: ``{category: {title: [kind, regexes]}}``.

    Tags are anchored regexes over what :class:`AccuracyCurveMetric`,
    :class:`~avalanche_litelora.metrics.ForgettingCurveMetric` and
    :class:`~avalanche_litelora.metrics.BankReadoutMetric` write (x = experience index).
    """
    if not isinstance(stream, str) or not stream:
        raise ValueError(f"stream must be a stream name such as 'test_stream', got {stream!r}")
    s = re.escape(stream)
    layout: Dict[str, Dict[str, list]] = {
        "Continual learning": {
            f"Accuracy of every experience ({stream})": [
                "Multiline", [rf"^Accuracy_Curve/{s}/Exp\d+$", rf"^Accuracy_Seen/{s}$"]],
            f"Forgetting per experience ({stream})": ["Multiline", [rf"^Forgetting_Curve/{s}/.+$"]],
            f"Anytime accuracy ({stream})": ["Multiline", [rf"^Anytime_Accuracy/{s}$"]],
        }
    }
    if bank:
        layout["Adapter bank"] = {
            "Active and pruned adapters": ["Multiline", [r"^Bank/(active|pruned)_adapters$"]],
            "Adapter parameters": ["Multiline", [r"^Bank/adapter_parameters$"]],
            "Gate logits": ["Multiline", [r"^Bank/gate_logit/.+$"]],
        }
    return layout


def write_layout(writer, stream: str = "test_stream", bank: bool = True) -> None:
    """Write :func:`custom_scalars_layout` into a torch ``SummaryWriter``'s event file."""
    writer.add_custom_scalars(custom_scalars_layout(stream, bank))
    writer.flush()


def _check_values(kind: str, values: Mapping[str, Any], allowed: tuple) -> Dict[str, Any]:
    if not isinstance(values, Mapping) or not values:
        raise ValueError(f"{kind} must be a non-empty dict of name -> value, got {values!r}")
    checked = {}
    for name, value in values.items():
        if not isinstance(name, str) or not name:
            raise ValueError(f"{kind} names must be non-empty strings, got {name!r}")
        if value is None:  # does not apply to this run (e.g. lambda of a baseline)
            continue
        if not isinstance(value, allowed):
            raise TypeError(f"{kind}[{name!r}] = {value!r}: expected one of "
                            f"{', '.join(t.__name__ for t in allowed)}")
        checked[name] = value.item() if hasattr(value, "item") else value
    return checked


def write_hparams(log_dir: Union[str, Path], hparams: Mapping[str, Any], metrics: Mapping[str, float]) -> Path:
    """One HParams session for a finished run, in ``<log_dir>/hparams``; returns that folder.

    ``hparams``: str / bool / number values (``None`` = not applicable, left out);
    ``metrics``: finite numbers, written as scalars ``hparams/<name>``. No experiment
    summary is written, so TensorBoard builds the table from every session under its
    logdir: runs with different settings (LiteLoRA's lambda, a baseline without one) share it.
    """
    from torch.utils.tensorboard import SummaryWriter
    from torch.utils.tensorboard.summary import hparams as hparams_summaries

    if not isinstance(log_dir, (str, Path)) or not str(log_dir):
        raise ValueError(f"log_dir must be a folder path, got {log_dir!r}")
    values = _check_values("hparams", hparams, (str, bool, numbers.Real))
    scores = _check_values("metrics", metrics, (numbers.Real,))
    bad = [k for k, v in scores.items() if isinstance(v, bool) or not math.isfinite(float(v))]
    if bad or not values or not scores:
        raise ValueError(f"metrics must be finite numbers and at least one hparam and metric given; bad: {bad}")
    tags = {name: f"{HPARAMS_RUN}/{name}" for name in scores}
    _, session_start, session_end = hparams_summaries(values, {tags[k]: float(v) for k, v in scores.items()})
    folder = Path(log_dir) / HPARAMS_RUN
    writer = SummaryWriter(str(folder))
    try:
        file_writer = writer._get_file_writer()
        file_writer.add_summary(session_start, walltime=time.time())
        for name, value in scores.items():
            writer.add_scalar(tags[name], float(value), global_step=0)
        file_writer.add_summary(session_end, walltime=time.time())
    finally:
        writer.close()
    return folder


def hparams_of_run(row: Mapping[str, Any], rank: Any = None) -> Tuple[Dict[str, Any], Dict[str, float]]:
    """A benchmark results row (``benchmarks/runner.py``) as (hyper-parameters, metrics).

    ``rank`` is the adapters' LoRA rank (``None`` for the fine-tuned baselines).
    """
    lam = row.get("lambda_sparsity")
    hparams = {
        "stream": str(row["stream"]),
        "strategy": str(row["strategy"]),
        "lambda": float(lam) if isinstance(lam, numbers.Real) and row["strategy"] == "litelora" else None,
        "rank": int(rank) if isinstance(rank, numbers.Integral) else None,
        "epochs": int(row["epochs"]),
        "seed": int(row["seed"]),
        "train_per_experience": str(row.get("train_per_experience", "")),
    }
    metrics = {
        "final_accuracy": row["final_acc"],
        "anytime_accuracy": row["avg_anytime_acc"],
        "forgetting": row["forgetting"],
        "active_adapters": row["active_adapters"],
    }
    return hparams, {k: float(v) for k, v in metrics.items() if _finite(v)}


def _finite(value: Any) -> bool:
    return isinstance(value, numbers.Real) and math.isfinite(float(value))
