"""Continual-learning summaries from an accuracy matrix, with experiences ordered as numbers.

``matrix[i][j]`` is the accuracy on test experience ``j`` after training experience ``i``.
The reference code sorted experience names as strings, so "10" came before "2" and its
forgetting was wrong past ten tasks; here rows and columns are integer-indexed throughout.
"""

from __future__ import annotations

import re
from typing import Dict, List, Mapping, Sequence

_EXP_KEY = re.compile(r"^Top1_Acc_Exp/eval_phase/(?P<stream>[^/]+)/Task(?P<task>\d+)/Exp(?P<exp>\d+)$")


def accuracy_row(results: Mapping[str, float], n_experiences: int, stream: str = "test_stream") -> List[float]:
    """One matrix row from Avalanche's ``eval`` results (``Top1_Acc_Exp`` per experience)."""
    row = [float("nan")] * n_experiences
    for key, value in results.items():
        match = _EXP_KEY.match(key)
        if match and match["stream"] == stream:
            index = int(match["exp"])
            if index < n_experiences:
                row[index] = float(value)
    return row


def _check(matrix: Sequence[Sequence[float]]) -> int:
    n = len(matrix)
    if n == 0 or any(len(row) < n for row in matrix):
        raise ValueError("the accuracy matrix must be square (rows: after experience i)")
    return n


def average_anytime_accuracy(matrix: Sequence[Sequence[float]]) -> float:
    """Mean over training steps i of the mean accuracy on experiences 0..i."""
    n = _check(matrix)
    return sum(sum(matrix[i][: i + 1]) / (i + 1) for i in range(n)) / n


def final_accuracy(matrix: Sequence[Sequence[float]]) -> float:
    n = _check(matrix)
    return sum(matrix[n - 1][:n]) / n


def just_trained_accuracy(matrix: Sequence[Sequence[float]]) -> float:
    """Mean over experiences i of the accuracy on i right after training it: what the
    method learns where it trains (the head-only control's gap to an adapter method)."""
    n = _check(matrix)
    return sum(matrix[i][i] for i in range(n)) / n


def forgetting_per_experience(matrix: Sequence[Sequence[float]], include_final: bool = False) -> Dict[int, float]:
    """For each earlier experience j: best accuracy it had before the end minus its final one.

    ``include_final`` takes the best over the final evaluation too, as the reference code
    does: every term is then >= 0 (a later gain is not negative forgetting).
    """
    n = _check(matrix)
    stop = n if include_final else n - 1
    return {
        j: max(matrix[i][j] for i in range(j, stop)) - matrix[n - 1][j] for j in range(n - 1)
    }


def average_forgetting(matrix: Sequence[Sequence[float]], include_final: bool = False) -> float:
    per_exp = forgetting_per_experience(matrix, include_final)
    return sum(per_exp.values()) / len(per_exp) if per_exp else 0.0


def backward_transfer(matrix: Sequence[Sequence[float]]) -> float:
    """Mean over earlier experiences j of final accuracy minus accuracy right after j."""
    n = _check(matrix)
    if n < 2:
        return 0.0
    return sum(matrix[n - 1][j] - matrix[j][j] for j in range(n - 1)) / (n - 1)
