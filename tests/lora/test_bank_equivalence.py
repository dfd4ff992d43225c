"""The stacked bank computes what the looped bank of ee10a4b computed, forward and backward.

:func:`looped_forward` is an independent copy of that looped forward (one adapter and one
slice at a time, straight from the parameters): the oracle. Every check runs in float64
on random banks, in both forms and in the automatic choice.
"""

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from avalanche_litelora.lora.gate import straight_through_gumbel_sigmoid
from avalanche_litelora.lora.layer import LoRALinear, qkv_slices

TOL = dict(rtol=0, atol=1e-10)
FORMS = ["lowrank", "dense", None]


def looped_forward(layer: LoRALinear, x):
    """ee10a4b's forward: per adapter, per slice, two small matmuls added into the output."""
    out = layer.base(x)
    for name, adapter in layer.adapters.items():
        beta = layer.gate_values.get(name, 1.0)
        if (not torch.is_tensor(beta) or not beta.requires_grad) and float(beta) == 0.0:
            continue
        for key, (start, end) in layer.out_slices.items():
            a, b, magnitude = adapter.A[key], adapter.B[key], adapter.magnitude[key]
            norm = (b.norm() * a.norm()).clamp_min(torch.finfo(a.dtype).tiny)
            scale = magnitude / norm if bool(adapter.normalized) else magnitude
            if layer.is_conv:
                update = F.conv2d(F.conv2d(x, a[:, :, None, None], stride=layer.base.stride),
                                  b[:, :, None, None])
                target = out[:, start:end]
            else:
                update = (x @ a.t()) @ b.t()
                target = out[..., start:end]
            target += (beta * scale) * update
    return out


def _base(kind, generator):
    if kind == "qkv":
        base = nn.Linear(12, 36)
    elif kind == "linear":
        base = nn.Linear(10, 7)
    else:
        base = nn.Conv2d(6, 9, 1, stride=2 if kind == "conv_stride" else 1)
    with torch.no_grad():
        for p in base.parameters():
            p.copy_(torch.randn(p.shape, generator=generator))
    return base.double()


def _input(kind, generator):
    if kind.startswith("conv"):
        return torch.randn(3, 6, 5, 5, generator=generator, dtype=torch.float64)
    features = 12 if kind == "qkv" else 10
    return torch.randn(2, 5, features, generator=generator, dtype=torch.float64)


def random_bank(kind, n_frozen, *, seed=0, candidate="training", closed=()):
    """A float64 layer with ``n_frozen`` frozen SD-LoRA directions (magnitudes train) and a
    candidate: ``"training"`` (its A, B, magnitude train), ``"selecting"`` (only its gate
    logit trains, through the straight-through gate) or ``None``."""
    g = torch.Generator().manual_seed(seed)
    base = _base(kind, g)
    layer = LoRALinear(base, rank=3, out_slices=qkv_slices(base) if kind == "qkv" else None)
    names = [f"adapter_{i}" for i in range(n_frozen)] + (["cand"] if candidate else [])
    for name in names:
        adapter = layer.add_adapter(name, generator=g)
        with torch.no_grad():
            for key in adapter.B:
                adapter.B[key].copy_(torch.randn(adapter.B[key].shape, generator=g, dtype=torch.float64))
                adapter.magnitude[key].fill_(float(torch.rand((), generator=g)) + 0.5)
        if name != "cand":
            adapter.to_direction_form()
            adapter.set_requires_grad(adapter=False, magnitude=True)
    gates = {n: torch.tensor(0.0 if n in closed else 1.0, dtype=torch.float64) for n in names}
    logit = None
    if candidate == "selecting":
        layer.adapters["cand"].set_requires_grad(adapter=False, magnitude=False)
        logit = nn.Parameter(torch.tensor(0.3, dtype=torch.float64))
        torch.manual_seed(seed)
        gates["cand"] = straight_through_gumbel_sigmoid(logit, 1.0)
    layer.gate_values = gates
    return layer, logit


def _grads(layer, x, logit, forward):
    x = x.clone().requires_grad_(True)
    out = forward(layer, x)
    weights = torch.linspace(-1, 1, out.numel(), dtype=out.dtype).view_as(out)
    (out * weights).sum().backward(retain_graph=logit is not None)
    tensors = {"x": x}
    tensors.update({n: p for n, p in layer.named_parameters() if p.requires_grad})
    if logit is not None:
        tensors["logit"] = logit
    grads = {k: (t.grad.clone() if t.grad is not None else None) for k, t in tensors.items()}
    for t in tensors.values():
        t.grad = None
    return out.detach(), grads


