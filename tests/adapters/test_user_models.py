"""The user's model, as they wrote it: its classifier leaves the forward path and gets no LoRA.

Each model shape an Avalanche user brings (Avalanche's own models, torchvision's, timm's,
transformers' sequence classifiers, a container ending in a Linear) is built with random
weights, handed to a strategy as is, and trained on one tiny experience. The old classifier
must never run, hold no adapter, and the new head must take what it received.
"""

from __future__ import annotations

import logging
import warnings
from typing import Callable, NamedTuple

import pytest
import torch
import torchvision
from avalanche.benchmarks.scenarios.deprecated.generators import nc_benchmark
from avalanche.models import MTSimpleCNN, MTSimpleMLP, MultiHeadClassifier, SimpleCNN, SimpleMLP, as_multitask
from torch import nn
from torch.utils.data import TensorDataset

from avalanche_litelora import LiteLoRAStrategy, LoRAClassifier, PerTaskLoRAStrategy
from avalanche_litelora.backbones.text import pack_tokens
from avalanche_litelora.adapters.pending_head import PendingHead
from avalanche_litelora.adapters.surgery import RemovedClassifier, UnrecognisedClassifierWarning
from builders import quiet_evaluator, single_thread, tiny_vit

transformers = pytest.importorskip("transformers")
timm = pytest.importorskip("timm")

N_CLASSES = 4


one_thread = pytest.fixture(autouse=True)(single_thread)


def _dataset(x: torch.Tensor, y: torch.Tensor) -> TensorDataset:
    data = TensorDataset(x, y)
    data.targets = y.tolist()
    return data


