"""The ground-truth columns: which of a known-redundancy stream's candidates the gate kept."""

from dataclasses import asdict

from avalanche_litelora.data.redundancy_streams import ExperienceRedundancy
from benchmarks.harness import ground_truth

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
    assert cols == {"redundant_total": 2, "redundant_pruned": 1, "novel_total": 2, "novel_kept": 1,
                    "bank_redundant_total": "", "bank_redundant_pruned": "", "bank_novel_total": "",
                    "bank_novel_kept": ""}  # no accuracy matrix: no bank-relative label
    rates = ground_truth.rates(cols)
    assert rates["novel_kept_rate"] == 0.5 and rates["redundant_pruned_rate"] == 0.5


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
    # the probe's readings; no accuracy matrix in the row, so no bank-relative label
    assert "| 1 | repeat | 0 | perm0 | – | – | – | +0.004 | -1.25 | pruned |" in table
    assert "| 2 | repeat | 0 | perm0 | – | – | – | – | – | kept |" in table
    assert "| first half (experiences 1-6) | 0/0 | 3/6 | 0/0 | – | – |" in table
    assert "| second half (experiences 7-13) | 0/0 | 4/7 | 0/0 | – | – |" in table


def test_a_repeat_is_redundant_for_the_bank_only_while_the_bank_still_serves_its_source():
    # rows: after training experience k; columns: test accuracy on each experience
    matrix = [
        [0.90, 0.10, 0.88, 0.10, 0.10],
        [0.86, 0.80, 0.87, 0.78, 0.10],  # before exp 2 (repeat of 0): 0.87 >= 0.90 - 0.05
        [0.85, 0.60, 0.86, 0.50, 0.10],  # before exp 3 (near-repeat of 1): 0.50 < 0.80 - 0.05
        [0.85, 0.70, 0.86, 0.80, 0.20],
        [0.80, 0.70, 0.80, 0.75, 0.90],
    ]
    records = ground_truth.decisions(_labels(), ["adapter_2", "adapter_4"], matrix=matrix)
    by_exp = {r["experience"]: r for r in records}
    assert by_exp[2]["acc_before"] == 0.87 and by_exp[2]["source_acc_after"] == 0.90
    assert by_exp[2]["redundant_for_bank"] is True
    assert by_exp[3]["redundant_for_bank"] is False  # the bank had forgotten experience 1
    assert by_exp[1]["redundant_for_bank"] is False and by_exp[4]["redundant_for_bank"] is False
    cols = ground_truth.counts(records)
    assert (cols["bank_redundant_total"], cols["bank_redundant_pruned"]) == (1, 1)
    assert (cols["bank_novel_total"], cols["bank_novel_kept"]) == (3, 2)  # exp 4 pruned
    assert (cols["redundant_total"], cols["redundant_pruned"]) == (2, 1)  # structural score unchanged
