"""LiteLoRA's gate on a stream whose redundancy is known: repeats pruned, novel kept.

The ground-truth test runs where adapters carry the task: a frozen random projection to 8
features, so the head cannot absorb a new pixel permutation and a novel experience's
candidate lowers the loss by over a nat, while a repeat's candidate adds little to the
adapter already trained on its permutation (BENCHMARKS.md, *The gate's mechanism*).
"""

import warnings

import pytest

from avalanche_litelora import InertSelectionWarning, train_stream
from avalanche_litelora.data.redundancy_streams import NARROW_LAMBDA, narrow_bank

pytestmark = pytest.mark.slow  # trains the narrow bank on a known-redundancy stream, four seeds


@pytest.fixture(scope="module")
def root(fetched):
    return fetched("mnist")[0]


def trained_narrow_bank(root, lambda_sparsity: float):
    stream, strategy = narrow_bank(root, lambda_sparsity=lambda_sparsity)
    train_stream(strategy, stream, eval_streams=(), progress=False)
    return stream, strategy


def test_repeats_are_pruned_and_the_novel_candidate_kept(root):
    with warnings.catch_warnings():  # the demo's lambda decides: no candidate's fate is forced
        warnings.simplefilter("error", InertSelectionWarning)
        stream, strategy = trained_narrow_bank(root, lambda_sparsity=NARROW_LAMBDA)
    kinds = [label.kind for label in stream.redundancy]
    assert kinds == ["novel", "novel", "repeat", "repeat"]
    assert strategy.active_adapters == ["adapter_0", "adapter_1"]
    assert strategy.pruned_adapters == ["adapter_2", "adapter_3"]


def test_the_same_stream_at_lambda_zero_keeps_every_candidate(root):
    _, strategy = trained_narrow_bank(root, lambda_sparsity=0.0)
    assert strategy.pruned_adapters == []
