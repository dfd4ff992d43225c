"""ShareStrategy end to end on task-incremental digits."""

import pytest
import torch
from avalanche.core import SupervisedPlugin

from avalanche_litelora.adapters.layer import AdapterLayer
from avalanche_litelora.share import ShareClassifier
from avalanche_litelora.share.strategy import ShareStrategy
from avalanche_litelora.training.plugins.guards import AdapterGuardPlugin
from builders import MLP_TARGETS, digits_benchmark, quiet_evaluator, sgd, tiny_mlp, tiny_vit


def _strategy(model, **overrides):
    kwargs = dict(rank=4, pseudo_rank=1, temporary_vectors=2, train_mb_size=32, train_epochs=1,
                  eval_mb_size=512, evaluator=quiet_evaluator())
    kwargs.update(overrides)
    return ShareStrategy(model=model, optimizer=sgd(model, 0.05), **kwargs)


def _test_batch(benchmark, n_per_task=8):
    xs, ys, ts = [], [], []
    for exp in benchmark.test_stream:
        x, y, t = next(iter(torch.utils.data.DataLoader(exp.dataset, batch_size=n_per_task)))
        xs.append(x), ys.append(y), ts.append(t)
    return torch.cat(xs), torch.cat(ys), torch.cat(ts)


@pytest.fixture(scope="module")
def trained_vit(ti_benchmark):
    vit = tiny_vit()
    frozen = {k: v.clone() for k, v in vit.state_dict().items() if "head" not in k}
    strategy = _strategy(vit)
    results = []
    for i, exp in enumerate(ti_benchmark.train_stream):
        strategy.train(exp)
        if i in (0, 4):  # after the first: future tasks (no coefficients yet) included
            results.append(strategy.eval(ti_benchmark.test_stream))
    return strategy, frozen, results


def test_vit_stream_end_to_end(trained_vit):
    strategy, frozen, results = trained_vit
    reports = strategy.merge_reports
    assert [r.tasks for r in reports] == [list(range(i + 1)) for i in range(5)]
    assert all(set(r.relative_errors) == set(r.tasks) for r in reports)
    assert all(0.0 <= e <= 1.0 + 1e-6 for r in reports for e in r.relative_errors.values())
    assert strategy.reconstruction_errors() == [r.relative_errors for r in reports]
    sizes = strategy.basis_sizes()
    assert len(sizes) == 4 and all(1 <= k <= 4 + 4 * 1 for k in sizes.values())
    assert strategy.parameter_ratio() > 2.0
    assert strategy.per_task_lora_parameter_count() == 5 * (4 * (4 * 64 + 1) + 1)
    accuracies = [v for k, v in results[0].items() if k.startswith("Top1_Acc_Exp")]
    assert len(accuracies) == 5  # every test experience was evaluated after the first one
    state = strategy.model.backbone.state_dict()
    for key, value in frozen.items():
        wrapped = key.replace("qkv.", "qkv.base.")
        assert torch.equal(state[wrapped if wrapped in state else key], value), key
    # nothing but the head trains between experiences; temporary vectors are gone
    layer = next(iter(strategy.model.share_layers().values()))
    assert layer.temporary_vectors == 0


def test_mixed_task_minibatch_matches_single_task_forward(trained_vit, ti_benchmark):
    model = trained_vit[0].model.eval()
    x, _, t = _test_batch(ti_benchmark)
    perm = torch.randperm(len(t), generator=torch.Generator().manual_seed(0))
    x, t = x[perm], t[perm]
    with torch.no_grad():
        mixed = model(x, t)
        for task in t.unique().tolist():
            mask = t == task
            alone = model.forward_single_task(x[mask], task)
            assert torch.allclose(mixed[mask, : alone.shape[1]], alone, atol=1e-6)


def test_trained_state_dict_loads_into_a_fresh_model(trained_vit, ti_benchmark):
    model = trained_vit[0].model.eval()
    fresh = ShareClassifier(tiny_vit(seed=1), rank=4).eval()
    fresh.load_state_dict(model.state_dict())
    x, _, t = _test_batch(ti_benchmark)
    with torch.no_grad():
        assert torch.equal(fresh(x, t), model(x, t))
    assert fresh.reconstruction_errors() == model.reconstruction_errors()


def _logits(model, x, task):
    model.eval()
    with torch.no_grad():
        return model.forward_single_task(x, task)


