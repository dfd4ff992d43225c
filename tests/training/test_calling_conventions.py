"""The strategies are called as Avalanche's are: positional arguments read as ``Naive`` reads
them, with the same warning; a wrong call names the strategy, never an internal class."""

from __future__ import annotations

import inspect

import pytest
import torch
from avalanche.training.supervised import Naive
from avalanche.training.templates.base import PositionalArgumentsDeprecatedWarning
from torch import nn

from avalanche_litelora import LiteLoRAStrategy, PerTaskLoRAStrategy, TaskRoutedLoRAStrategy
from builders import MLP_TARGETS, all_strategies, digits_benchmark, quiet_evaluator, sgd, tiny_mlp

STRATEGIES = all_strategies()


@pytest.mark.parametrize("strategy_class", STRATEGIES)
def test_model_optimizer_criterion_positionally_work_as_for_naive(strategy_class):
    mlp = tiny_mlp()
    optimizer, criterion = sgd(mlp), nn.CrossEntropyLoss(label_smoothing=0.1)
    with pytest.warns(PositionalArgumentsDeprecatedWarning, match=strategy_class.__name__):
        strategy = strategy_class(
            mlp, optimizer, criterion, 32, target_modules=MLP_TARGETS, evaluator=quiet_evaluator()
        )
    assert strategy.optimizer is optimizer and strategy._criterion is criterion
    assert strategy.train_mb_size == 32  # the fourth, as Naive's
    assert strategy.model.backbone is mlp


def test_naive_warns_the_same_way_for_the_same_call():
    mlp = tiny_mlp()
    with pytest.warns(PositionalArgumentsDeprecatedWarning):
        naive = Naive(mlp, sgd(mlp), nn.CrossEntropyLoss(), 32, evaluator=quiet_evaluator())
    assert naive.train_mb_size == 32


def test_every_naive_argument_keeps_its_position():
    mlp = tiny_mlp()
    evaluator = quiet_evaluator()
    with pytest.warns(PositionalArgumentsDeprecatedWarning):
        strategy = PerTaskLoRAStrategy(
            mlp, sgd(mlp), nn.CrossEntropyLoss(), 16, 3, 64, "cpu", [], evaluator, -1,
            target_modules=MLP_TARGETS,
        )
    assert (strategy.train_mb_size, strategy.train_epochs, strategy.eval_mb_size) == (16, 3, 64)
    assert strategy.device == torch.device("cpu") and strategy.evaluator is evaluator


def test_positional_arguments_train_an_experience():
    mlp = tiny_mlp()
    with pytest.warns(PositionalArgumentsDeprecatedWarning):
        strategy = PerTaskLoRAStrategy(mlp, sgd(mlp), nn.CrossEntropyLoss(), 32, rank=2,
                                       target_modules=MLP_TARGETS, evaluator=quiet_evaluator())
    strategy.train(digits_benchmark(5).train_stream[0])
    assert strategy.model.adapter_names == ["adapter_0"]


def test_a_subclass_that_inherits_init_reads_positions_as_naive_too():
    class MyLiteLoRA(LiteLoRAStrategy):
        pass

    mlp = tiny_mlp()
    criterion = nn.CrossEntropyLoss()
    with pytest.warns(PositionalArgumentsDeprecatedWarning, match="MyLiteLoRA"):
        strategy = MyLiteLoRA(mlp, sgd(mlp), criterion, target_modules=MLP_TARGETS, evaluator=quiet_evaluator())
    assert strategy._criterion is criterion and strategy.config.rank == 10


def test_keywords_still_work_without_a_warning(recwarn):
    mlp = tiny_mlp()
    LiteLoRAStrategy(model=mlp, optimizer=sgd(mlp), target_modules=MLP_TARGETS, evaluator=quiet_evaluator())
    assert not [w for w in recwarn if issubclass(w.category, PositionalArgumentsDeprecatedWarning)]


def test_the_signature_stays_keyword_only_and_lists_the_settings():
    parameters = inspect.signature(LiteLoRAStrategy.__init__).parameters
    kinds = {p.kind for name, p in parameters.items() if name != "self"}
    assert inspect.Parameter.VAR_POSITIONAL not in kinds and inspect.Parameter.POSITIONAL_OR_KEYWORD not in kinds
    assert list(parameters)[1:4] == ["model", "optimizer", "criterion"]
    assert "lambda_sparsity" in parameters and "rank" in parameters


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda mlp: LiteLoRAStrategy(), r"^LiteLoRAStrategy needs model and optimizer"),
        (lambda mlp: PerTaskLoRAStrategy(model=mlp), r"^PerTaskLoRAStrategy needs optimizer"),
        (lambda mlp: LiteLoRAStrategy(mlp, sgd(mlp), model=mlp), r"LiteLoRAStrategy got \['model'\] both"),
        (
            lambda mlp: LiteLoRAStrategy(*([mlp, sgd(mlp)] + [None] * 9)),
            r"LiteLoRAStrategy takes at most 10 positional",
        ),
        (
            lambda mlp: LiteLoRAStrategy(model=mlp, optimizer=sgd(mlp), trian_mb_size=4),
            r"LiteLoRAStrategy got unexpected keyword arguments \['trian_mb_size'\]",
        ),
    ],
)
def test_a_wrong_call_names_the_strategy_and_changes_nothing(call, match):
    mlp = tiny_mlp()
    with pytest.raises(TypeError, match=match) as error:
        call(mlp)
    assert "AdapterStrategy" not in str(error.value)
    assert isinstance(mlp.classifier, nn.Linear) and all(p.requires_grad for p in mlp.parameters())


def test_the_warning_points_at_the_users_line():
    mlp = tiny_mlp()
    with pytest.warns(PositionalArgumentsDeprecatedWarning) as record:
        TaskRoutedLoRAStrategy(mlp, sgd(mlp), target_modules=MLP_TARGETS, evaluator=quiet_evaluator())
    assert [w.filename for w in record if w.category is PositionalArgumentsDeprecatedWarning] == [__file__]
