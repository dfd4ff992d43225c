"""Property tests: any mix of valid and invalid arguments is either accepted or refused with a
clear error naming a bad argument, and a refusal leaves the backbone exactly as it was."""

from __future__ import annotations

import math
import numbers

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from avalanche_litelora import LiteLoRAStrategy, LoRALinear
from builders import quiet_evaluator, sgd, tiny_mlp

#: Which of the MLP's Linear layers each pattern reaches ("classifier" is never adapted).
PATTERNS = {
    "features.0": {"features.0"},
    "features.3.0": {"features.3.0"},
    "features.*.0": {"features.3.0"},
    "nope": set(),
    "classifier": set(),
}
MLP_WIDTH = 64


def _real(v) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v)


def _count(v, minimum=1) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= minimum


junk = st.sampled_from([None, True, "1", 2.5])
non_finite = st.sampled_from([math.nan, math.inf, -math.inf])
finite = st.floats(min_value=-5.0, max_value=5.0)

#: Valid and invalid values per argument. An example starts valid and breaks 0-2 of them,
#: so that both outcomes are drawn often.
VALID = {
    "rank": st.integers(1, MLP_WIDTH),
    "lambda_sparsity": st.floats(min_value=0.0, max_value=2.0),
    "tau": st.floats(min_value=0.01, max_value=5.0),
    "init_logit": st.floats(min_value=0.01, max_value=5.0),
    "train_mb_size": st.integers(1, 64),
    "selection_mb_size": st.one_of(st.none(), st.integers(1, 16)),
    "target_modules": st.lists(st.sampled_from(["features.0", "features.3.0", "features.*.0"]),
                               min_size=1, max_size=3, unique=True),
}
INVALID = {
    "rank": st.one_of(st.integers(-2, 0), st.integers(MLP_WIDTH + 1, 70), junk),
    "lambda_sparsity": st.one_of(st.floats(max_value=-1e-6, min_value=-5.0), non_finite, junk),
    "tau": st.one_of(st.floats(min_value=-5.0, max_value=0.0), non_finite, junk),
    "init_logit": st.one_of(st.floats(min_value=-5.0, max_value=0.0), non_finite, junk),
    "train_mb_size": st.one_of(st.integers(-2, 0), junk),
    "selection_mb_size": st.one_of(st.integers(-2, 0), st.just(True), st.just(2.0)),
    "target_modules": st.one_of(
        st.just([]), st.just(["nope"]), st.just(["classifier"]), st.just(["features.0"] * 2),
        st.just([None]), st.just([""]), st.just(["features.0", 3]),
    ),
    "train_epochs": st.one_of(st.integers(-1, 0), junk),
    "selection_epochs": st.one_of(st.integers(-2, -1), junk),
}


@st.composite
def arguments(draw) -> dict:
    args = {k: draw(v) for k, v in VALID.items()}
    args["train_epochs"] = draw(st.integers(2, 4))
    args["selection_epochs"] = draw(st.integers(0, 3))  # extra to train_epochs, 0 allowed
    broken = draw(st.lists(st.sampled_from(sorted(INVALID)), max_size=2, unique=True))
    for key in broken:
        args[key] = draw(INVALID[key])
    return args


def invalid_arguments(a: dict) -> set:
    """The oracle: which arguments are wrong, written independently of the package."""
    bad = set()
    if not (_count(a["rank"]) and a["rank"] <= MLP_WIDTH):
        bad.add("rank")
    if not (_real(a["lambda_sparsity"]) and a["lambda_sparsity"] >= 0):
        bad.add("lambda_sparsity")
    if not _count(a["train_epochs"]):
        bad.add("train_epochs")
    if not _count(a["selection_epochs"], 0):
        bad.add("selection_epochs")
    if not (_real(a["tau"]) and a["tau"] > 0):
        bad.add("tau")
    if not (_real(a["init_logit"]) and a["init_logit"] > 0):  # a closed gate never trains
        bad.add("init_logit")
    if not _count(a["train_mb_size"]):
        bad.add("train_mb_size")
    if a["selection_mb_size"] is not None and not _count(a["selection_mb_size"]):
        bad.add("selection_mb_size")
    targets = a["target_modules"]
    if (
        not targets
        or any(not isinstance(t, str) or not t for t in targets)
        or len(set(targets)) != len(targets)
        or not set().union(*(PATTERNS[t] for t in targets))
    ):
        bad.add("target_modules")
    return bad


