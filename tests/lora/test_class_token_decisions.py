"""The default lambda rule on a CI-sized stream where adapters carry the task."""

import torch
from avalanche.evaluation.metrics import accuracy_metrics
from avalanche.training.plugins import EvaluationPlugin

from avalanche_litelora import LiteLoRAStrategy, known_redundancy_stream
from avalanche_litelora.backbones import create_backbone


def test_the_default_rule_keeps_a_novel_candidate_and_prunes_an_immediate_repeat(fetched):
    """Class-token read-out of the shipped ViT, domain-incremental MNIST: experience 1 is a
    new pixel permutation, experience 2 repeats it at once on fresh images."""
    root = fetched("mnist")[0]
    benchmark = known_redundancy_stream(form="domain", schedule="N N R1", seed=1993, dataset_root=root,
                                        train_per_experience=800, test_per_experience=100)
    torch.manual_seed(1993)
    vit = create_backbone("vit_small28_fmnist")
    strategy = LiteLoRAStrategy(
        model=vit, optimizer=torch.optim.SGD(vit.parameters(), lr=0.05, momentum=0.9), rank=4,
        train_mb_size=64, train_epochs=4, eval_mb_size=256, selection_mb_size=16,
        evaluator=EvaluationPlugin(accuracy_metrics(stream=True), loggers=[]),
    )
    for exp in benchmark.train_stream:
        strategy.train(exp)
    assert [label.kind for label in benchmark.redundancy] == ["novel", "novel", "repeat"]
    assert strategy.active_adapters == ["adapter_0", "adapter_1"]
    assert strategy.pruned_adapters == ["adapter_2"]
    assert [d["kept"] for d in strategy.candidate_decisions] == [True, False]  # why, readable
