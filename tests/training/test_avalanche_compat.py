"""The LoRA strategies with the plugins Avalanche users combine them with, beside Naive.

Each row of the README's compatibility table is one of these tests: the same tiny backbone
and stream, Naive as the reference, and the behaviour that matters asserted for each.
"""

import math

import pytest
import torch
from avalanche.training.plugins import (
    CWRStarPlugin,
    EarlyStoppingPlugin,
    EWCPlugin,
    FromScratchTrainingPlugin,
    GDumbPlugin,
    LRSchedulerPlugin,
    LwFPlugin,
    MASPlugin,
    ReplayPlugin,
    RWalkPlugin,
    SynapticIntelligencePlugin,
)
from avalanche.training.storage_policy import (
    ClassBalancedBuffer,
    ParametricBuffer,
    ReservoirSamplingBuffer,
)

from avalanche.core import SupervisedPlugin

from avalanche_litelora import LiteLoRAStrategy, PerTaskLoRAStrategy, ShareStrategy
from avalanche_litelora.training.compatibility import IncompatiblePluginError
from builders import MLP_TARGETS, sgd, tiny_mlp
from compat_runs import CI_KINDS, TI_KINDS, TargetsSeen, TermProbe, build, train_on

pytestmark = pytest.mark.slow  # trains every strategy beside each of Avalanche's plugins (about 45 s)

REPLAY_POLICIES = {
    "experience-balanced": lambda: ReplayPlugin(mem_size=60),
    "class-balanced": lambda: ReplayPlugin(mem_size=60, storage_policy=ClassBalancedBuffer(60)),
    "reservoir": lambda: ReplayPlugin(mem_size=60, storage_policy=ReservoirSamplingBuffer(60)),
    "parametric": lambda: ReplayPlugin(mem_size=60, storage_policy=ParametricBuffer(60, groupby="class")),
}


def _cases(kinds, names, everywhere):
    """Every name for LiteLoRA, only ``everywhere`` for the other kinds (time)."""
    return [(k, n) for k in kinds for n in names if k == "litelora" or n in everywhere]


@pytest.mark.parametrize("kind,policy", _cases(CI_KINDS, REPLAY_POLICIES, ["experience-balanced"]))
def test_replayed_classes_reach_training_and_the_selection_phase(kind, policy, ci_benchmark):
    probe = TargetsSeen()
    strategy = build(kind, plugins=[REPLAY_POLICIES[policy](), probe])
    stream = list(ci_benchmark.train_stream)[:2]
    train_on(strategy, stream)  # a replayed sample's loss is finite, or the guard stops here
    old = set(stream[0].classes_in_this_experience)
    assert old <= probe.seen[(1, "train")]
    if kind == "litelora":
        assert old <= probe.seen[(1, "selection")]
        assert strategy.model.candidate is None and strategy.model.adapter_names[0] == "adapter_0"


@pytest.mark.parametrize("kind", CI_KINDS)
def test_under_replay_the_experience_just_trained_is_learned(kind, ci_benchmark):
    """Replayed samples must not push the current classes below the earlier ones: measured
    with ER-ACE's asymmetric loss, the just-trained experience read 0.00-0.11 on Split MNIST."""
    strategy = build(kind, plugins=[ReplayPlugin(mem_size=60)], train_epochs=4)
    stream = list(ci_benchmark.train_stream)[:3]
    train_on(strategy, stream)
    accuracy = strategy.eval([ci_benchmark.test_stream[2]])
    assert accuracy["Top1_Acc_Stream/eval_phase/test_stream/Task000"] > 0.5


@pytest.mark.parametrize("kind", CI_KINDS)
def test_gdumb_trains_on_its_buffer_from_the_initial_model(kind, ci_benchmark):
    probe = TargetsSeen()
    strategy = build(kind, plugins=[GDumbPlugin(mem_size=60), probe])
    stream = list(ci_benchmark.train_stream)[:2]
    train_on(strategy, stream)
    assert set(stream[0].classes_in_this_experience) <= probe.seen[(1, "train")]
    if kind != "naive":  # GDumb restarts from the initial model: one adapter, the first
        assert strategy.model.adapter_names == ["adapter_0"]


@pytest.mark.parametrize("kind", TI_KINDS)
def test_replay_task_incremental(kind, ti_benchmark):
    probe = TargetsSeen()
    strategy = build(kind, task_incremental=True, plugins=[ReplayPlugin(mem_size=60), probe])
    stream = list(ti_benchmark.train_stream)[:2]
    train_on(strategy, stream)
    assert set(stream[0].classes_in_this_experience) <= probe.seen[(1, "train")]