def _assert_same(layer, x, logit, form):
    expected, expected_grads = _grads(layer, x, logit, looped_forward)
    layer.bank_form = form
    got, got_grads = _grads(layer, x, logit, lambda lyr, inp: lyr(inp))
    torch.testing.assert_close(got, expected, **TOL)
    assert got_grads.keys() == expected_grads.keys()
    for key, grad in expected_grads.items():
        if grad is None:
            assert got_grads[key] is None, key
        else:
            torch.testing.assert_close(got_grads[key], grad, **TOL, msg=key)


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("kind", ["qkv", "linear", "conv", "conv_stride"])
@pytest.mark.parametrize("n_frozen", [0, 1, 4, 12])
def test_forward_and_backward_equal_the_looped_bank(kind, n_frozen, form):
    layer, logit = random_bank(kind, n_frozen, seed=n_frozen)
    x = _input(kind, torch.Generator().manual_seed(1))
    _assert_same(layer, x, logit, form)


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("kind", ["qkv", "conv"])
def test_a_candidate_under_selection_gets_its_gate_gradient(kind, form):
    layer, logit = random_bank(kind, 5, seed=3, candidate="selecting")
    x = _input(kind, torch.Generator().manual_seed(2))
    _assert_same(layer, x, logit, form)
    layer.bank_form = form
    layer(x).sum().backward()
    assert logit.grad is not None and logit.grad != 0


@pytest.mark.parametrize("form", FORMS)
def test_a_closed_gate_contributes_exactly_nothing(form):
    layer, _ = random_bank("qkv", 6, seed=4, closed=("adapter_1", "adapter_4"))
    x = _input("qkv", torch.Generator().manual_seed(3))
    _assert_same(layer, x, None, form)
    layer.bank_form = form
    with torch.no_grad():
        with_closed = layer(x)
        for name in ("adapter_1", "adapter_4"):
            layer.delete_adapter(name)
        assert torch.equal(layer(x), with_closed)
        layer.gate_values = {n: torch.tensor(0.0, dtype=torch.float64) for n in layer.adapters}
        assert torch.equal(layer(x), layer.base(x))


def test_a_closed_candidate_under_selection_still_gets_a_gradient():
    """Straight-through: the sampled gate is 0 forward, its soft gradient flows backward."""
    layer, _ = random_bank("qkv", 3, seed=5, candidate=None)
    layer.add_adapter("cand")
    layer.adapters["cand"].set_requires_grad(adapter=False, magnitude=False)
    with torch.no_grad():
        for b in layer.adapters["cand"].B.values():
            b.normal_()
    logit = nn.Parameter(torch.tensor(-30.0, dtype=torch.float64))
    gate = straight_through_gumbel_sigmoid(logit, 1.0)
    assert float(gate.detach()) == 0.0
    layer.gate_values = dict(layer.gate_values, cand=gate)
    x = _input("qkv", torch.Generator().manual_seed(4))
    _assert_same(layer, x, logit, None)


@pytest.mark.parametrize("form", FORMS)
def test_without_autograd_every_adapter_is_stacked_and_still_equal(form):
    layer, _ = random_bank("qkv", 7, seed=6)
    x = _input("qkv", torch.Generator().manual_seed(5))
    layer.bank_form = form
    with torch.no_grad():
        torch.testing.assert_close(layer(x), looped_forward(layer, x), **TOL)


def test_the_stack_is_the_sum_of_the_gated_delta_weights():
    """``get_delta_weight`` stays the one definition: the fold is the gated sum of it."""
    from avalanche_litelora.adapters import stacked as bank

    layer, _ = random_bank("qkv", 6, seed=7, candidate=None)
    layer.gate_values["adapter_2"] = torch.tensor(0.5, dtype=torch.float64)
    entries = list(layer.gate_values.items())
    stacked = layer._stack(entries)
    folded = bank.folded_weight(layer.weight, stacked.slices, bank.slice_deltas([stacked]))
    expected = layer.weight + sum(float(g) * layer.get_delta_weight(n) for n, g in entries)
    torch.testing.assert_close(folded, expected, **TOL)


def test_the_bank_follows_every_change_and_leaves_the_state_dict_alone():
    layer, _ = random_bank("qkv", 4, seed=8)
    keys = set(layer.state_dict())
    x = _input("qkv", torch.Generator().manual_seed(6))
    for form in ("lowrank", "dense"):
        layer.bank_form = form
        layer(x)
    assert set(layer.state_dict()) == keys  # nothing cached reaches the state dict

    def check():
        with torch.no_grad():
            torch.testing.assert_close(layer(x), looped_forward(layer, x), **TOL)

    layer.add_adapter("late")
    layer.gate_values = dict(layer.gate_values, late=torch.tensor(1.0, dtype=torch.float64))
    with torch.no_grad():
        layer.adapters["late"].B["q"].normal_()
    check()
    layer.adapters["late"].to_direction_form()  # freeze: the update is unchanged
    check()
    layer.delete_adapter("adapter_1")
    check()
    with torch.no_grad():
        layer.adapters["adapter_0"].magnitude["v"].mul_(3.0)  # an optimizer step, in place
    check()
    state = {k: v.clone() for k, v in layer.state_dict().items()}
    with torch.no_grad():
        layer.adapters["adapter_0"].normalized.fill_(False)
        layer.adapters["adapter_0"].magnitude["q"].zero_()
    check()
    layer.load_state_dict(state)
    check()
    layer.float()
    x = x.float()
    with torch.no_grad():
        torch.testing.assert_close(layer(x), looped_forward(layer, x), rtol=1e-5, atol=1e-5)


