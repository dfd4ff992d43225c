"""One line for a ready evaluator: Avalanche's standard metrics, the LiteLoRA ones, TensorBoard.

    strategy = LiteLoRAStrategy(..., evaluator=litelora_evaluator("tb_logs/run1"))
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import List, Sequence, Union

from avalanche.evaluation import PluginMetric
from avalanche.evaluation.metrics import accuracy_metrics, forgetting_metrics, loss_metrics
from avalanche.logging import BaseLogger, InteractiveLogger, TensorboardLogger
from avalanche.training.plugins import EvaluationPlugin

from avalanche_litelora.metrics.bank_readouts import BankReadoutMetric
from avalanche_litelora.metrics.forgetting_curve import ForgettingCurveMetric
from avalanche_litelora.metrics.heatmaps import AccuracyMatrixHeatmapMetric
from avalanche_litelora.metrics.redundancy_metric import AdapterRedundancyMetric
from avalanche_litelora.metrics.tensorboard_views import AccuracyCurveMetric, write_layout


def litelora_metrics(
    *, stream: str = "test_stream", bank: bool = True, redundancy: bool = True, images: bool = True
) -> List[PluginMetric]:
    """The project's per-experience metrics (x = experience index), for your own ``EvaluationPlugin``.

    ``stream`` is the evaluation stream whose accuracies make the accuracy matrix; ``bank`` and
    ``redundancy`` read the adapter bank (skipped, with one warning, for other models);
    ``images=False`` leaves out the heatmaps.
    """
    if not isinstance(stream, str) or not stream:
        raise ValueError(f"stream must be a stream name such as 'test_stream', got {stream!r}")
    metrics: List[PluginMetric] = [AccuracyCurveMetric(stream), ForgettingCurveMetric(stream)]
    if images:
        metrics.append(AccuracyMatrixHeatmapMetric(stream))
    if bank:
        metrics.append(BankReadoutMetric())
    if redundancy:
        metrics.append(AdapterRedundancyMetric(image=images))
    return metrics


def quiet_evaluator(**accuracy) -> EvaluationPlugin:
    """Accuracy metrics (``accuracy_metrics``'s keywords) and no logger, for a caller that prints
    its own tables: Avalanche's "No loggers specified" warning would only say what it chose."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="No loggers specified", category=UserWarning)
        return EvaluationPlugin(accuracy_metrics(**accuracy), loggers=[])


def litelora_evaluator(
    log_dir: Union[str, Path],
    *,
    stream: str = "test_stream",
    interactive: bool = True,
    bank: bool = True,
    redundancy: bool = True,
    images: bool = True,
    layout: bool = True,
    extra_loggers: Sequence[BaseLogger] = (),
) -> EvaluationPlugin:
    """Accuracy / loss / forgetting (Avalanche's), :func:`litelora_metrics`, an interactive
    progress logger and a ``TensorboardLogger`` writing to ``log_dir``; with ``layout``, the
    custom-scalars layout of :mod:`~avalanche_litelora.metrics.tensorboard_views` too (one
    chart for the accuracy of every experience, one for forgetting, charts for the bank).

    Evaluate on ``stream`` after every training experience (``strategy.eval(test_stream)``
    or ``eval_every=0`` with ``eval_streams=[test_stream]``) for the per-experience curves.
    """
    if not isinstance(log_dir, (str, Path)) or not str(log_dir):
        raise ValueError(f"log_dir must be a folder path, got {log_dir!r}")
    metrics = litelora_metrics(stream=stream, bank=bank, redundancy=redundancy, images=images)
    loggers: List[BaseLogger] = [InteractiveLogger()] if interactive else []
    loggers += list(extra_loggers)
    tensorboard = TensorboardLogger(tb_log_dir=log_dir)
    if layout:
        write_layout(tensorboard.writer, stream, bank=bank)
    loggers.append(tensorboard)
    return EvaluationPlugin(
        accuracy_metrics(epoch=True, experience=True, stream=True),
        loss_metrics(epoch=True, experience=True, stream=True),
        forgetting_metrics(experience=True, stream=True),
        *metrics,
        loggers=loggers,
    )