REGULARISERS = {
    "ewc": lambda: EWCPlugin(ewc_lambda=10.0),
    "mas": lambda: MASPlugin(lambda_reg=0.1),
    "si": lambda: SynapticIntelligencePlugin(si_lambda=1.0),
    "rwalk": lambda: RWalkPlugin(ewc_lambda=10.0),
    "lwf": lambda: LwFPlugin(alpha=1.0),
}


def _terms(kind, name, benchmark, task_incremental=False) -> torch.Tensor:
    probe = TermProbe()
    # RWalk scores a tensor by how far it moved while it trained: under the reference's
    # boundary the first adapter's magnitude does not train in the first experience, so
    # after it RWalk has nothing to protect yet; with the norms preserved it has
    overrides = {"boundary": "preserve"} if name in ("rwalk", "si") and kind in ("litelora", "per_task") else {}
    strategy = build(kind, task_incremental=task_incremental, plugins=probe.around(REGULARISERS[name]()),
                     **overrides)
    train_on(strategy, list(benchmark.train_stream)[:2])
    terms = torch.tensor(probe.terms)
    assert len(terms) > 0 and torch.isfinite(terms).all()
    return terms


@pytest.mark.parametrize("kind,name", _cases(CI_KINDS, [n for n in REGULARISERS if n != "si"], REGULARISERS))
def test_regularisers_add_a_finite_nonzero_term_class_incremental(kind, name, ci_benchmark):
    terms = _terms(kind, name, ci_benchmark)
    assert terms.abs().max() > 0, f"{name} added nothing to the second experience's loss"


@pytest.mark.parametrize("kind,name", [(k, n) for k in CI_KINDS for n in ("ewc", "lwf")])
def test_regularisers_add_a_finite_nonzero_term_task_incremental(kind, name, ti_benchmark):
    assert _terms(kind, name, ti_benchmark, task_incremental=True).abs().max() > 0


@pytest.mark.parametrize("kind", CI_KINDS)
def test_si_runs_but_avalanche_06_measures_no_trajectory_on_cpu(kind, ci_benchmark):
    """SI runs beside the bank (its tensors are registered before they train); its penalty
    is zero for Naive too on CPU: Avalanche 0.6 stores ``param.detach().cpu()``, a view of
    the weights themselves on CPU, so "before" and "after" an update never differ."""
    terms = _terms(kind, "si", ci_benchmark)
    assert torch.equal(terms, torch.zeros_like(terms))


def test_ewc_has_nothing_to_protect_under_share(ti_benchmark):
    """Share trains only the new task's coefficients, vectors and head: every tensor EWC saved
    stays put, so its penalty is exactly zero (and finite)."""
    terms = _terms("share", "ewc", ti_benchmark, True)
    assert torch.equal(terms, torch.zeros_like(terms))


def test_lwf_distils_every_head_under_share(ti_benchmark):
    terms = _terms("share", "lwf", ti_benchmark, True)
    assert torch.isfinite(terms).all() and terms.abs().max() > 0


@pytest.mark.parametrize("kind", TI_KINDS)
def test_rwalk_cannot_follow_a_new_task_head_even_with_naive(kind, ti_benchmark):
    """Why the table's task-incremental RWalk row is empty: RWalk records every parameter
    when training starts, and a multi-head model adds a head per task (Naive's too)."""
    strategy = build(kind, task_incremental=True, plugins=[RWalkPlugin()])
    with pytest.raises(KeyError, match=r"classifiers\.1|adapters\.task_0"):  # Share: its coefficients
        train_on(strategy, list(ti_benchmark.train_stream)[:2])


@pytest.mark.parametrize("kind", CI_KINDS)
def test_early_stopping_cuts_the_epochs_but_never_the_selection_phase(kind, ci_benchmark):
    stream = list(ci_benchmark.train_stream)[:2]
    # "min" on accuracy: it stops as soon as accuracy fails to fall, i.e. after one epoch
    stopper = EarlyStoppingPlugin(patience=1, val_stream_name="train_stream", mode="min")
    strategy = build(kind, plugins=[stopper], train_epochs=6, eval_every=1)
    epochs = []
    for exp in stream:
        strategy.train(exp, eval_streams=[exp])
        epochs.append(strategy.clock.train_exp_epochs)
    assert max(epochs) < 6  # early stopping did stop the epochs
    if kind == "litelora":
        selection = next(p for p in strategy.plugins if type(p).__name__ == "GateSelectionPlugin")
        assert selection.last_steps >= 30  # the gate trained anyway
        model = strategy.model
        assert "adapter_1" in model.pruned_adapters or model.gate_logits()["adapter_1"] != 0.5


