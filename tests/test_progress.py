"""Long work says what it does and how far it is; one switch silences it (issue 26, item 3)."""

import os

import pytest
import torch
from avalanche.core import SupervisedPlugin
from avalanche.logging import InteractiveLogger
from avalanche.evaluation.metrics import accuracy_metrics
from avalanche.training.plugins import EvaluationPlugin

from avalanche_litelora import LiteLoRAStrategy, PerTaskLoRAStrategy, train_stream
from avalanche_litelora import demo
from avalanche_litelora.progress import PROGRESS_ENV, Countdown, format_duration, progress_enabled, switched
from builders import MLP_TARGETS, digits_benchmark, lite_kwargs, quiet_evaluator, sgd, single_thread, tiny_mlp

one_thread = pytest.fixture(scope="module", autouse=True)(single_thread)


@pytest.fixture(autouse=True)
def progress_on_by_default(monkeypatch):
    """Each test starts as a user's shell does: the variable unset."""
    monkeypatch.delenv(PROGRESS_ENV, raising=False)


def _per_task(**overrides):
    model = tiny_mlp()
    kwargs = dict(rank=4, target_modules=MLP_TARGETS, train_mb_size=32, train_epochs=1,
                  eval_mb_size=512, evaluator=quiet_evaluator())
    kwargs.update(overrides)
    return PerTaskLoRAStrategy(model=model, optimizer=sgd(model), **kwargs)


@pytest.mark.parametrize("value,enabled", [("0", False), ("off", False), ("False", False), ("1", True), ("", True)])
def test_the_variable_switches_progress_and_an_argument_wins(monkeypatch, value, enabled):
    monkeypatch.setenv(PROGRESS_ENV, value)
    assert progress_enabled() is enabled
    assert progress_enabled(True) is True and progress_enabled(False) is False


def test_switched_sets_the_variable_for_the_block_only(monkeypatch):
    monkeypatch.setenv(PROGRESS_ENV, "1")
    with switched(False):
        assert not progress_enabled()
    assert os.environ[PROGRESS_ENV] == "1"
    monkeypatch.delenv(PROGRESS_ENV)
    with switched(False):
        assert not progress_enabled()
    assert PROGRESS_ENV not in os.environ


def test_a_countdown_counts_from_one_and_estimates_the_time_left(capsys):
    countdown = Countdown("job", "run", 4)
    countdown.start(0, "first")
    countdown.durations.append(9.0)  # as if two runs of 10 s and 11 s were done
    countdown.durations.append(11.0)
    countdown.finish(1)
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == "[job] run 1 of 4: first"
    assert lines[1].startswith("[job] run 2 of 4 done in ")
    # the mean of the three durations (9, 11 and this one's few ms) times the two runs left
    assert lines[1].endswith("about 13.3 s left")
    assert format_duration(125) == "2 min 05 s" and format_duration(7260) == "2 h 01 min"


def test_train_stream_says_each_experience_with_the_time_left(capsys, tmp_path):
    benchmark = digits_benchmark(2)
    train_stream(_per_task(), benchmark, checkpoint_dir=tmp_path)
    err = capsys.readouterr().err
    assert "[train_stream] experience 1 of 2: training" in err
    assert "[train_stream] experience 1 of 2 done in" in err and "about" in err
    assert "[train_stream] experience 2 of 2 done in" in err and "(trained, evaluated, checkpointed)" in err


class Interrupt(SupervisedPlugin):
    """Stops training before experience ``Interrupt.at`` (a class attribute: the checkpoint's
    fingerprint sees no setting of it, so the resumed run may carry it disarmed)."""

    at = None

    def before_training_exp(self, strategy, **kwargs):
        if strategy.clock.train_exp_counter == Interrupt.at:
            raise KeyboardInterrupt


