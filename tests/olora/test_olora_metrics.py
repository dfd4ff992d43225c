"""O-LoRA's TensorBoard read-outs: a TensorboardLogger run writes the newest adapter's overlap
after each experience and the orthogonality term per epoch, equal to independent recomputations."""

from __future__ import annotations

import pytest
import torch
from avalanche.core import SupervisedPlugin
from avalanche.evaluation.metrics import loss_metrics
from avalanche.logging import TensorboardLogger
from avalanche.training.determinism.rng_manager import RNGManager
from avalanche.training.plugins import EvaluationPlugin
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from avalanche_litelora.adapters.access import adapter_model_of
from avalanche_litelora.lora.model import LoRAClassifier
from avalanche_litelora.olora import OLoRAStrategy, olora_metrics
from builders import MLP_TARGETS, digits_benchmark, sgd, single_thread, tiny_mlp

one_thread = pytest.fixture(autouse=True, scope="module")(single_thread)

N_EXP, EPOCHS = 3, 2


class OrthogonalTermOracle(SupervisedPlugin):
    """Recomputes ``sum |A_old A_new^T|`` entry by entry before each backward (a user plugin
    runs before the strategy's own, on the same parameters), and keeps each epoch's mean."""

    def __init__(self):
        super().__init__()
        self.epoch_means, self._values = [], []

    def before_backward(self, strategy, **kwargs):
        model = adapter_model_of(strategy, LoRAClassifier)
        total = 0.0
        for layer in model.lora_layers().values():
            new = layer.adapters[model.candidate]
            for key in new.A:
                for name, old in layer.adapters.items():
                    if name != model.candidate:
                        total += float(torch.einsum("id,jd->ij", old.A[key].detach(), new.A[key].detach()).abs().sum())
        self._values.append(total)

    def after_training_epoch(self, strategy, **kwargs):
        self.epoch_means.append(sum(self._values) / len(self._values))
        self._values = []


def _run(log_dir, lambda_orth):
    logger = TensorboardLogger(tb_log_dir=log_dir)
    evaluator = EvaluationPlugin(loss_metrics(epoch=True), *olora_metrics(), loggers=[logger])
    RNGManager.set_random_seeds(1993)
    model = tiny_mlp()
    oracle = OrthogonalTermOracle()
    strategy = OLoRAStrategy(model=model, optimizer=sgd(model), rank=4, target_modules=MLP_TARGETS,
                             train_mb_size=32, train_epochs=EPOCHS, eval_mb_size=512, evaluator=evaluator,
                             lambda_orth=lambda_orth, plugins=[oracle])
    overlaps = []
    for exp in list(digits_benchmark(5).train_stream)[:N_EXP]:
        strategy.train(exp)
        overlaps.append(strategy.overlap() if len(strategy.adapter_model.adapter_names) > 1 else None)
    logger.writer.close()
    events = EventAccumulator(str(log_dir), size_guidance={"scalars": 0})
    events.Reload()
    return overlaps, oracle, events


@pytest.fixture(scope="module")
def logged_run(tmp_path_factory):
    return _run(tmp_path_factory.mktemp("tb"), lambda_orth=0.5)


def _series(events, tag):
    return {e.step: e.value for e in events.Scalars(tag)}


def test_the_newest_adapters_overlap_is_logged_from_the_second_experience(logged_run):
    overlaps, _, events = logged_run
    tags = [t for t in events.Tags()["scalars"] if t.startswith("OLoRA/overlap/")]
    assert sorted(tags) == sorted(f"OLoRA/overlap/{where}" for where in overlaps[-1])
    for where in overlaps[-1]:
        assert _series(events, f"OLoRA/overlap/{where}") == {
            i: pytest.approx(overlaps[i][where], rel=1e-6) for i in range(1, N_EXP)}
    mean = _series(events, "OLoRA/overlap_mean")
    assert mean == {i: pytest.approx(sum(overlaps[i].values()) / len(overlaps[i]), rel=1e-6) for i in range(1, N_EXP)}


def test_the_orthogonality_term_is_logged_per_epoch_at_avalanches_epoch_steps(logged_run):
    _, oracle, events = logged_run
    logged = events.Scalars("OLoRA/orthogonal_loss")
    loss_steps = [e.step for e in events.Scalars("Loss_Epoch/train_phase/train_stream/Task000")]
    assert [e.step for e in logged] == loss_steps and len(logged) == N_EXP * EPOCHS
    assert [e.value for e in logged] == pytest.approx(oracle.epoch_means, rel=1e-5, abs=1e-7)
    assert all(e.value == 0 for e in logged[:EPOCHS])  # the first adapter has no earlier one
    assert all(e.value > 0 for e in logged[EPOCHS:])
    assert "OLoRA/l2_loss" not in events.Tags()["scalars"]  # lambda_l2 = 0: never added


def test_without_the_penalty_the_overlap_is_still_logged_and_the_term_is_not(tmp_path):
    overlaps, _, events = _run(tmp_path, lambda_orth=0.0)
    tags = events.Tags()["scalars"]
    assert "OLoRA/orthogonal_loss" not in tags
    assert _series(events, "OLoRA/overlap_mean")[N_EXP - 1] == pytest.approx(
        sum(overlaps[-1].values()) / len(overlaps[-1]), rel=1e-6)