@pytest.mark.parametrize("kind", CI_KINDS + ("share",))
def test_lr_scheduler_halves_the_rate_each_epoch_and_resets_it_each_experience(kind, ci_benchmark, ti_benchmark):
    ti = kind == "share"
    model = tiny_mlp()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.08, momentum=0.9)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
    lrs = []

    class Rates(SupervisedPlugin):
        def before_training_epoch(self, strategy, **kwargs):
            lrs.append(strategy.optimizer.param_groups[0]["lr"])

    strategy = build(
        kind, task_incremental=ti, model=model, optimizer_for=lambda m: optimizer,
        plugins=[LRSchedulerPlugin(scheduler), Rates()], train_epochs=3,
    )
    train_on(strategy, list((ti_benchmark if ti else ci_benchmark).train_stream)[:2])
    assert lrs == [0.08, 0.04, 0.02] * 2
    assert strategy.optimizer is optimizer


def _three_group_optimizer(model):
    """Backbone weights, backbone biases (no weight decay), the classifier (10x the rate)."""
    body = [(n, p) for n, p in model.named_parameters() if not n.startswith("classifier.")]
    return torch.optim.SGD(
        [
            {"params": [p for n, p in body if n.endswith("weight")], "weight_decay": 1e-4},
            {"params": [p for n, p in body if n.endswith("bias")], "weight_decay": 0.0},
            {"params": list(model.classifier.parameters()), "lr": 0.5},
        ],
        lr=0.05, momentum=0.9,
    )


@pytest.mark.parametrize("kind", CI_KINDS + ("share",))
def test_an_optimizer_with_several_groups_gets_each_new_tensor_in_its_place(kind, ci_benchmark, ti_benchmark):
    ti = kind == "share"
    strategy = build(kind, task_incremental=ti, optimizer_for=_three_group_optimizer)
    train_on(strategy, list((ti_benchmark if ti else ci_benchmark).train_stream)[:2])
    group = {id(p): g for g, grp in enumerate(strategy.optimizer.param_groups) for p in grp["params"]}
    for name, param in strategy.model.named_parameters():
        if name.startswith(("head.", "classifier.")):
            assert group[id(param)] == 2, name  # the head takes the classifier's group
        elif any(m in name for m in (".adapters.", ".basis_", ".extra_")) or name.startswith("gate."):
            assert group[id(param)] == 0, name  # beside the weight it adapts


@pytest.mark.parametrize("plugin_for", [
    lambda backbone: FromScratchTrainingPlugin(),
    lambda backbone: CWRStarPlugin(backbone, cwr_layer_name="classifier"),
], ids=["from-scratch", "cwr-star"])
@pytest.mark.parametrize("strategy_class", [LiteLoRAStrategy, PerTaskLoRAStrategy, ShareStrategy])
def test_plugins_that_would_erase_the_bank_are_refused_before_the_backbone_changes(plugin_for, strategy_class):
    backbone = tiny_mlp()
    plugin = plugin_for(backbone)
    with pytest.raises(IncompatiblePluginError, match=f"{type(plugin).__name__} cannot be used with {strategy_class.__name__}"):
        strategy_class(model=backbone, optimizer=sgd(backbone), target_modules=MLP_TARGETS, plugins=[plugin])
    assert all(p.requires_grad for p in backbone.parameters())  # not wired: no LoRA layer
    assert isinstance(backbone.classifier, torch.nn.Linear)


@pytest.mark.parametrize("kind", ("litelora", "per_task"))
@pytest.mark.parametrize("task_incremental", (False, True))
def test_the_same_seed_gives_the_same_weights_with_and_without_periodic_evaluation(
    kind, task_incremental, ci_benchmark, ti_benchmark
):
    bm = ti_benchmark if task_incremental else ci_benchmark
    stream = list(bm.train_stream)[:2]
    states = []
    for eval_every in (-1, 1):
        torch.manual_seed(1234)
        strategy = build(kind, task_incremental=task_incremental, eval_every=eval_every)
        for exp in stream:  # the whole test stream: evaluation grows the head for unseen classes
            strategy.train(exp, eval_streams=[bm.test_stream] if eval_every > 0 else [])
            if eval_every > 0:
                strategy.eval(bm.test_stream)
        state = strategy.model.state_dict()
        states.append({k: v for k, v in state.items() if torch.is_tensor(v)})
        states[-1]["rng"] = torch.get_rng_state()
    plain, evaluated = states  # the random stream afterwards too ("rng")
    assert plain.keys() <= evaluated.keys()
    for key in plain:
        if key.startswith("head.") and plain[key].shape != evaluated[key].shape:  # rows for classes
            rows = plain[key].shape[0]  # evaluation showed the head, untrained: the same rows
            assert torch.equal(plain[key], evaluated[key][:rows]), key
        else:
            assert torch.equal(plain[key], evaluated[key]), key