def _snapshot(module):
    return {k: v.clone() for k, v in module.state_dict().items()}


@settings(max_examples=40, deadline=None)
@given(arguments())
def test_strategy_arguments_are_accepted_or_refused_before_any_change(args):
    mlp = tiny_mlp()
    before = _snapshot(mlp)
    bad = invalid_arguments(args)
    try:
        strategy = LiteLoRAStrategy(
            model=mlp, optimizer=sgd(mlp), eval_mb_size=64, evaluator=quiet_evaluator(), **args
        )
    except (ValueError, TypeError) as err:
        assert bad, f"valid arguments refused: {err}"
        assert any(name in str(err) for name in bad), (str(err), bad)
        after = _snapshot(mlp)
        assert before.keys() == after.keys()
        assert all(torch.equal(before[k], after[k]) for k in before)
        assert isinstance(mlp.classifier, nn.Linear)
        assert not any(isinstance(m, LoRALinear) for m in mlp.modules())
        assert all(p.requires_grad for p in mlp.parameters())
        return
    assert not bad, f"invalid {sorted(bad)} accepted"
    wrapped = set(strategy.model.lora_layer_names)
    assert wrapped == set().union(*(PATTERNS[t] for t in args["target_modules"]))


# --------------------------------------------------------------- LoRA wrapper shapes
def _slices(out_features):
    bound = st.integers(-1, out_features + 1)
    pair = st.tuples(bound, bound)
    return st.one_of(
        st.none(),
        st.dictionaries(st.sampled_from(["q", "k", "v", "a.b", ""]), pair, max_size=3),
    )


@st.composite
def layer_specs(draw):
    in_f = draw(st.integers(1, 12))
    out_f = draw(st.integers(1, 12))
    return dict(
        in_f=in_f,
        out_f=out_f,
        rank=draw(st.one_of(st.integers(-1, 13), st.just(True))),
        slices=draw(_slices(out_f)),
        lead=draw(st.lists(st.integers(1, 3), min_size=1, max_size=3)),
    )


def _valid_layer(spec) -> bool:
    slices = {"out": (0, spec["out_f"])} if spec["slices"] is None else spec["slices"]
    if not slices:
        return False
    spans = []
    for key, (start, end) in slices.items():
        if not key or "." in key or not 0 <= start < end <= spec["out_f"]:
            return False
        if any(start < e and s < end for s, e in spans):
            return False
        spans.append((start, end))
    width = min([spec["in_f"]] + [e - s for s, e in spans])
    return _count(spec["rank"]) and spec["rank"] <= width


@settings(max_examples=50, deadline=None)
@given(layer_specs())
def test_lora_wrapper_shapes(spec):
    torch.manual_seed(0)
    base = nn.Linear(spec["in_f"], spec["out_f"])
    weight = base.weight.detach().clone()
    try:
        layer = LoRALinear(base, spec["rank"], spec["slices"])
    except ValueError:
        assert not _valid_layer(spec)
        assert torch.equal(base.weight, weight) and base.weight.requires_grad
        return
    assert _valid_layer(spec)
    x = torch.randn(*spec["lead"], spec["in_f"])
    assert torch.equal(layer(x), base(x))  # no adapter yet
    adapter = layer.add_adapter("t0")
    assert torch.equal(layer(x), base(x))  # B starts at zero
    with torch.no_grad():
        for b in adapter.B.values():
            b.normal_()
    out = layer(x)
    assert out.shape == (*spec["lead"], spec["out_f"])
    expected = torch.nn.functional.linear(x, weight + layer.get_delta_weight("t0"), base.bias)
    torch.testing.assert_close(out, expected, rtol=1e-4, atol=1e-4)
    layer.merge()
    torch.testing.assert_close(layer(x), out, rtol=1e-4, atol=1e-4)
    layer.unmerge()
    assert torch.equal(base.weight, weight)


@pytest.mark.parametrize("x_width", [3, 9])
def test_input_of_the_wrong_width_is_refused_by_the_base_layer(x_width):
    layer = LoRALinear(nn.Linear(6, 4), 2)
    layer.add_adapter("t0")
    with pytest.raises(RuntimeError):
        layer(torch.randn(2, x_width))
