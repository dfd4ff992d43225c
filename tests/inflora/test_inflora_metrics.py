"""InfLoRA's TensorBoard read-outs: a TensorboardLogger run writes the memory's dimensions and
threshold after each experience, equal to what the strategy's memory holds."""

from __future__ import annotations

import warnings

import pytest
from avalanche.evaluation.metrics import accuracy_metrics
from avalanche.logging import TensorboardLogger
from avalanche.training.determinism.rng_manager import RNGManager
from avalanche.training.plugins import EvaluationPlugin
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from avalanche_litelora.inflora import InfLoRAStrategy, InfLoRASubspaceMetric, inflora_metrics
from builders import MLP_TARGETS, digits_benchmark, sgd, single_thread, tiny_mlp

one_thread = pytest.fixture(autouse=True, scope="module")(single_thread)

N_EXP = 3


@pytest.fixture(scope="module")
def logged_run(tmp_path_factory):
    log_dir = tmp_path_factory.mktemp("tb")
    logger = TensorboardLogger(tb_log_dir=log_dir)
    evaluator = EvaluationPlugin(accuracy_metrics(stream=True), *inflora_metrics(), loggers=[logger])
    RNGManager.set_random_seeds(1993)
    model = tiny_mlp()
    strategy = InfLoRAStrategy(model=model, optimizer=sgd(model), rank=4, target_modules=MLP_TARGETS,
                               train_mb_size=32, train_epochs=1, eval_mb_size=512, evaluator=evaluator)
    dims = []
    for exp in list(digits_benchmark(5).train_stream)[:N_EXP]:
        strategy.train(exp)
        dims.append(strategy.subspace_dimensions())
    logger.writer.close()
    events = EventAccumulator(str(log_dir), size_guidance={"scalars": 0})
    events.Reload()
    return strategy, dims, events


def _series(events, tag):
    return {e.step: e.value for e in events.Scalars(tag)}


def test_the_subspace_dimension_of_every_layer_is_logged_after_each_experience(logged_run):
    strategy, dims, events = logged_run
    for layer in MLP_TARGETS:
        assert _series(events, f"InfLoRA/subspace_dim/{layer}") == {i: d[layer] for i, d in enumerate(dims)}
    widths = {name: m.basis.shape[0] for name, m in strategy.subspace_memory.memory.items()}
    fraction = _series(events, "InfLoRA/protected_fraction")
    for i, d in enumerate(dims):
        assert fraction[i] == pytest.approx(sum(d.values()) / sum(widths.values()))
    assert list(fraction.values()) == sorted(fraction.values())  # the memory only grows


def test_the_threshold_of_each_update_is_logged(logged_run):
    strategy, _, events = logged_run
    assert list(_series(events, "InfLoRA/threshold").values()) == pytest.approx(strategy.subspace_memory.thresholds)
    assert strategy.subspace_memory.thresholds == pytest.approx([0.95, 0.96, 0.97])


def test_another_strategy_is_skipped_with_one_warning():
    class NotInfLoRA:
        plugins = []

    metric = InfLoRASubspaceMetric()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert metric.after_training_exp(NotInfLoRA()) == [] and metric.after_training_exp(NotInfLoRA()) == []
    assert len([w for w in caught if "no InfLoRA subspace memory" in str(w.message)]) == 1