def _generative_replay():
    from avalanche.models import MlpVAE
    from avalanche.training.plugins import EvaluationPlugin, GenerativeReplayPlugin
    from avalanche.training.plugins.generative_replay import TrainGeneratorAfterExpPlugin
    from avalanche.training.supervised import VAETraining

    torch.manual_seed(0)
    vae = MlpVAE((1, 8, 8), nhid=2, device="cpu")
    generator = VAETraining(
        model=vae, optimizer=torch.optim.Adam(vae.parameters(), lr=1e-3), train_mb_size=32,
        train_epochs=1, evaluator=EvaluationPlugin(loggers=[]),
    )
    return [GenerativeReplayPlugin(generator_strategy=generator), TrainGeneratorAfterExpPlugin()]


@pytest.mark.parametrize("kind", CI_KINDS)
def test_generated_samples_labelled_by_the_old_model_reach_both_phases(kind, ci_benchmark):
    probe = TargetsSeen()
    strategy = build(kind, plugins=_generative_replay() + [probe])
    stream = list(ci_benchmark.train_stream)[:2]
    train_on(strategy, stream)
    seen_before = set(stream[0].classes_in_this_experience)
    assert probe.seen[(1, "train")] & seen_before  # generated samples, old classes' labels
    if kind == "litelora":
        assert probe.seen[(1, "selection")] & seen_before


@pytest.mark.parametrize("kind", CI_KINDS + ("share",))
def test_metric_families_report_finite_values(kind, ci_benchmark, ti_benchmark):
    from avalanche.evaluation.metrics import (
        accuracy_metrics, amca_metrics, bwt_metrics, class_accuracy_metrics,
        confusion_matrix_metrics, cpu_usage_metrics, disk_usage_metrics, forgetting_metrics,
        forward_transfer_metrics, loss_metrics, timing_metrics,
    )
    from avalanche.training.plugins import EvaluationPlugin

    evaluator = EvaluationPlugin(
        accuracy_metrics(minibatch=True, epoch=True, experience=True, stream=True),
        loss_metrics(minibatch=True, epoch=True, experience=True, stream=True),
        forgetting_metrics(experience=True, stream=True), bwt_metrics(experience=True, stream=True),
        forward_transfer_metrics(experience=True, stream=True),
        class_accuracy_metrics(stream=True), amca_metrics(), confusion_matrix_metrics(num_classes=10, stream=True),
        timing_metrics(epoch=True), cpu_usage_metrics(epoch=True), disk_usage_metrics(epoch=True),
        loggers=[],
    )
    ti = kind == "share"
    bm = ti_benchmark if ti else ci_benchmark
    strategy = build(kind, task_incremental=ti, evaluator=evaluator, eval_every=0)
    for exp in list(bm.train_stream)[:2]:
        strategy.train(exp, eval_streams=[bm.test_stream[:2]])
    results = strategy.eval(bm.test_stream[:2])
    prefixes = {k.split("/")[0] for k in results}
    for family in ("Top1_Acc_Stream", "Loss_Stream", "StreamForgetting", "StreamBWT",
                   "StreamForwardTransfer", "Top1_ClassAcc_Stream", "Top1_AMCA_Stream",
                   "ConfusionMatrix_Stream", "Time_Epoch", "CPUUsage_Epoch", "DiskUsage_Epoch"):
        assert family in prefixes, f"{family} missing: {sorted(prefixes)}"
    for key, value in results.items():
        if isinstance(value, float):
            assert math.isfinite(value), key
        elif torch.is_tensor(value):
            assert torch.isfinite(value.float()).all(), key


def test_si_under_the_reference_boundary_is_refused_at_construction_with_the_fix():
    from avalanche.training.plugins import SynapticIntelligencePlugin

    from avalanche_litelora.training.compatibility import IncompatiblePluginError

    with pytest.raises(IncompatiblePluginError, match="boundary='preserve'"):
        build("per_task", plugins=[SynapticIntelligencePlugin(si_lambda=1.0)])
    build("per_task", plugins=[SynapticIntelligencePlugin(si_lambda=1.0)], boundary="preserve")
