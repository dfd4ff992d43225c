"""The plugins on their own, with a plain SupervisedTemplate."""

import pytest
import torch
from avalanche.training.templates import SupervisedTemplate

from avalanche_litelora import (
    AdapterGuardPlugin,
    CurrentClassesLossPlugin,
    FreezeBankPlugin,
    GateSelectionPlugin,
    LoRAClassifier,
    OpenCandidatePlugin,
    PruneClosedCandidatePlugin,
)
from avalanche_litelora.training.losses import keep_only_classes
from builders import MLP_TARGETS, quiet_evaluator, tiny_mlp


def _plain_template(model, prune, train_epochs):
    """A plain SupervisedTemplate with the LiteLoRA plugins, a huge lambda: it always prunes."""
    return SupervisedTemplate(
        model=model,
        optimizer=torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9),
        train_mb_size=32, train_epochs=train_epochs, eval_mb_size=512, evaluator=quiet_evaluator(),
        plugins=[
            AdapterGuardPlugin(), OpenCandidatePlugin(),
            GateSelectionPlugin(lambda_sparsity=1000.0, selection_mb_size=8),
            prune, FreezeBankPlugin(), CurrentClassesLossPlugin(),
        ],
    )


def test_plugins_compose_with_a_plain_supervised_template(ci_benchmark):
    model = LoRAClassifier(tiny_mlp(), rank=4, target_modules=MLP_TARGETS)
    prune = PruneClosedCandidatePlugin(refit_steps=5)
    strategy = _plain_template(model, prune, train_epochs=3)
    stream = list(ci_benchmark.train_stream)[:3]
    for exp in stream:
        strategy.train(exp)
    assert model.adapter_names == ["adapter_0"]
    assert [name for name, _ in prune.decisions] == ["adapter_1", "adapter_2"]
    assert model.candidate is None and model.is_frozen("adapter_0")


def test_later_experiences_and_the_refit_leave_earlier_classes_rows_alone(ci_benchmark):
    model = LoRAClassifier(tiny_mlp(), rank=4, target_modules=MLP_TARGETS)
    stream = list(ci_benchmark.train_stream)[:2]
    strategy = _plain_template(model, PruneClosedCandidatePlugin(refit_steps=20), train_epochs=2)
    strategy.train(stream[0])
    old_classes = stream[0].classes_in_this_experience
    old_rows = model.head.classifier.weight[old_classes].detach().clone()
    strategy.train(stream[1])
    assert model.pruned_adapters == ["adapter_1"]
    assert torch.equal(model.head.classifier.weight[old_classes], old_rows)


def test_keep_only_classes_blocks_other_logits_and_their_gradient():
    logits = torch.randn(4, 6, requires_grad=True)
    masked = keep_only_classes(logits, [1, 4])
    assert torch.isinf(masked[:, [0, 2, 3, 5]]).all() and torch.isfinite(masked[:, [1, 4]]).all()
    torch.nn.functional.cross_entropy(masked, torch.tensor([1, 4, 4, 1])).backward()
    assert torch.count_nonzero(logits.grad[:, [0, 2, 3, 5]]) == 0


def test_plugins_refuse_a_model_without_a_bank(ci_benchmark):
    mlp = tiny_mlp()
    strategy = SupervisedTemplate(
        model=mlp, optimizer=torch.optim.SGD(mlp.parameters(), lr=0.1),
        evaluator=quiet_evaluator(), plugins=[OpenCandidatePlugin()],
    )
    with pytest.raises(TypeError, match="LoRAClassifier"):
        strategy.train(ci_benchmark.train_stream[0])
