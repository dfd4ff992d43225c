"""A loss that stays at chance through an experience gets one hint naming the fix; a run that
learns gets none, LiteLoRA's selection phase is never read, and checkpoints are unaffected."""

import math
import warnings

import pytest
import torch

from avalanche_litelora import GateSelectionPlugin, LiteLoRAStrategy, StalledTrainingWarning, load_checkpoint, save_checkpoint
from avalanche_litelora.training import stalled_training
from avalanche_litelora.training.stalled_training import LossWatch, Stall
from builders import lite_kwargs, single_thread, tiny_mlp

one_thread = pytest.fixture(scope="module", autouse=True)(single_thread)


def _strategy(lr: float, **overrides):
    model = tiny_mlp()
    return LiteLoRAStrategy(model=model, optimizer=torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9),
                            **lite_kwargs(**overrides))


def _stalled(strategy, experiences):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for experience in experiences:
            strategy.train(experience)
    return [w for w in caught if w.category is StalledTrainingWarning]


def test_a_loss_that_cannot_move_warns_once_with_its_numbers_and_the_fixes(ci_benchmark):
    stalled = _stalled(_strategy(lr=0.0), ci_benchmark.train_stream[:2])
    assert len(stalled) == 1  # two stalled experiences, one warning per run
    message = str(stalled[0].message)
    assert "experience 0" in message and f"ln 2 = {math.log(2):.4f}" in message
    assert "learning rates: [0.0]" in message and "of 27)" in message  # 3 epochs of 9 minibatches
    start, end = (float(message.split(": ", 1)[1].split(" over its first")[0]),
                  float(message.split("iterations, ")[1].split(" over its last")[0]))
    assert abs(start - math.log(2)) < 0.07 and abs(end - start) < 0.01 * start
    for fix in ("raise lr", "model.parameters()", "target_modules", "requires_grad", "labels"):
        assert fix in message


def test_a_run_that_learns_does_not_warn(ci_benchmark):
    assert _stalled(_strategy(lr=0.05), ci_benchmark.train_stream[:2]) == []


def test_the_warning_is_switched_off_by_a_standard_filter(ci_benchmark):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warnings.filterwarnings("ignore", category=StalledTrainingWarning)
        _strategy(lr=0.0, train_epochs=3).train(ci_benchmark.train_stream[0])
    assert not [w for w in caught if w.category is StalledTrainingWarning]


def test_the_selection_phase_is_not_read(ci_benchmark, monkeypatch):
    recorded = []
    record = LossWatch.record
    monkeypatch.setattr(LossWatch, "record", lambda self, loss: (recorded.append(self._open), record(self, loss)))
    strategy = _strategy(lr=0.05, train_epochs=2)
    for experience in ci_benchmark.train_stream[:2]:
        strategy.train(experience)
    selection = next(p for p in strategy.plugins if isinstance(p, GateSelectionPlugin))
    assert selection.last_steps >= 100  # the second experience ran a selection phase
    iterations = sum(2 * math.ceil(len(e.dataset) / 32) for e in ci_benchmark.train_stream[:2])  # 2 epochs each
    assert recorded.count(True) == iterations  # every training iteration, nothing more
    assert recorded.count(False) >= 100  # the phase's steps came by, and were not read


def test_a_checkpoint_of_a_stalled_run_resumes(ci_benchmark, tmp_path):
    strategy = _strategy(lr=0.0)
    assert len(_stalled(strategy, ci_benchmark.train_stream[:1])) == 1
    save_checkpoint(strategy, tmp_path / "run.pt")
    resumed = _strategy(lr=0.0)
    assert load_checkpoint(resumed, tmp_path / "run.pt")["experiences_done"] == 1
    assert len(_stalled(resumed, ci_benchmark.train_stream[1:2])) == 1  # a new process, a new run


@pytest.mark.parametrize("end, at_chance", [(0.6900, True), (0.67, True), (0.64, False), (0.74, True), (0.80, False)])
def test_at_chance_means_at_most_5_percent_below_ln_k_and_10_above(end, at_chance):
    # the start does not matter: a fresh head falls to the prior in a few steps, then sits there
    assert (Stall(1.5, end, 5, 27).chance([2]) == 2) is at_chance


def test_chance_is_ln_of_a_class_count():
    assert Stall(0.70, 0.70, 5, 27).chance([2, 10]) == 2
    assert Stall(2.30, 2.30, 5, 27).chance([2, 10]) == 10
    assert Stall(1.20, 1.20, 5, 27).chance([2, 10]) is None
    assert Stall(0.0, 0.0, 5, 27).chance([1]) is None  # one class: its own warning says why


def test_a_short_experience_is_not_judged():
    watch = LossWatch()
    watch.open()
    for _ in range(stalled_training.MIN_ITERATIONS - 1):
        watch.record(torch.tensor(math.log(2)))
    assert watch.close() is None
    watch.record(torch.tensor(1.0))  # closed: ignored
    watch.open()
    for _ in range(stalled_training.MIN_ITERATIONS):
        watch.record(torch.tensor(math.log(2)))
    assert watch.close().iterations == stalled_training.MIN_ITERATIONS