def test_a_resumed_train_stream_says_where_it_resumed(capsys, tmp_path):
    benchmark = digits_benchmark(5)
    Interrupt.at = 2
    with pytest.raises(KeyboardInterrupt):
        train_stream(_per_task(plugins=[Interrupt()]), benchmark, checkpoint_dir=tmp_path)
    Interrupt.at = None
    capsys.readouterr()
    train_stream(_per_task(plugins=[Interrupt()]), benchmark, checkpoint_dir=tmp_path, resume=True)
    err = capsys.readouterr().err.splitlines()
    assert err[0] == (f"[train_stream] resumed at experience 3 of 5 "
                      f"(experiences 1-2 restored from {tmp_path / 'checkpoint.pt'})")
    assert err[1] == "[train_stream] experience 3 of 5: training"
    assert not any("experience 1 of 5" in line for line in err)


@pytest.mark.parametrize("how", ["argument", "variable"])
def test_train_stream_is_silent_when_switched_off(capsys, monkeypatch, tmp_path, how):
    if how == "variable":
        monkeypatch.setenv(PROGRESS_ENV, "0")
    train_stream(_per_task(), digits_benchmark(2), checkpoint_dir=tmp_path,
                 **({"progress": False} if how == "argument" else {}))
    assert "[train_stream]" not in capsys.readouterr().err


def test_train_stream_refuses_a_progress_that_is_not_a_flag(tmp_path):
    with pytest.raises(TypeError, match="progress must be True or False"):
        train_stream(_per_task(), digits_benchmark(2), progress="yes")


def _lite_with_interactive_logger():
    model = tiny_mlp()
    evaluator = EvaluationPlugin(accuracy_metrics(stream=True), loggers=[InteractiveLogger()])
    return LiteLoRAStrategy(model=model, optimizer=sgd(model),
                            **lite_kwargs(evaluator=evaluator, train_epochs=1, min_selection_steps=30))


def test_the_selection_phase_has_a_labelled_bar_with_its_total(capsys, ci_benchmark):
    strategy = _lite_with_interactive_logger()
    for experience in ci_benchmark.train_stream[:2]:
        strategy.train(experience)
    selection = next(p for p in strategy.plugins if type(p).__name__ == "GateSelectionPlugin")
    out = capsys.readouterr().out
    assert "LiteLoRA gate selection of adapter_1: 100%|" in out
    assert f"| {selection.last_steps}/{selection.last_steps} [" in out
    assert "LiteLoRA gate selection of adapter_0" not in out  # the first adapter is not judged


def test_the_selection_bar_is_not_drawn_when_progress_is_off(capsys, monkeypatch, ci_benchmark):
    monkeypatch.setenv(PROGRESS_ENV, "0")
    strategy = _lite_with_interactive_logger()
    for experience in ci_benchmark.train_stream[:2]:
        strategy.train(experience)
    out = capsys.readouterr().out
    assert "LiteLoRA gate selection" not in out
    assert "it/s]" in out  # Avalanche's own bars are the logger's, the user's choice


def test_the_demo_says_each_experience_and_its_evaluator_does_not_warn(capsys, recwarn):
    evaluator = demo.quiet_evaluator(stream=True)
    assert not [w for w in recwarn if "No loggers" in str(w.message)]
    model = tiny_mlp()
    strategy = PerTaskLoRAStrategy(model=model, optimizer=sgd(model), rank=4, target_modules=MLP_TARGETS,
                                   train_mb_size=32, evaluator=evaluator)
    evaluated = []
    demo.announce(1, "a tiny stream")
    demo.train_with_progress(strategy, digits_benchmark(2).train_stream, "part 1, per-task LoRA",
                             after=evaluated.append)
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == f"[demo] part 1 of {demo.PARTS}: a tiny stream"
    assert lines[1] == "[part 1, per-task LoRA] experience 1 of 2: training"
    assert lines[-1].startswith("[part 1, per-task LoRA] experience 2 of 2 done in ")
    assert evaluated == [0, 1]
    demo.announce(2, "silent", progress=False)
    assert capsys.readouterr().err == ""


def test_the_harness_no_progress_flag_reaches_the_runs_and_is_put_back(monkeypatch):
    from benchmarks import run

    seen = []
    monkeypatch.setattr(run, "run_suite", lambda args, argv: seen.append(progress_enabled()) or 0)
    assert run.main(["--quick", "--no-progress"]) == 0
    assert run.main(["--quick"]) == 0
    assert seen == [False, True]
    assert PROGRESS_ENV not in os.environ
