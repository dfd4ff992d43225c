"""The one bridge from older checkpoints: registered names, class paths of 0.1.0, pickled metric state."""

import io

import pytest
import torch

import avalanche_litelora as al
from avalanche_litelora.registry import REGISTRY, stable_name
from avalanche_litelora.training.checkpoint.bridge import class_today, name_today, saved_as_today
from avalanche_litelora.training.checkpoint.evaluator import _decode_metric_state
from builders import MLP_TARGETS, lite_kwargs, quiet_evaluator, sgd, tiny_mlp


def test_a_fingerprint_names_the_package_classes_by_registered_name_and_others_by_path():
    model = tiny_mlp()
    strategy = al.LiteLoRAStrategy(model=model, optimizer=sgd(model), **lite_kwargs(evaluator=quiet_evaluator()))
    from avalanche_litelora.training.checkpoint import config_fingerprint

    fingerprint = config_fingerprint(strategy)
    assert fingerprint["strategy"] == "LiteLoRAStrategy" and fingerprint["model"] == "LoRAClassifier"
    assert fingerprint["plugins"][:2] == ["AdapterGuardPlugin", "OpenCandidatePlugin"]
    assert fingerprint["optimizer"] == "torch.optim.sgd.SGD"

    class MyStrategy(al.LiteLoRAStrategy):  # a user's subclass is not ours: its path is kept
        pass

    assert stable_name(MyStrategy).endswith("MyStrategy") and "." in stable_name(MyStrategy)


@pytest.mark.parametrize("old, new", [
    ("avalanche_litelora.training.strategies.PerTaskLoRAStrategy", "PerTaskLoRAStrategy"),
    ("avalanche_litelora.training.share_strategy.ShareStrategy", "ShareStrategy"),
    ("avalanche_litelora.models.lora_classifier.LoRAClassifier", "LoRAClassifier"),
    ("avalanche_litelora.training.plugins.guards.BankGuardPlugin", "AdapterGuardPlugin"),
    ("avalanche_litelora.training.plugins.share.ShareGuardPlugin", "AdapterGuardPlugin"),
    ("avalanche_litelora.training.plugins.selection.GateSelectionPlugin", "GateSelectionPlugin"),
    ("torch.optim.sgd.SGD", "torch.optim.sgd.SGD"),
])
def test_a_saved_class_path_reads_as_its_registered_name(old, new):
    assert name_today(old) == new
    assert new in REGISTRY or new == old


def test_the_former_default_targets_resume_into_auto_and_into_an_explicit_list():
    live = {"config": {"target_modules": "auto"}}
    saved = {"config": {"target_modules": ["qkv"]}}
    assert saved_as_today(saved, live)[0]["config"]["target_modules"] == "auto"
    explicit = {"config": {"target_modules": ["qkv"]}}
    assert saved_as_today(saved, explicit)[0]["config"]["target_modules"] == ["qkv"]


def test_metric_state_pickled_with_a_former_class_path_restores():
    """0.1.0's BankReadoutMetric pickled its model lookup as metrics._bank_access.BankLookup."""
    metric = al.BankReadoutMetric()
    buffer = io.BytesIO()
    torch.save(dict(vars(metric)), buffer, _use_new_zipfile_serialization=False)  # editable bytes
    now = b"avalanche_litelora.metrics.bank_readouts\nOptionalLoRAClassifier\n"
    old = b"avalanche_litelora.metrics._bank_access\nBankLookup\n"
    assert now in buffer.getvalue()
    blob = torch.frombuffer(bytearray(buffer.getvalue().replace(now, old)), dtype=torch.uint8)
    assert class_today("avalanche_litelora.metrics._bank_access", "BankLookup") == (
        "avalanche_litelora.metrics.bank_readouts", "OptionalLoRAClassifier")
    allowed = {(type(v).__module__, type(v).__qualname__) for v in vars(metric).values()}
    allowed |= {("torch._utils", "_rebuild_tensor_v2"), ("collections", "OrderedDict")}
    state = _decode_metric_state(blob, allowed)
    assert type(state["_bank"]).__name__ == "OptionalLoRAClassifier" and state["_bank"].owner == "BankReadoutMetric"
