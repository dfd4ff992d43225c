"""The head-only control: the bank's head and loss on the frozen backbone, no adapter ever."""

import torch
from avalanche.core import SupervisedPlugin

from avalanche_litelora import HeadOnlyStrategy
from builders import MLP_TARGETS, quiet_evaluator, sgd, tiny_mlp


class _HeadRows(SupervisedPlugin):
    """The head's weight when an experience's epochs start and when they end."""

    def before_training_epoch(self, strategy, **kwargs):
        if strategy.clock.train_exp_epochs == 0:
            self.start = strategy.model.head.classifier.weight.detach().clone()

    def after_training_exp(self, strategy, **kwargs):
        self.end = strategy.model.head.classifier.weight.detach().clone()


def test_head_only_trains_the_head_and_no_adapter(ci_benchmark):
    mlp = tiny_mlp()
    backbone_before = {k: v.clone() for k, v in mlp.state_dict().items()}
    rows = _HeadRows()
    strategy = HeadOnlyStrategy(
        model=mlp, optimizer=sgd(mlp), rank=4, target_modules=MLP_TARGETS, train_mb_size=32,
        train_epochs=2, eval_mb_size=512, evaluator=quiet_evaluator(), plugins=[rows],
    )
    stream = list(ci_benchmark.train_stream)[:2]
    for exp in stream:
        strategy.train(exp)
    model = strategy.adapter_model
    assert model.adapter_names == [] and strategy.active_adapters == []
    assert model.adapter_parameter_count() == 0
    assert all(len(layer.adapters) == 0 for layer in model.lora_layers().values())
    new_rows = list(stream[1].classes_in_this_experience)
    assert not torch.equal(rows.start[new_rows], rows.end[new_rows])  # the head trains
    state = model.backbone.state_dict()
    for key, value in backbone_before.items():  # the backbone is exactly the pretrained one
        wrapped = key.replace(".weight", ".base.weight").replace(".bias", ".base.bias")
        if not key.startswith("classifier."):  # the backbone's own classifier was replaced
            assert torch.equal(state[wrapped if wrapped in state else key], value), key
