"""LiteLoRA's gate on a stream whose redundancy is known: repeats pruned, novel kept.

The ground-truth test runs where adapters carry the task: a frozen random projection to 8
features, so the head cannot absorb a new pixel permutation and a novel experience's
candidate lowers the loss by over a nat, while a repeat's candidate adds little to the
adapter already trained on its permutation (BENCHMARKS.md, *The gate's mechanism*).
"""

import pytest
import torch
from torch import nn

from avalanche_litelora import LiteLoRAStrategy, known_redundancy_stream
from builders import quiet_evaluator


@pytest.fixture(scope="module")
def root(fetched):
    return fetched("mnist")[0]


def narrow_projection_run(root, lambda_sparsity, seed=0):
    torch.manual_seed(seed)
    stream = known_redundancy_stream(form="domain", schedule="N N R0 R1", seed=0, dataset_root=root,
                                     train_per_experience=512, test_per_experience=128)
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 8))
    strategy = LiteLoRAStrategy(
        model=model, optimizer=torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9),
        feature_dim=8, target_modules=("1",), rank=4, train_mb_size=32, train_epochs=4,
        eval_mb_size=256, lambda_sparsity=lambda_sparsity, selection_mb_size=16,
        evaluator=quiet_evaluator())
    for exp in stream.train_stream:
        strategy.train(exp)
    return stream, strategy


def test_repeats_are_pruned_and_the_novel_candidate_kept(root):
    stream, strategy = narrow_projection_run(root, lambda_sparsity=1.0)
    kinds = [label.kind for label in stream.redundancy]
    assert kinds == ["novel", "novel", "repeat", "repeat"]
    assert strategy.active_adapters == ["adapter_0", "adapter_1"]
    assert strategy.pruned_adapters == ["adapter_2", "adapter_3"]


def test_the_same_stream_at_lambda_zero_keeps_every_candidate(root):
    _, strategy = narrow_projection_run(root, lambda_sparsity=0.0)
    assert strategy.pruned_adapters == []
