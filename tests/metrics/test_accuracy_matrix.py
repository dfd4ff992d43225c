import math

import pytest

from avalanche_litelora.metrics import (
    accuracy_row,
    average_anytime_accuracy,
    average_forgetting,
    backward_transfer,
    final_accuracy,
    forgetting_per_experience,
)

MATRIX = [
    [0.9, 0.0, 0.0],
    [0.6, 0.8, 0.0],
    [0.5, 0.7, 1.0],
]


def test_hand_computed_three_experiences():
    assert average_anytime_accuracy(MATRIX) == pytest.approx((0.9 + 0.7 + (0.5 + 0.7 + 1.0) / 3) / 3)
    assert final_accuracy(MATRIX) == pytest.approx((0.5 + 0.7 + 1.0) / 3)
    assert forgetting_per_experience(MATRIX) == pytest.approx({0: 0.4, 1: 0.1})
    assert average_forgetting(MATRIX) == pytest.approx(0.25)
    assert backward_transfer(MATRIX) == pytest.approx(-0.25)


def test_twelve_experiences_are_ordered_as_numbers_not_strings():
    n = 12
    # accuracy on experience j decays by 0.01 per later experience; experience 10 peaks late
    matrix = [[(1.0 - 0.01 * (i - j)) if j <= i else 0.0 for j in range(n)] for i in range(n)]
    matrix[11][10] = 0.5
    results = {
        f"Top1_Acc_Exp/eval_phase/test_stream/Task000/Exp{j:03d}": matrix[11][j] for j in range(n)
    }
    results["Top1_Acc_Stream/eval_phase/test_stream/Task000"] = 0.3  # ignored
    shuffled = dict(sorted(results.items(), key=lambda kv: str(int(kv[0][-3:]))))  # "10" < "2"
    assert accuracy_row(shuffled, n) == matrix[11]
    forgetting = forgetting_per_experience(matrix)
    assert list(forgetting) == list(range(11))
    assert forgetting[2] == pytest.approx(0.09) and forgetting[10] == pytest.approx(0.5)
    assert forgetting[0] == pytest.approx(0.11)


def test_missing_experiences_are_nan_and_bad_matrices_refused():
    row = accuracy_row({"Top1_Acc_Exp/eval_phase/test_stream/Task000/Exp001": 0.5}, 3)
    assert math.isnan(row[0]) and row[1] == 0.5
    with pytest.raises(ValueError):
        average_anytime_accuracy([[0.1, 0.2]] * 3)
