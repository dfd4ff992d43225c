"""The per-experience metrics driven callback by callback: ordering, which evaluations count, DDP."""

from types import SimpleNamespace

import pytest
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from avalanche_litelora import LoRAClassifier
from avalanche_litelora.metrics import (
    AdapterRedundancyMetric,
    BankReadoutMetric,
    ForgettingCurveMetric,
    forgetting_per_experience,
)
from builders import MLP_TARGETS, random_bank, tiny_mlp

N = 12


def _experience(index, stream="test"):
    return SimpleNamespace(current_experience=index, origin_stream=SimpleNamespace(name=stream))


def _train(metric, index):
    strategy = SimpleNamespace(experience=_experience(index, "train"))
    metric.before_training_exp(strategy)
    metric.after_training_exp(strategy)


def _eval(metric, accuracies, stream="test"):
    """One evaluation pass; ``accuracies[j]`` in hundredths becomes 100 predictions on experience j."""
    for j, accuracy in accuracies.items():
        correct = round(accuracy * 100)
        strategy = SimpleNamespace(
            experience=_experience(j, stream),
            mb_y=torch.zeros(100, dtype=torch.long),
            mb_output=torch.cat([torch.zeros(correct), torch.ones(100 - correct)]).long(),
        )
        metric.before_eval_exp(strategy)
        metric.after_eval_iteration(strategy)
        metric.after_eval_exp(strategy)
    return {v.name: (v.x_plot, v.value) for v in metric.after_eval(SimpleNamespace())}


def test_twelve_experiences_full_stream_numeric_order():
    matrix = [[(1.0 - 0.01 * (i - j)) if j <= i else 0.0 for j in range(N)] for i in range(N)]
    matrix[11][10] = 0.5
    metric = ForgettingCurveMetric()
    for i in range(N):
        _train(metric, i)
        emitted = _eval(metric, {j: matrix[i][j] for j in range(N)})  # future experiences too
        assert {x for x, _ in emitted.values()} == {i}
    expected = forgetting_per_experience(matrix)
    assert expected[10] == pytest.approx(0.5) and expected[2] == pytest.approx(0.09)
    forgetting_tags = sorted(t for t in emitted if t.split("/")[-1].startswith("Exp"))
    assert forgetting_tags == [f"Forgetting_Curve/test_stream/Exp{j:03d}" for j in range(N - 1)]
    for j, value in expected.items():
        assert emitted[f"Forgetting_Curve/test_stream/Exp{j:03d}"][1] == pytest.approx(value)
    # accuracy on the seen experiences ignores the zeros of experiences not trained yet
    assert emitted["Accuracy_Seen/test_stream"][1] == pytest.approx(sum(matrix[11]) / N)


def test_only_complete_rows_of_the_chosen_stream_count():
    metric = ForgettingCurveMetric("test_stream")
    assert _eval(metric, {0: 0.5}) == {}  # before any training: nothing to plot
    _train(metric, 0)
    assert _eval(metric, {0: 0.9}, stream="train") == {}  # train() default eval stream
    first = _eval(metric, {0: 0.8, 1: 0.1})
    assert first["Accuracy_Seen/test_stream"] == (0, pytest.approx(0.8))
    assert _eval(metric, {0: 0.8, 1: 0.1}) == {}  # a second evaluation adds no second point
    _train(metric, 1)
    assert _eval(metric, {1: 0.7}) == {}  # experience 0 missing: the row is not complete yet
    second = _eval(metric, {0: 0.6})
    assert second["Forgetting_Curve/test_stream/Exp000"] == (1, pytest.approx(0.2))
    assert second["Anytime_Accuracy/test_stream"] == (1, pytest.approx((0.8 + 0.65) / 2))


def test_skipped_evaluation_warns_and_withholds_forgetting():
    metric = ForgettingCurveMetric()
    _train(metric, 0)  # no evaluation after experience 0
    _train(metric, 1)
    with pytest.warns(RuntimeWarning, match="after every experience"):
        emitted = _eval(metric, {0: 0.5, 1: 0.7})
    assert set(emitted) == {"Accuracy_Seen/test_stream"}


def test_stream_name_is_checked_before_anything():
    with pytest.raises(ValueError):
        ForgettingCurveMetric("")


@pytest.fixture
def single_process_group(tmp_path):
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    yield
    dist.destroy_process_group()


def test_bank_metrics_unwrap_ddp(single_process_group):
    model = LoRAClassifier(tiny_mlp(), rank=2, target_modules=MLP_TARGETS)
    random_bank(model, 2)
    model.prune("adapter_1")
    strategy = SimpleNamespace(model=DistributedDataParallel(model))
    readout = {v.name: v.value for v in BankReadoutMetric().after_training_exp(strategy)}
    assert readout["Bank/active_adapters"] == 1 and readout["Bank/pruned_adapters"] == 1
    assert readout["Bank/adapter_parameters"] == model.adapter_parameter_count()
    assert readout["Bank/gate_logit/adapter_0"] == pytest.approx(model.gate_logits()["adapter_0"])
    assert "Bank/magnitude/adapter_0" in readout and not any("adapter_00" in tag for tag in readout)
    redundancy = {v.name: v for v in AdapterRedundancyMetric().after_training_exp(strategy)}
    assert redundancy["Redundancy/rank99"].value == 4  # one rank-2 adapter in each of two layers
    image = redundancy["Images/adapter_overlap"].value.image
    assert image.shape[0] == 3 and 0.0 <= float(image.min()) and float(image.max()) <= 1.0
