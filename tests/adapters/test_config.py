"""One config per method: keywords or ``config=``, the same strategy; bad fields named."""

import dataclasses

import pytest
import torch

from avalanche_litelora import (
    LiteLoRAConfig,
    LiteLoRAStrategy,
    PerTaskLoRAConfig,
    PerTaskLoRAStrategy,
    ShareConfig,
    ShareStrategy,
    TaskRoutedLoRAStrategy,
)
from avalanche_litelora import GateSelectionPlugin, PruneClosedCandidatePlugin
from builders import MLP_TARGETS, sgd, tiny_mlp


def _plugin(strategy, kind):
    return next(p for p in strategy.plugins if isinstance(p, kind))


def test_keywords_and_config_build_the_same_strategy():
    settings = dict(rank=4, target_modules=MLP_TARGETS, lambda_sparsity=0.2, min_selection_steps=7, refit_steps=3)
    by_keywords = LiteLoRAStrategy(model=(m := tiny_mlp()), optimizer=sgd(m), **settings)
    by_config = LiteLoRAStrategy(model=(m := tiny_mlp()), optimizer=sgd(m), config=LiteLoRAConfig(**settings))
    assert by_keywords.config == by_config.config == LiteLoRAConfig(**settings)
    for strategy in (by_keywords, by_config):
        selection = _plugin(strategy, GateSelectionPlugin)
        assert (selection.lambda_sparsity, selection.min_selection_steps) == (0.2, 7)
        assert _plugin(strategy, PruneClosedCandidatePlugin).refit_steps == 3
        assert strategy.model.rank == 4


def test_every_default_lives_in_the_config():
    strategy = LiteLoRAStrategy(model=(m := tiny_mlp()), optimizer=sgd(m), target_modules=MLP_TARGETS)
    defaults = dataclasses.asdict(LiteLoRAConfig(target_modules=MLP_TARGETS))
    assert dataclasses.asdict(strategy.config) == defaults
    assert _plugin(strategy, GateSelectionPlugin).lambda_sparsity == defaults["lambda_sparsity"]


def test_a_setting_given_twice_is_refused():
    with pytest.raises(TypeError, match=r"\['rank'\] given both"):
        PerTaskLoRAStrategy(model=(m := tiny_mlp()), optimizer=sgd(m), config=PerTaskLoRAConfig(), rank=4)
    with pytest.raises(TypeError, match="config must be a PerTaskLoRAConfig"):
        PerTaskLoRAStrategy(model=(m := tiny_mlp()), optimizer=sgd(m), config=ShareConfig())


@pytest.mark.parametrize(
    "config_class,field,value,message",
    [
        (LiteLoRAConfig, "rank", 0, "LiteLoRAConfig.rank must be a positive integer"),
        (LiteLoRAConfig, "lambda_sparsity", -1.0, "LiteLoRAConfig.lambda_sparsity must be a finite number >= 0"),
        (LiteLoRAConfig, "gate_noise", "normal", "LiteLoRAConfig.gate_noise must be one of"),
        (LiteLoRAConfig, "selection_mb_size", 0, "LiteLoRAConfig.selection_mb_size must be a positive integer"),
        (PerTaskLoRAConfig, "init_logit", 0.0, "PerTaskLoRAConfig.init_logit must be > 0"),
        (PerTaskLoRAConfig, "train_past_magnitudes", 1, "must be True or False"),
        (ShareConfig, "pseudo_rank", 0, "ShareConfig.pseudo_rank must be a positive integer"),
        (ShareConfig, "unknown_task", "zero", "ShareConfig.unknown_task must be one of"),
    ],
)
def test_a_bad_field_is_named(config_class, field, value, message):
    with pytest.raises((ValueError, TypeError), match=message):
        config_class(**{field: value})


def test_a_bad_keyword_leaves_the_backbone_untouched():
    model = tiny_mlp()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError, match="init_logit"):
        LiteLoRAStrategy(model=model, optimizer=sgd(model), init_logit=-0.5)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(p.requires_grad for p in model.parameters())


def test_task_routing_refuses_class_incremental_and_share_takes_its_config():
    with pytest.raises(ValueError, match="task_incremental must be True"):
        TaskRoutedLoRAStrategy(model=(m := tiny_mlp()), optimizer=sgd(m), task_incremental=False)
    strategy = ShareStrategy(model=(m := tiny_mlp()), optimizer=sgd(m), config=ShareConfig(rank=4, target_modules=MLP_TARGETS))
    assert strategy.model.rank == 4 and strategy.config.pseudo_rank == 1


def test_a_litelora_setting_given_to_per_task_lora_is_named():
    with pytest.raises(TypeError, match=r"\['lambda_sparsity'\] are LiteLoRA settings, not settings of PerTaskLoRAStrategy"):
        PerTaskLoRAStrategy(model=(m := tiny_mlp()), optimizer=sgd(m), lambda_sparsity=0.1)


def test_another_methods_setting_names_that_method():
    with pytest.raises(TypeError, match=r"\['pseudo_rank'\] are Share settings, not settings of LiteLoRAStrategy"):
        LiteLoRAStrategy(model=(m := tiny_mlp()), optimizer=sgd(m), pseudo_rank=2)
    with pytest.raises(TypeError, match=r"\['init_logit'\] are LoRA-bank settings, not settings of ShareStrategy"):
        ShareStrategy(model=(m := tiny_mlp()), optimizer=sgd(m), init_logit=1.0)


def test_config_and_plugin_refuse_the_same_values_with_the_same_words():
    with pytest.raises(ValueError, match=r"^LiteLoRAConfig.lambda_sparsity must be a finite number >= 0, got inf$"):
        LiteLoRAConfig(lambda_sparsity=float("inf"))
    with pytest.raises(ValueError, match=r"^lambda_sparsity must be a finite number >= 0, got inf$"):
        GateSelectionPlugin(lambda_sparsity=float("inf"))
    # Share's plugin needs at least one temporary vector: its config no longer accepts 0
    with pytest.raises(ValueError, match="ShareConfig.temporary_vectors must be a positive integer"):
        ShareConfig(temporary_vectors=0)
