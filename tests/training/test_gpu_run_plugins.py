"""AutocastPlugin (mixed precision) and EpochMilestonesLRPlugin (the reference's lr steps)."""

from __future__ import annotations

import pytest
import torch
from avalanche.core import SupervisedPlugin

from avalanche_litelora import LiteLoRAStrategy
from avalanche_litelora.training.plugins.autocast import AutocastPlugin, bf16_supported
from avalanche_litelora.training.plugins.lr_milestones import EpochMilestonesLRPlugin
from builders import digits_benchmark, quiet_evaluator, sgd, tiny_vit


def _strategy(plugins, epochs=2):
    model = tiny_vit()
    return LiteLoRAStrategy(model=model, optimizer=sgd(model, 0.05), rank=2, train_mb_size=64,
                            train_epochs=epochs, eval_mb_size=256, selection_mb_size=16,
                            min_selection_steps=2, evaluator=quiet_evaluator(), plugins=plugins,
                            refit_steps=0)  # the head refit after a pruning is its own fp32 loop


def test_autocast_runs_the_forward_in_bf16_and_hands_back_float32_outputs():
    bm = digits_benchmark(5)
    strategy = _strategy([AutocastPlugin(device_types=("cpu",))])
    seen, outputs = [], []
    for block in strategy.adapter_model.backbone.blocks:
        block.attn.qkv.register_forward_hook(lambda m, i, o: seen.append(o.dtype))

    class Watch(SupervisedPlugin):
        supports_distributed = True

        def before_backward(self, strategy, **kwargs):
            outputs.append((strategy.mb_output.dtype, strategy.loss.dtype))

    strategy.plugins.append(Watch())
    for exp in bm.train_stream[:2]:
        strategy.train(exp)
    results = strategy.eval(bm.test_stream[:2])
    assert seen and set(seen) == {torch.bfloat16}  # training, selection and evaluation passes
    assert outputs and set(outputs) == {(torch.float32, torch.float32)}
    assert all(p.dtype == torch.float32 for p in strategy.model.parameters())
    assert torch.is_autocast_enabled("cpu") is False  # no region leaks out of the strategy
    assert 0.0 <= results["Top1_Acc_Stream/eval_phase/test_stream/Task000"] <= 1.0


def test_autocast_does_nothing_on_devices_it_was_not_asked_for():
    bm = digits_benchmark(5)
    strategy = _strategy([AutocastPlugin()])  # cuda only; the strategy runs on the CPU
    seen = []
    strategy.adapter_model.backbone.blocks[0].attn.qkv.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    strategy.train(bm.train_stream[0])
    assert set(seen) == {torch.float32}
    assert bf16_supported(torch.device("cpu")) is False


def test_autocast_refuses_a_dtype_it_cannot_run():
    with pytest.raises(ValueError, match="dtype"):
        AutocastPlugin(dtype=torch.float32)
    with pytest.raises(TypeError, match="device_types"):
        AutocastPlugin(device_types="cuda")


def test_lr_milestones_follow_the_reference_schedule_and_reset_after_each_experience():
    plugin = EpochMilestonesLRPlugin(base_lr=0.01, milestones=(0.6, 0.8), gamma=0.5, from_experience=1)
    assert [plugin.rate(0, e, 20) for e in (0, 12, 19)] == [0.01] * 3  # first task: constant
    assert [plugin.rate(1, e, 20) for e in (0, 11, 12, 15, 16, 19)] == [0.01, 0.01, 0.005, 0.005, 0.0025, 0.0025]

    bm = digits_benchmark(5)
    rates = []

    class Watch(SupervisedPlugin):
        supports_distributed = True

        def before_training_iteration(self, strategy, **kwargs):
            if isinstance(strategy.optimizer, torch.optim.SGD):  # not the selection phase's AdamW
                rates.append((strategy.clock.train_exp_counter, strategy.clock.train_exp_epochs,
                              strategy.optimizer.param_groups[0]["lr"]))

    strategy = _strategy([EpochMilestonesLRPlugin(0.05, milestones=(0.5,), gamma=0.1), Watch()], epochs=2)
    for exp in bm.train_stream[:2]:
        strategy.train(exp)
    assert {(e, ep, round(lr, 6)) for e, ep, lr in rates} == {
        (0, 0, 0.05), (0, 1, 0.05),  # experience 0: constant
        (1, 0, 0.05), (1, 1, 0.005),  # experience 1: x0.1 from epoch 1 (= 0.5 x 2 epochs)
    }
    assert strategy.optimizer.param_groups[0]["lr"] == 0.05  # restored for the checkpoint


def test_lr_milestones_refuse_bad_settings():
    for kwargs in (dict(base_lr=0), dict(base_lr=0.1, gamma=float("inf")), dict(base_lr=0.1, milestones=(1.5,)),
                   dict(base_lr=0.1, from_experience=-1)):
        with pytest.raises(ValueError):
            EpochMilestonesLRPlugin(**kwargs)
