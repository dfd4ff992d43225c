"""The benchmark runner end to end on a tiny offline stream, as ``--quick`` runs it."""

import csv
import math

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from benchmarks import run
from benchmarks.harness import ground_truth
from benchmarks.harness.report import goal_checks
from benchmarks.harness.runner import COLUMNS
from benchmarks.harness.sweep import choose_lambda

pytestmark = pytest.mark.slow  # runs the benchmark harness end to end (about 50 s)

STRATEGIES = ["litelora", "per_task_lora", "lwf", "joint"]


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    argv = [
        "--quick", "--streams", "digits", "--strategies", *STRATEGIES,
        "--train-per-experience", "40", "--test-per-experience", "20",
        "--sweep-lambdas", "0.0", "5.0", "--out", str(out), "--no-progress", "--device", "cpu",
    ]
    assert run.main(argv) == 0
    return out


def test_csv_has_every_column_finite_for_every_strategy(quick_run):
    with open(quick_run / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["strategy"] for r in rows] == STRATEGIES
    for row in rows:
        assert list(row) == COLUMNS
        for column in COLUMNS:
            if column in ("notes", "lambda_sparsity"):
                continue
            if column in ground_truth.COLUMNS:  # digits carries no ground truth
                assert row[column] == "", column
                continue
            value = row[column]
            if column == "just_trained_acc" and row["strategy"] == "joint":
                assert value == ""  # one model after the whole stream: no experience "just trained"
                continue
            assert value != "", (row["strategy"], column)
            try:
                assert math.isfinite(float(value)), (row["strategy"], column, value)
            except ValueError:
                assert column in ("stream", "strategy", "backbone", "scenario"), column
        assert 0.0 <= float(row["final_acc"]) <= 1.0
    by_name = {r["strategy"]: r for r in rows}
    assert int(by_name["per_task_lora"]["active_adapters"]) == 5
    assert int(by_name["lwf"]["adapter_params"]) == 0
    assert int(by_name["per_task_lora"]["adapter_params"]) > 0


def test_sweep_picks_lambda_on_validation_and_is_used(quick_run):
    with open(quick_run / "sweep.csv") as f:
        sweep = list(csv.DictReader(f))
    assert [r["strategy"] for r in sweep] == ["per_task_lora", "litelora", "litelora"]
    with open(quick_run / "results.csv") as f:
        lite = next(r for r in csv.DictReader(f) if r["strategy"] == "litelora")
    assert lite["lambda_sparsity"] in ("0 relative", "5 relative")
    assert "picked on the validation split" in (quick_run / "results.md").read_text()


def test_tensorboard_folder_per_run_is_readable(quick_run):
    for strategy in STRATEGIES:
        folder = quick_run / "runs" / "digits" / f"{strategy}_seed1993" / "tensorboard"
        events = EventAccumulator(str(folder))
        events.Reload()
        tags = events.Tags()["scalars"]
        assert any(t.startswith("Top1_Acc_Stream/eval_phase/test_stream") for t in tags), strategy


def test_figures_and_markdown_written(quick_run):
    names = {p.name for p in (quick_run / "figures").glob("*.png")}
    assert names == {"final_acc_vs_adapters.png", "accuracy_matrix_digits.png",
                     "forgetting_digits.png", "lambda_sweep.png"}
    for path in (quick_run / "figures").glob("*.png"):
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5000
    text = (quick_run / "results.md").read_text()
    assert "### digits" in text and "### Goals" in text and "| litelora (λ=" in text


def test_every_litelora_candidate_is_read_before_its_gate_is_decided(quick_run):
    """candidates.csv: one row per experience after the first (digits has 5), with its decision."""
    with open(quick_run / "candidates.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["experience"]) for r in rows] == [1, 2, 3, 4]
    for r in rows:
        assert 0.0 <= float(r["captured"]) <= 1.0 + 1e-6 and r["pruned"] in ("True", "False")
        assert (float(r["final_logit"]) <= 0.0) == (r["pruned"] == "True")  # the prune rule: logit <= 0


def test_choose_lambda_prefers_the_sparsest_within_tolerance():
    reference = {"avg_anytime_acc": 0.80}
    rows = [
        {"lambda_sparsity": 0.01, "avg_anytime_acc": 0.81, "active_adapters": 5},
        {"lambda_sparsity": 0.1, "avg_anytime_acc": 0.795, "active_adapters": 3},
        {"lambda_sparsity": 1.0, "avg_anytime_acc": 0.60, "active_adapters": 1},
    ]
    assert choose_lambda(rows, reference) == 0.1
    assert choose_lambda(rows[2:], reference) == 1.0  # none close: the most accurate


def test_goal_checks_report_misses_plainly():
    row = dict(stream="s", train_step_ms=10.0, infer_merged_sps=100.0, infer_bare_sps=100.0,
               adapter_params=10, final_acc=0.5)
    rows = [
        dict(row, strategy="litelora", active_adapters=5, avg_anytime_acc=0.70),
        dict(row, strategy="per_task_lora", active_adapters=5, avg_anytime_acc=0.75),
        dict(row, strategy="naive", active_adapters=0, avg_anytime_acc=0.2, final_acc=0.2),
    ]
    checks = {text.split(" (")[0]: ok for _, text, ok in goal_checks(rows)}
    assert checks["LiteLoRA keeps 0% fewer adapters than per-task LoRA"] is False
    assert checks["avg anytime accuracy: LiteLoRA 0.700, per-task LoRA 0.750"] is False
    assert checks["LiteLoRA final 0.500 vs naive 0.200"] is True
    assert checks["LiteLoRA step / per-task-LoRA step = 1.00"] is True
