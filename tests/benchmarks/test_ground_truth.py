"""The ground-truth columns: which of a known-redundancy stream's candidates the gate kept."""

from dataclasses import asdict

from avalanche_litelora.data.redundancy_streams import ExperienceRedundancy
from benchmarks import ground_truth

N = ExperienceRedundancy("novel", None, "perm0", (0, 1))


def _labels():
    return [
        N,
        ExperienceRedundancy("novel", None, "perm1", (0, 1)),
        ExperienceRedundancy("repeat", 0, "perm0", (0, 1)),
        ExperienceRedundancy("near_repeat", 1, "perm1+rot10", (0, 1)),
        ExperienceRedundancy("novel", None, "perm2", (0, 1)),
    ]


def test_counts_leave_out_the_first_experience_and_read_pruned_names():
    cols = ground_truth.ground_truth_columns(_labels(), ["adapter_2", "adapter_4"])
    # experience 0 opens no gate: only experiences 1-4 are decisions
    assert cols == {"redundant_total": 2, "redundant_pruned": 1, "novel_total": 2, "novel_kept": 1}
    rates = ground_truth.rates(cols)
    assert rates == {"novel_kept_rate": 0.5, "redundant_pruned_rate": 0.5}


def test_columns_are_empty_without_ground_truth_or_without_a_bank():
    empty = {c: "" for c in ground_truth.COLUMNS}
    assert ground_truth.ground_truth_columns(None, ["adapter_1"]) == empty
    assert ground_truth.ground_truth_columns(_labels(), None) == empty
    assert ground_truth.rates(empty) is None


def test_a_plain_stream_has_no_labels():
    class Exp:
        dataset = object()
    assert ground_truth.labels_of([Exp()]) is None


def test_decision_table_marks_each_experience_and_splits_a_long_stream_in_halves():
    labels = [N] + [ExperienceRedundancy("repeat", 0, "perm0", (0, 1))] * 13
    row = {"stream": "s", "strategy": "litelora", "seed": 1, "lambda_sparsity": 0.01,
           "ground_truth": [dict(asdict(x), classes=list(x.classes)) for x in labels],
           "pruned_names": [f"adapter_{i}" for i in range(1, 14, 2)],
           "candidates": [{"experience": 1, "benefit_nats": 0.004, "final_logit": -1.25}]}
    table = ground_truth.decision_table([row, dict(row, strategy="per_task_lora")])
    assert table.count("**s**") == 1  # strategies that decide nothing get no table
    assert "| 1 | repeat | 0 | perm0 | +0.004 | -1.25 | pruned |" in table  # the probe's readings
    assert "| 2 | repeat | 0 | perm0 | – | – | kept |" in table
    assert "| first half (experiences 1-6) | 0/0 | 3/6 | 0/0 |" in table
    assert "| second half (experiences 7-13) | 0/0 | 4/7 | 0/0 |" in table
