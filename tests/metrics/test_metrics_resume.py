"""The per-experience metrics survive a checkpoint / resume (the state-dict checkpoints)."""

import warnings

import pytest
from avalanche.logging import TensorboardLogger
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from avalanche_litelora import LiteLoRAStrategy
from avalanche_litelora.evaluation import litelora_evaluator
from avalanche_litelora.metrics import accuracy_row
from avalanche_litelora.training.checkpoint import load_checkpoint, save_checkpoint
from builders import digits_benchmark, lite_kwargs, sgd, tiny_mlp

pytestmark = pytest.mark.slow  # trains, checkpoints and resumes a logged run


def _strategy(log_dir):
    model = tiny_mlp()
    evaluator = litelora_evaluator(log_dir, interactive=False)
    return LiteLoRAStrategy(
        model=model, optimizer=sgd(model),
        **lite_kwargs(evaluator=evaluator, train_epochs=2, selection_mb_size=32),
    )


def test_resumed_run_continues_the_curves_at_the_next_experience(tmp_path):
    benchmark = digits_benchmark(2)
    first = _strategy(tmp_path / "before")
    first.train(benchmark.train_stream[0])
    row0 = accuracy_row(first.eval(benchmark.test_stream), 2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # images are left out of checkpoints by design, silently
        save_checkpoint(first, tmp_path / "ckpt.pt")

    resumed = _strategy(tmp_path / "after")
    load_checkpoint(resumed, tmp_path / "ckpt.pt")
    resumed.train(benchmark.train_stream[1])
    row1 = accuracy_row(resumed.eval(benchmark.test_stream), 2)
    for logger in resumed.evaluator.loggers:
        if isinstance(logger, TensorboardLogger):
            logger.writer.close()
    events = EventAccumulator(str(tmp_path / "after"), size_guidance={"images": 0, "scalars": 0})
    events.Reload()
    forgetting = events.Scalars("Forgetting_Curve/test_stream/Exp000")
    assert [e.step for e in forgetting] == [1]
    assert forgetting[0].value == pytest.approx(row0[0] - row1[0], abs=1e-6)
    anytime = events.Scalars("Anytime_Accuracy/test_stream")
    assert anytime[0].step == 1
    assert anytime[0].value == pytest.approx((row0[0] + (row1[0] + row1[1]) / 2) / 2, abs=1e-6)
    assert [e.step for e in events.Scalars("Bank/active_adapters")] == [1]
    assert [e.step for e in events.Images("Images/adapter_overlap")] == [1]


def test_only_values_that_are_neither_data_nor_images_are_warned_about():
    import types

    import torch
    from avalanche.evaluation.metric_results import TensorImage

    from avalanche_litelora.training.checkpoint import evaluator as saved

    image = TensorImage(torch.zeros(3, 4, 4))
    fake = types.SimpleNamespace(
        metrics=[],
        all_metric_results={"Top1": ([0], [0.5]), "Images/m": ([0], [image]), "Odd/x": ([0], [object()])},
        last_metric_results={"Top1": 0.5, "Images/m": image, "Odd/x": object()},
    )
    saved._warned_unsaved_metrics.discard("Odd/x")
    with pytest.warns(UserWarning, match=r"\['Odd/x'\]") as caught:
        state = saved._capture_evaluator(fake)
    assert len(caught) == 1 and "Images/m" not in str(caught[0].message)
    assert state["last_metric_results"] == {"Top1": 0.5}
