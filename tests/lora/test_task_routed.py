"""Task-routed per-task LoRA: each task uses only its own adapter, so nothing is forgotten."""

import pytest
import torch

from avalanche_litelora import PerTaskLoRAStrategy, TaskRoutedLoRAStrategy
from builders import MLP_TARGETS, quiet_evaluator, sgd, tiny_mlp


def _kwargs(**overrides):
    kwargs = dict(rank=4, target_modules=MLP_TARGETS, train_mb_size=32, train_epochs=3,
                  eval_mb_size=512, evaluator=quiet_evaluator())
    kwargs.update(overrides)
    return kwargs


def _test_inputs(experience):
    xs, ts = [], []
    for i in range(len(experience.dataset)):
        x, _, t = experience.dataset[i]
        xs.append(x)
        ts.append(t)
    return torch.stack(xs), torch.tensor(ts)


@pytest.mark.parametrize("cls, forgets", [(TaskRoutedLoRAStrategy, False), (PerTaskLoRAStrategy, True)])
def test_earlier_tasks_predictions_never_change_only_when_routed(ti_benchmark, cls, forgets):
    torch.manual_seed(0)
    mlp = tiny_mlp()
    strategy = cls(model=mlp, optimizer=sgd(mlp), task_incremental=True, **_kwargs())
    x0, t0 = _test_inputs(ti_benchmark.test_stream[0])
    strategy.train(ti_benchmark.train_stream[0])
    strategy.model.eval()
    with torch.no_grad():
        before = strategy.model(x0, t0)
    for experience in list(ti_benchmark.train_stream)[1:3]:
        strategy.train(experience)
    strategy.model.eval()
    with torch.no_grad():
        after = strategy.model(x0, t0)
    after = after[:, : before.shape[1]]  # Avalanche pads the multi-head output as tasks arrive
    assert torch.equal(before, after) is not forgets
    assert len(strategy.active_adapters) == 3


def test_mixed_task_minibatch_equals_its_single_task_parts(ti_benchmark):
    torch.manual_seed(0)
    mlp = tiny_mlp()
    strategy = TaskRoutedLoRAStrategy(model=mlp, optimizer=sgd(mlp), **_kwargs(train_epochs=1))
    for experience in list(ti_benchmark.train_stream)[:2]:
        strategy.train(experience)
    model = strategy.model.eval()
    (xa, ta), (xb, tb) = (_test_inputs(ti_benchmark.test_stream[i]) for i in range(2))
    x, t = torch.cat([xa[:5], xb[:5]]), torch.cat([ta[:5], tb[:5]])
    order = torch.randperm(10, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        mixed = model(x[order], t[order])
        parts = torch.cat([model(xa[:5], ta[:5]), model(xb[:5], tb[:5])])[order]
    assert torch.allclose(mixed, parts, atol=1e-6)
    assert model.task_adapters == {0: "adapter_0", 1: "adapter_1"}


def test_routing_refuses_class_incremental_use():
    mlp = tiny_mlp()
    with pytest.raises(ValueError, match="task_incremental"):
        TaskRoutedLoRAStrategy(model=mlp, optimizer=sgd(mlp), task_incremental=False, **_kwargs())


def test_routed_bank_state_dict_loads_into_a_fresh_model(ti_benchmark):
    torch.manual_seed(0)
    mlp = tiny_mlp()
    strategy = TaskRoutedLoRAStrategy(model=mlp, optimizer=sgd(mlp), **_kwargs(train_epochs=1))
    for experience in list(ti_benchmark.train_stream)[:2]:
        strategy.train(experience)
    other = tiny_mlp()
    fresh = TaskRoutedLoRAStrategy(model=other, optimizer=sgd(other), **_kwargs()).model
    fresh.load_state_dict(strategy.model.state_dict())
    x, t = _test_inputs(ti_benchmark.test_stream[1])
    strategy.model.eval(), fresh.eval()
    with torch.no_grad():
        assert torch.equal(fresh(x, t), strategy.model(x, t))
    assert fresh.task_adapters == strategy.model.task_adapters