def image_stream(shape, task_labels=False, n=32):
    """Two experiences of two classes each, ``n`` train and ``n // 2`` test samples per experience."""
    g = torch.Generator().manual_seed(0)

    def split(count):
        y = torch.arange(N_CLASSES).repeat_interleave(count // 2)
        return _dataset(torch.randn(len(y), *shape, generator=g) + y.view(-1, *[1] * len(shape)), y)

    return nc_benchmark(split(n), split(n // 2), n_experiences=2, task_labels=task_labels, seed=0)


def token_stream(n=32, length=8):
    g = torch.Generator().manual_seed(0)

    def split(count):
        y = torch.arange(N_CLASSES).repeat_interleave(count // 2)
        ids = 10 * y[:, None] + torch.randint(2, 10, (len(y), length), generator=g)
        return _dataset(pack_tokens(ids, torch.ones_like(ids)), y)

    return nc_benchmark(split(n), split(n // 2), n_experiences=2, task_labels=False, seed=0)


def _bert():
    config = transformers.BertConfig(
        vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=32, max_position_embeddings=16, num_labels=7,
    )
    return transformers.BertForSequenceClassification(config)


def _roberta():
    config = transformers.RobertaConfig(
        vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=32, max_position_embeddings=20, num_labels=7, pad_token_id=1,
    )
    return transformers.RobertaForSequenceClassification(config)


class VGGLike(nn.Module):
    """A user's model whose classifier container holds more than its output layer (as VGG's)."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Flatten(), nn.Linear(64, 24), nn.ReLU())
        self.classifier = nn.Sequential(nn.Linear(24, 16), nn.ReLU(), nn.Dropout(0.0), nn.Linear(16, 10))

    def forward(self, x):
        return self.classifier(self.features(x))


class Case(NamedTuple):
    build: Callable[[], nn.Module]
    dropped: str  # in the model as the user wrote it
    in_features: int
    stream: Callable
    task_incremental: bool = False
    kept: str = ""  # a layer of the classifier container that stays in the feature extractor


CASES = {
    "avalanche SimpleCNN": Case(
        lambda: SimpleCNN(num_classes=10), "classifier.0", 64, lambda: image_stream((3, 16, 16))
    ),
    "avalanche SimpleMLP": Case(
        lambda: SimpleMLP(num_classes=10, input_size=64, hidden_size=32, drop_rate=0), "classifier", 32,
        lambda: image_stream((1, 8, 8)),
    ),
    "avalanche MTSimpleCNN": Case(
        MTSimpleCNN, "classifier", 64, lambda: image_stream((3, 16, 16), task_labels=True), task_incremental=True
    ),
    "avalanche MTSimpleMLP": Case(
        lambda: MTSimpleMLP(input_size=64, hidden_size=32), "classifier", 32,
        lambda: image_stream((1, 8, 8), task_labels=True), task_incremental=True,
    ),
    "avalanche as_multitask(SimpleMLP)": Case(
        lambda: as_multitask(SimpleMLP(num_classes=10, input_size=64, hidden_size=32, drop_rate=0), "classifier"),
        "classifier", 32, lambda: image_stream((1, 8, 8), task_labels=True), task_incremental=True,
    ),
    "torchvision resnet18": Case(
        lambda: torchvision.models.resnet18(weights=None, num_classes=10), "fc", 512, lambda: image_stream((3, 16, 16))
    ),
    "container ending in a Linear": Case(
        VGGLike, "classifier.3", 16, lambda: image_stream((1, 8, 8)), kept="classifier.0"
    ),
    "timm ViT": Case(tiny_vit, "head", 32, lambda: image_stream((1, 8, 8))),
    "timm MobileNetV3 (pre-logits conv_head)": Case(
        lambda: timm.create_model("mobilenetv3_small_050", pretrained=False, num_classes=10), "classifier", 1024,
        lambda: image_stream((3, 32, 32)),
    ),
    "transformers BERT": Case(_bert, "classifier", 16, token_stream),
    "transformers RoBERTa": Case(_roberta, "classifier.out_proj", 16, token_stream, kept="classifier.dense"),
}


def _strategy(case: Case, model: nn.Module, strategy_class=PerTaskLoRAStrategy, **overrides):
    kwargs = dict(
        rank=2, task_incremental=case.task_incremental, train_mb_size=16, eval_mb_size=16,
        evaluator=quiet_evaluator(),
    )
    kwargs.update(overrides)
    return strategy_class(model=model, optimizer=torch.optim.SGD(model.parameters(), lr=0.05), **kwargs)


def _calls(module: nn.Module) -> list:
    calls = []
    module.register_forward_hook(lambda *_: calls.append(1))
    return calls


@pytest.mark.parametrize("name", list(CASES))
def test_the_old_classifier_leaves_the_forward_path_and_the_strategy_trains(name):
    case = CASES[name]
    torch.manual_seed(0)
    model = case.build()
    old = model.get_submodule(case.dropped)
    old_tensors = {id(p) for p in old.parameters()}
    old_calls = _calls(old)
    kept_calls = _calls(model.get_submodule(case.kept)) if case.kept else None
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnrecognisedClassifierWarning)
        strategy = _strategy(case, model)
    lora = strategy.model

    assert all(m is not old for m in lora.modules())
    assert not old_tensors & {id(p) for p in lora.parameters()}
    assert lora.lora_layer_names and all(layer.base is not old for layer in lora.lora_layers().values())
    assert all(case.dropped not in n for n in lora.lora_layer_names)
    assert f"{case.dropped!r}" in lora.surgery_report and "dropped from the forward path" in lora.surgery_report

    stream = case.stream()
    strategy.train(stream.train_stream[0])
    strategy.eval(stream.test_stream[:1])
    assert old_calls == []  # the old classifier never ran
    if kept_calls is not None:
        assert kept_calls  # the layers before it in its container still do
    head = lora.head.classifiers["0"] if case.task_incremental else lora.head
    assert head.classifier.in_features == case.in_features
    trained = [b for layer in lora.lora_layers().values() for b in layer.adapters["adapter_0"].B.values()]
    assert any(float(b.abs().sum()) > 0 for b in trained)  # the gradient reached the adapters


def test_simplecnn_positionally_with_litelora_as_the_issue_wrote_it():
    """The issue's case: SimpleCNN, ``LiteLoRAStrategy(model, optimizer, criterion)``."""
    model = SimpleCNN(num_classes=10)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    with pytest.warns(Warning) as record:
        strategy = LiteLoRAStrategy(
            model, optimizer, nn.CrossEntropyLoss(), 16, rank=2, min_selection_steps=3,
            eval_mb_size=16, evaluator=quiet_evaluator(),
        )
    assert not [w for w in record if issubclass(w.category, UnrecognisedClassifierWarning)]
    assert isinstance(model.classifier[0], RemovedClassifier)
    assert strategy.model.lora_layer_names == ["features.12"]  # the 1x1 conv, not the old output layer
    strategy.train(image_stream((3, 16, 16)).train_stream[0])
    assert strategy.model.head.classifier.in_features == 64


def test_a_multi_task_backbone_is_called_with_its_input_alone_and_keeps_its_state_dict_keys():
    model = MTSimpleMLP(input_size=64, hidden_size=32)
    keys = {k for k in model.state_dict() if not k.startswith("classifier.")}
    lora = LoRAClassifier(model, rank=2, task_incremental=True)
    assert isinstance(model.classifier, RemovedClassifier)
    assert not any(isinstance(m, MultiHeadClassifier) for m in lora.backbone.modules())
    assert lora.backbone(torch.randn(3, 1, 8, 8)).shape == (3, 32)
    assert {k.replace(".base.", ".") for k in lora.backbone.state_dict() if ".adapters." not in k} == keys


def test_a_multi_task_backbone_whose_classifier_is_not_recognised_is_refused_before_anything_changes():
    class OwnHeads(MTSimpleMLP):
        def __init__(self):
            super().__init__(input_size=64, hidden_size=32)
            self.out = nn.ModuleDict({"0": nn.Linear(32, 3)})
            del self.classifier

    model = OwnHeads()
    with pytest.raises(ValueError, match="MultiTaskModule whose classifier"):
        LoRAClassifier(model, rank=2, task_incremental=True)
    assert isinstance(model.features[0], nn.Linear) and all(p.requires_grad for p in model.parameters())


def test_a_transformers_model_that_is_not_a_sequence_classifier_is_refused_with_the_ways_to_use_it():
    encoder = _bert().bert
    with pytest.raises(TypeError, match="hf_text"):
        LoRAClassifier(encoder, rank=2)


def test_a_transformers_sequence_classifier_reads_the_packages_token_batches():
    model = _bert().eval()
    lora = LoRAClassifier(model, rank=2).eval()
    ids = torch.randint(2, 50, (3, 8))
    mask = torch.ones_like(ids)
    features = lora.backbone(pack_tokens(ids, mask))
    pooled = model.bert(input_ids=ids, attention_mask=mask).pooler_output  # what BERT's classifier received
    assert torch.allclose(features, pooled, atol=1e-6)
    assert [n.rsplit(".", 1)[-1] for n in lora.lora_layer_names] == ["query", "value"]


# ----------------------------------------------------------- output that may be old logits
def _mlp_ending_in_logits():
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))


class HiddenFc(nn.Module):
    """``fc`` is a hidden layer here; the classifier, registered last, is called ``out``."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(64, 32)
        self.out = nn.Linear(32, 10)

    def forward(self, x):
        return self.out(torch.relu(self.fc(x.flatten(1))))


class SoftmaxClassifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU())
        self.classifier = nn.Sequential(nn.Linear(32, 10), nn.Softmax(dim=1))

    def forward(self, x):
        return self.classifier(self.features(x))


@pytest.mark.parametrize(
    "build, says",
    [
        (_mlp_ending_in_logits, r"ends in '3', an nn.Linear\(32 -> 10\) whose 10 outputs"),
        (HiddenFc, r"ends in 'out', an nn.Linear\(32 -> 10\)"),
        (SoftmaxClassifier, r"its 'classifier' \(Sequential\) is not a layer the package can drop"),
    ],
)
def test_an_output_that_may_be_old_logits_is_warned_about_and_nothing_is_dropped(build, says):
    with pytest.warns(UnrecognisedClassifierWarning, match=says):
        lora = LoRAClassifier(build(), rank=2)
    assert not any(isinstance(m, RemovedClassifier) for m in lora.backbone.modules())
    assert isinstance(lora.head, PendingHead)  # measured on the backbone's whole output


def test_feature_dim_says_the_output_is_features_and_silences_the_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnrecognisedClassifierWarning)
        lora = LoRAClassifier(_mlp_ending_in_logits(), rank=2, feature_dim=10)
    assert lora.head.classifier.in_features == 10


def test_the_warning_says_how_to_fix_it():
    with pytest.warns(UnrecognisedClassifierWarning) as record:
        LoRAClassifier(_mlp_ending_in_logits(), rank=2)
    message = str(record[0].message)
    assert "nn.Identity()" in message and "feature_dim=" in message


def test_a_feature_dim_that_contradicts_the_classifier_is_refused_before_anything_changes():
    model = SimpleMLP(num_classes=10, input_size=64, hidden_size=32)
    with pytest.raises(ValueError, match=r"feature_dim=10, but its classifier 'classifier' .* 32 features"):
        LoRAClassifier(model, rank=2, feature_dim=10)
    assert isinstance(model.classifier, nn.Linear) and all(p.requires_grad for p in model.parameters())
    assert LoRAClassifier(model, rank=2, feature_dim=32).head.classifier.in_features == 32


# ----------------------------------------------------------- said once
def test_what_was_done_is_logged_once_at_info_with_why_the_targets_fell_back(caplog):
    with caplog.at_level(logging.INFO, logger="avalanche_litelora"):
        lora = LoRAClassifier(SimpleCNN(num_classes=10), rank=2)
    records = [r for r in caplog.records if r.name.startswith("avalanche_litelora.adapters")]
    assert len(records) == 1 and records[0].getMessage() == lora.surgery_report
    report = lora.surgery_report
    assert "SimpleCNN without 'classifier.0'" in report and "nn.Linear(64 -> 10)" in report
    assert "adapters on 1 module(s): features.12" in report
    assert "fell back to every Linear and 1x1 conv outside the classifier" in report


def test_explicit_targets_are_reported_as_given():
    model = SimpleMLP(num_classes=10, input_size=64, hidden_size=32)
    lora = LoRAClassifier(model, rank=2, target_modules=["features.0"])
    assert "target_modules=['features.0'], as given" in lora.surgery_report


def test_the_warning_points_at_the_users_line_through_a_strategy():
    model = _mlp_ending_in_logits()
    with pytest.warns(UnrecognisedClassifierWarning) as record:
        PerTaskLoRAStrategy(model=model, optimizer=torch.optim.SGD(model.parameters(), lr=0.1), rank=2)
    assert [w.filename for w in record if w.category is UnrecognisedClassifierWarning] == [__file__]