@pytest.mark.parametrize("choice", [dict(), dict(k=16)])
def test_earlier_predictions_move_no_more_than_the_reconstruction_error_allows(ti_benchmark, choice):
    """One adapted layer (features.0): |d logits| <= ||H|| ||W1|| ||E||_F ||x|| for every sample."""
    mlp = tiny_mlp()
    strategy = _strategy(mlp, target_modules=[MLP_TARGETS[0]], train_epochs=2, **choice)
    model = strategy.model
    x, y, t = _test_batch(ti_benchmark, 64)
    x0, y0 = x[t == 0], y[t == 0]
    strategy.train(ti_benchmark.train_stream[0])
    before = _logits(model, x0, 0)
    assert (before.argmax(1) == y0).float().mean() > 0.8  # it learned the task
    head0 = {k: v.clone() for k, v in model.head.classifiers["0"].state_dict().items()}
    strategy.train(ti_benchmark.train_stream[1])
    after = _logits(model, x0, 0)
    assert all(torch.equal(v, model.head.classifiers["0"].state_dict()[k]) for k, v in head0.items())
    error = strategy.merge_reports[-1].absolute_errors[0]["features.0.out"]
    lipschitz = (torch.linalg.matrix_norm(model.head.classifiers["0"].classifier.weight, 2)
                 * torch.linalg.matrix_norm(mlp.features[3][0].weight, 2))
    moved = (after - before).norm(dim=1)
    bound = lipschitz * error * x0.flatten(1).norm(dim=1)
    assert torch.all(moved <= bound + 1e-4)
    if choice:  # a basis as large as the stack loses nothing
        assert error < 1e-4 and torch.allclose(after, before, atol=1e-4)
    else:
        assert error > 1e-3 and moved.max() > 1e-4


class _NaNLoss(SupervisedPlugin):
    def before_backward(self, strategy, **kwargs):
        if strategy.clock.train_exp_counter == 1:
            strategy.loss = strategy.loss * float("nan")


def test_non_finite_loss_restores_the_subspace(ti_benchmark):
    mlp = tiny_mlp()
    strategy = _strategy(mlp, target_modules=MLP_TARGETS, plugins=[_NaNLoss()])
    strategy.train(ti_benchmark.train_stream[0])
    saved = {k: v.clone() for k, v in strategy.model.state_dict().items() if torch.is_tensor(v)}
    with pytest.raises(FloatingPointError, match="experience 1, iteration 0: .* shared subspace was restored"):
        strategy.train(ti_benchmark.train_stream[1])
    state = strategy.model.state_dict()
    assert strategy.model.tasks == [0]
    for key, value in saved.items():
        assert torch.equal(state[key], value), key


def test_share_and_the_lora_bank_share_one_guard():
    """The guard the LoRA bank uses also refuses Share's empty experience, leaving it unchanged."""
    from avalanche_litelora import PerTaskLoRAStrategy

    mlp = tiny_mlp()
    strategy = _strategy(mlp, target_modules=MLP_TARGETS)
    other = tiny_mlp()
    lora = PerTaskLoRAStrategy(model=other, optimizer=sgd(other), target_modules=MLP_TARGETS)
    assert type(strategy.plugins[0]) is type(lora.plugins[0]) is AdapterGuardPlugin
    benchmark = digits_benchmark(5, task_labels=True)  # its own: one experience is emptied
    strategy.train(benchmark.train_stream[0])
    saved = {k: v.clone() for k, v in strategy.model.state_dict().items() if torch.is_tensor(v)}
    empty = benchmark.train_stream[1]
    empty.dataset = empty.dataset.subset([])
    with pytest.raises(ValueError, match="experience 1 has no training samples"):
        strategy.train(empty)
    assert strategy.model.tasks == [0]
    state = {k: v for k, v in strategy.model.state_dict().items() if torch.is_tensor(v)}
    assert set(state) == set(saved)
    for key, value in saved.items():
        assert torch.equal(state[key], value), key


@pytest.mark.parametrize(
    "bad",
    [dict(k=0), dict(explained_variance=1.5), dict(explained_variance=0.5, k=2), dict(pseudo_rank=0),
     dict(temporary_vectors=-1), dict(unknown_task="guess"), dict(rank=1000)],
)
def test_bad_settings_raise_before_the_backbone_changes(bad):
    vit = tiny_vit()
    with pytest.raises(ValueError):
        _strategy(vit, **bad)
    assert not any(isinstance(m, AdapterLayer) for m in vit.modules())


def test_unknown_keyword_is_a_type_error():
    vit = tiny_vit()
    with pytest.raises(TypeError):
        _strategy(vit, lambda_sparsity=0.1)
    assert not any(isinstance(m, AdapterLayer) for m in vit.modules())