def test_merge_and_unmerge_stay_exact_mirrors():
    layer, _ = random_bank("qkv", 5, seed=9, candidate=None)
    x = _input("qkv", torch.Generator().manual_seed(7))
    weight = layer.weight.detach().clone()
    with torch.no_grad():
        unmerged = layer(x)
        layer.merge()
        torch.testing.assert_close(layer(x), unmerged, **TOL)
        layer.unmerge()
    assert torch.equal(layer.weight, weight)


def _stream_outcome(monkeypatch, looped: bool, kind: str):
    from avalanche.training.determinism.rng_manager import RNGManager

    from avalanche_litelora import LiteLoRAStrategy, PerTaskLoRAStrategy
    from builders import digits_benchmark, lite_kwargs, quiet_evaluator, sgd, tiny_mlp, tiny_vit

    with monkeypatch.context() as patch:
        if looped:
            patch.setattr(LoRALinear, "forward", looped_forward)
        benchmark = digits_benchmark(5, task_labels=False)
        RNGManager.set_random_seeds(1993)
        if kind == "litelora":  # the settings at which this stream prunes candidates
            model = tiny_mlp()
            strategy = LiteLoRAStrategy(model=model, optimizer=sgd(model), **lite_kwargs(  # the oracle
                train_epochs=2, lambda_sparsity=0.05, selection_lr=0.02, gate_sampling="per_forward",
                boundary="preserve"))
        else:
            model = tiny_vit()
            strategy = PerTaskLoRAStrategy(  # the oracle's mechanics: the norms kept at the boundary
                model=model, optimizer=sgd(model, 0.1), rank=4, train_mb_size=32, train_epochs=2,
                eval_mb_size=512, evaluator=quiet_evaluator(), boundary="preserve")
        for experience in list(benchmark.train_stream)[:3]:
            strategy.train(experience)
        metrics = strategy.eval(benchmark.test_stream)
    accuracy = next(v for k, v in metrics.items() if k.startswith("Top1_Acc_Stream"))
    return strategy.model.adapter_names, strategy.model.pruned_adapters, accuracy, strategy.magnitudes()


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["litelora", "per_task"])
def test_same_seed_same_prune_decisions_and_metrics_as_the_looped_bank(monkeypatch, kind):
    kept, pruned, accuracy, magnitudes = _stream_outcome(monkeypatch, False, kind)
    kept_ref, pruned_ref, accuracy_ref, magnitudes_ref = _stream_outcome(monkeypatch, True, kind)
    assert (kept, pruned) == (kept_ref, pruned_ref)
    if kind == "litelora":
        assert pruned  # the stream does exercise pruning
    else:
        assert len(kept) == 3  # and a bank of several adapters whose magnitudes train
    assert accuracy == pytest.approx(accuracy_ref, abs=1e-2)  # float32 rounding only
    for name, by_layer in magnitudes_ref.items():
        for key, alpha in by_layer.items():
            assert magnitudes[name][key] == pytest.approx(alpha, rel=1e-3), (name, key)


@pytest.mark.parametrize("form", FORMS)
def test_a_frozen_direction_whose_factors_train_again_gets_their_norm_gradient(form):
    """Not a state the strategies create, but the arithmetic must still be SD-LoRA's."""
    layer, logit = random_bank("qkv", 3, seed=10)
    layer.adapters["adapter_1"].set_requires_grad(adapter=True, magnitude=True)
    x = _input("qkv", torch.Generator().manual_seed(8))
    _assert_same(layer, x, logit, form)


@pytest.mark.parametrize("form", FORMS)
def test_an_untracked_3d_input_still_trains_the_magnitudes(form):
    """A 3-D input autograd does not track (BERT's first layer, its embeddings frozen):
    ``F.linear`` returns a view of an untracked tensor, which an in-place update cannot take."""
    layer, _ = random_bank("linear", 2, candidate=None)
    layer.bank_form = form
    x = torch.randn(2, 5, 10, dtype=torch.float64)  # requires no grad
    assert layer.base(x)._is_view()
    out = layer(x)
    torch.testing.assert_close(out, looped_forward(layer, x.clone().requires_grad_()).detach(), **TOL)
    out.sum().backward()
    magnitudes = [p for n, p in layer.named_parameters() if "magnitude" in n]
    assert magnitudes and all(p.grad is not None and p.grad.abs().sum() > 0 for p in magnitudes)
