"""ShareClassifier without training: exact merges, stored-parameter formula, routing, loading."""

import io

import pytest
import torch
from torch import nn

from avalanche_litelora.share import ShareClassifier, task_key
from builders import tiny_vit

RANK = 4
N_SLICES = 4  # tiny_vit: 2 blocks, q and v of each fused qkv
D_IN = D_OUT = 32


def _model(**kwargs):
    torch.manual_seed(0)
    return ShareClassifier(tiny_vit(), rank=RANK, head=nn.Linear(32, 10), **kwargs)


@torch.no_grad()
def _randomise(model, names, used_rows=None):
    """Non-zero updates; rows past ``used_rows`` zero, so tasks share a smaller subspace."""
    gen = torch.Generator().manual_seed(3)
    for layer in model.share_layers().values():
        for name in names:
            for side in (layer.adapters[name].A, layer.adapters[name].B):
                for p in side.values():
                    p.copy_(torch.randn(p.shape, generator=gen))
                    if used_rows is not None:
                        p[used_rows:] = 0


def _deltas(model):
    return {
        (layer_name, name): layer.get_delta_weight(name).clone()
        for layer_name, layer in model.share_layers().items()
        for name in layer.adapters
    }


def _x(n=12, seed=5):
    return torch.rand(n, 1, 8, 8, generator=torch.Generator().manual_seed(seed))


def test_tasks_in_a_common_subspace_survive_the_merge_to_float_tolerance():
    model = _model()
    names = model.open_tasks([0, 1, 2], pseudo_rank=1, temporary_vectors=1)
    _randomise(model, names, used_rows=2)  # every task inside span of 2 temporary vectors
    before = _deltas(model)
    report = model.merge_subspace(explained_variance=1.0)
    assert set(model.basis_sizes().values()) == {2}
    after = _deltas(model)
    for key, delta in before.items():
        assert delta.abs().max() > 0.1
        assert torch.allclose(after[key], delta, atol=1e-5), key
    assert max(report.relative_errors.values()) < 1e-6
    assert report.tasks == [0, 1, 2] and report.basis_sizes == model.basis_sizes()


def test_stored_parameters_follow_the_formula():
    """Per slice: k (d_in + d_out) + 2 k sum_t p_t (eps_A and eps_B are k x p_t each)."""
    model = _model()
    _randomise(model, model.open_tasks([0, 1, 2], pseudo_rank=1, temporary_vectors=1))
    model.merge_subspace(k=2)  # first tasks: width min(rank, k) = 2
    for label in (3, 4):
        _randomise(model, model.open_tasks([label], pseudo_rank=1, temporary_vectors=2))
        model.merge_subspace(k=3)
    k, widths = 3, [2, 2, 2, 1, 1]
    per_slice = k * (D_IN + D_OUT) + 2 * k * sum(widths)
    assert model.adapter_parameter_count() == N_SLICES * per_slice
    per_task_lora = 5 * (N_SLICES * (RANK * (D_IN + D_OUT) + 1) + 1)
    assert model.per_task_lora_parameter_count() == per_task_lora
    assert model.parameter_ratio() == pytest.approx(per_task_lora / (N_SLICES * per_slice))


def test_mixed_task_labels_route_each_sample_to_its_own_task():
    model = _model().eval()
    _randomise(model, model.open_tasks([0, 1, 2], pseudo_rank=1, temporary_vectors=1))
    model.merge_subspace(k=3)
    x = _x()
    labels = torch.tensor([0, 1, 2, 2, 1, 0, 0, 2, 1, 1, 0, 2])
    with torch.no_grad():
        mixed = model(x, labels)
        for task in (0, 1, 2):  # reference: the task's update merged into the weights
            for layer in model.share_layers().values():
                layer.gate_values = {task_key(task): 1.0}
                layer.merge()
            expected = model.head(model.backbone(x))
            for layer in model.share_layers().values():
                layer.unmerge()
            mask = labels == task
            assert torch.allclose(mixed[mask], expected[mask], atol=1e-5)
            assert not torch.allclose(mixed[~mask], expected[~mask], atol=1e-3)


def test_without_task_labels_it_returns_every_trained_tasks_output(ti_benchmark):
    """As every MultiTaskModule does (LwF distils all heads through it)."""
    from avalanche_litelora import ShareStrategy
    from builders import MLP_TARGETS, quiet_evaluator, sgd, tiny_mlp

    backbone = tiny_mlp()
    strategy = ShareStrategy(
        model=backbone, optimizer=sgd(backbone), rank=4, target_modules=MLP_TARGETS,
        train_mb_size=32, train_epochs=1, evaluator=quiet_evaluator(),
    )
    for experience in list(ti_benchmark.train_stream)[:2]:
        strategy.train(experience)
    model = strategy.model.eval()
    x = ti_benchmark.test_stream[0].dataset[0][0].unsqueeze(0).repeat(3, 1, 1, 1)
    with torch.no_grad():
        every = model(x)
        assert sorted(every) == [0, 1]
        for task, out in every.items():
            torch.testing.assert_close(out, model(x, torch.full((3,), task))[:, : out.shape[1]])


def test_unknown_task_runs_on_the_bare_backbone_by_default_or_raises_if_asked():
    model = _model().eval()
    _randomise(model, model.open_tasks([0], pseudo_rank=1, temporary_vectors=1))
    reference = tiny_vit()
    reference.reset_classifier(0)
    x = _x()
    with torch.no_grad():
        out = model(x, torch.full((12,), 7))
        assert torch.allclose(out, model.head(reference(x)), atol=1e-6)
        assert not torch.allclose(model(x, torch.zeros(12, dtype=torch.long)), out, atol=1e-3)
    strict = _model(unknown_task="error")
    strict.open_tasks([0], pseudo_rank=1, temporary_vectors=1)
    with pytest.raises(ValueError, match="unknown_task"):
        strict(x, torch.full((12,), 7))


@pytest.mark.parametrize("merged", [True, False])
def test_state_dict_loads_into_a_fresh_model(merged):
    model = _model().eval()
    _randomise(model, model.open_tasks([0, 1], pseudo_rank=1, temporary_vectors=1))
    model.merge_subspace()
    _randomise(model, model.open_tasks([2], pseudo_rank=2, temporary_vectors=2))
    if merged:
        model.merge_subspace(k=2)
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    buffer.seek(0)
    fresh = _model().eval()
    fresh.load_state_dict(torch.load(buffer, weights_only=True))
    x, labels = _x(), torch.tensor([0, 1, 2] * 4)
    with torch.no_grad():
        assert torch.equal(fresh(x, labels), model(x, labels))
    assert fresh.tasks == model.tasks == [0, 1, 2]
    assert fresh.basis_sizes() == model.basis_sizes()
    assert fresh.merge_reports == model.merge_reports
    assert fresh.adapter_parameter_count() == model.adapter_parameter_count()


def test_bad_settings_leave_the_backbone_untouched():
    vit = tiny_vit()
    for kwargs in (dict(unknown_task="guess"), dict(rank=100), dict(target_modules=["nope"])):
        with pytest.raises(ValueError):
            ShareClassifier(vit, **kwargs)
        assert not any("basis" in n for n, _ in vit.named_parameters())
    model = _model()
    with pytest.raises(ValueError):
        model.open_tasks([0], pseudo_rank=0, temporary_vectors=1)
    assert model.tasks == []
