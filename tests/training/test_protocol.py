"""The plugin protocol: hooks declared once, a strategy's own plugins in lifecycle order, and
the facts a strategy class states about its method."""

import pytest

import avalanche_litelora as al
from avalanche_litelora.training.protocol import LIFECYCLE_STEPS, check_lifecycle_order
from builders import MLP_TARGETS, sgd, tiny_mlp


def test_plugins_out_of_lifecycle_order_are_refused():
    freeze, selection = al.FreezeBankPlugin(), al.GateSelectionPlugin()
    check_lifecycle_order([al.AdapterGuardPlugin(), al.OpenCandidatePlugin(), selection, freeze])
    with pytest.raises(RuntimeError, match="GateSelectionPlugin .select. comes after FreezeBankPlugin"):
        check_lifecycle_order([al.OpenCandidatePlugin(), freeze, selection])


@pytest.mark.parametrize("cls", [al.LiteLoRAStrategy, al.PerTaskLoRAStrategy, al.SequentialLoRAStrategy,
                                 al.HeadOnlyStrategy, al.ShareStrategy])
def test_every_strategy_runs_its_plugins_in_lifecycle_order(cls):
    model = tiny_mlp()
    strategy = cls(model=model, optimizer=sgd(model), rank=2, target_modules=MLP_TARGETS)
    steps = [p.lifecycle_step for p in strategy.plugins if getattr(p, "lifecycle_step", None)]
    assert steps[0] == "guard" and steps == sorted(steps, key=LIFECYCLE_STEPS.index)


def test_a_strategy_class_states_the_facts_the_harness_reads():
    assert al.LiteLoRAStrategy.is_bank and al.LiteLoRAStrategy.has_candidates
    assert al.PerTaskLoRAStrategy.is_bank and not al.PerTaskLoRAStrategy.has_candidates
    assert not al.ShareStrategy.is_bank and al.ShareStrategy.scenarios == ("task_incremental",)
    assert al.TaskRoutedLoRAStrategy.scenarios == ("task_incremental",)
    assert "class_incremental" in al.HeadOnlyStrategy.scenarios
