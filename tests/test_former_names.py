"""Every name importable from 0.1.0's modules still imports, from its old path, with a warning.

``former_names_0_1_0.json`` lists the public names of each module that moved or lost names in
the redesign, read from the 0.1.0 tree; the table in :mod:`avalanche_litelora.former_names`
must serve every one of them.
"""

import importlib
import json
import warnings
from pathlib import Path

import pytest

import avalanche_litelora
from avalanche_litelora import former_names

FORMER = json.loads((Path(__file__).parent / "former_names_0_1_0.json").read_text())


@pytest.mark.parametrize("module", sorted(FORMER))
def test_every_former_name_still_imports(module):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        loaded = importlib.import_module(f"avalanche_litelora.{module}")
        missing = [name for name in FORMER[module] if not hasattr(loaded, name)]
    assert missing == []


@pytest.mark.parametrize("module", sorted(former_names.FORMER_MODULES))
def test_a_former_module_warns_on_import(module):
    import sys

    sys.modules.pop(f"avalanche_litelora.{module}", None)
    with pytest.warns(DeprecationWarning, match="deprecated"):
        importlib.import_module(f"avalanche_litelora.{module}")


def test_a_former_name_is_the_object_it_names_now():
    with pytest.warns(DeprecationWarning, match="lora.strategies.LiteLoRAStrategy"):
        from avalanche_litelora.training import LiteLoRAStrategy
    assert LiteLoRAStrategy is avalanche_litelora.LiteLoRAStrategy
    with pytest.warns(DeprecationWarning):
        from avalanche_litelora.training.plugins import BankGuardPlugin
    assert BankGuardPlugin is avalanche_litelora.AdapterGuardPlugin
    with pytest.warns(DeprecationWarning):
        guard = avalanche_litelora.ShareGuardPlugin
    assert guard is avalanche_litelora.AdapterGuardPlugin
    import sys

    sys.modules.pop("avalanche_litelora.models.lora_classifier", None)
    with pytest.warns(DeprecationWarning):
        from avalanche_litelora.models.lora_classifier import TaskIncrementalLoRAClassifier
    assert TaskIncrementalLoRAClassifier is avalanche_litelora.lora.TaskIncrementalLoRAClassifier


def test_the_former_default_targets_mean_auto():
    with pytest.warns(DeprecationWarning):
        from avalanche_litelora.lora import DEFAULT_TARGET_MODULES
    assert DEFAULT_TARGET_MODULES == "auto"


def test_the_former_class_swap_warns_and_build_does_not():
    from builders import MLP_TARGETS, tiny_mlp

    from avalanche_litelora.lora import LoRAClassifier, TaskIncrementalLoRAClassifier

    with pytest.warns(DeprecationWarning, match="LoRAClassifier.build"):
        old = LoRAClassifier(tiny_mlp(), rank=2, target_modules=MLP_TARGETS, task_incremental=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        new = LoRAClassifier.build(tiny_mlp(), rank=2, target_modules=MLP_TARGETS, task_incremental=True)
        plain = LoRAClassifier.build(tiny_mlp(), rank=2, target_modules=MLP_TARGETS)
    assert type(old) is type(new) is TaskIncrementalLoRAClassifier
    assert type(plain) is LoRAClassifier
