"""The bank strategies under torchrun (2 CPU ranks, gloo) against a single-process run.

The worker (``ddp_worker.py``) trains LiteLoRA, per-task LoRA and sequential LoRA on 3
experiences of split digits with ``shuffle=False``, and Share on the same 3 experiences
with task labels (classes interleaved). With 2 ranks of 16 samples a step, the
DistributedSampler hands rank r the samples r, r+2, r+4, ..., so each step's global batch is
exactly the single-process batch of 32 (likewise 2 x 4 for the selection phase's 8).

What is left to differ is arithmetic: the mean of two half-batch means rounds differently
from one mean over 32, an odd-sized experience is padded by the DistributedSampler with one
repeated sample in its last batch, and the bank picks its stacked or folded form by minibatch
size. The claim is that DDP trains the same model, so the weights are compared directly
(``WEIGHT_TOLERANCE``; measured: within 0.015). Accuracy follows loosely: three
class-incremental experiences leave the stream at ~0.35, where many test samples sit on the
boundary between an old class's logit and a new one's; with weights within 0.009, 12 of the
211 samples flipped (0.057) for sequential LoRA, hence ``ACC_TOLERANCE``.
Share: the same basis sizes and stream accuracy (0.9716), weights within 0.006. (At lr 0.05
Share was still on the steep part of its learning curve and the runs differed by 4 samples:
the worker trains it at lr 0.1.)
"""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

import ddp_worker
from avalanche_litelora.training import distributed

pytestmark = pytest.mark.slow  # spawns two-process torchrun jobs

HERE = Path(__file__).resolve().parent
STRATEGIES = ("litelora", "pertask", "sequential", "share")
ACC_TOLERANCE = 0.08
WEIGHT_TOLERANCE = 0.03


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp")
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
        str(HERE / "ddp_worker.py"), str(out),
    ]
    proc = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-4000:]
    ranks = {
        name: [torch.load(out / f"{name}_rank{r}.pt") for r in (0, 1)]
        for name in STRATEGIES + ("refusal", "refusal_share")
    }
    return ranks, proc.stdout


@pytest.fixture(scope="module")
def single_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("single")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ddp_worker.run(str(out))
    return {name: torch.load(out / f"{name}_rank0.pt") for name in STRATEGIES}


@pytest.mark.parametrize("name", STRATEGIES)
def test_both_ranks_end_with_the_same_bank_and_gates(ddp_run, name):
    rank0, rank1 = ddp_run[0][name]
    assert rank0["world_size"] == 2 and rank0["ddp_wrapped"]
    assert rank0["state"].keys() == rank1["state"].keys()
    for key in rank0["state"]:
        assert torch.equal(rank0["state"][key], rank1["state"][key]), key
    assert rank0["logits"] == rank1["logits"]
    assert rank0["adapters"] == rank1["adapters"] and rank0["pruned"] == rank1["pruned"]
    # trainable tensors (the mid-stream adapters, the selection logit) agreed after every epoch
    assert rank0["sync_checks"] > 0 and rank0["sync_checks"] == rank1["sync_checks"]


def test_litelora_prunes_under_ddp(ddp_run):
    rank0, _ = ddp_run[0]["litelora"]
    assert rank0["pruned"], "the worker's lambda is meant to prune, to exercise the decision"
    assert set(rank0["adapters"]).isdisjoint(rank0["pruned"])


@pytest.mark.parametrize("name", STRATEGIES)
def test_accuracy_and_decisions_match_the_single_process_run(ddp_run, single_run, name):
    rank0, _ = ddp_run[0][name]
    single = single_run[name]
    assert single["world_size"] == 1 and not single["ddp_wrapped"]
    assert rank0["state"].keys() == single["state"].keys()
    for key, value in rank0["state"].items():
        if value.is_floating_point() and value.numel():
            assert (value - single["state"][key]).abs().max() <= WEIGHT_TOLERANCE, key
    assert abs(rank0["acc"] - single["acc"]) <= ACC_TOLERANCE, (rank0["acc"], single["acc"])
    assert rank0["adapters"] == single["adapters"] and rank0["pruned"] == single["pruned"]


@pytest.mark.parametrize("name", STRATEGIES)
def test_every_rank_reports_the_whole_test_stream(ddp_run, name):
    rank0, rank1 = ddp_run[0][name]
    # Avalanche's metrics are per process: a sharded evaluation would give each rank its half.
    assert rank0["acc"] == rank1["acc"] == pytest.approx(rank0["direct_acc"], abs=1e-9)


def test_only_rank_0_logs(ddp_run):
    output = ddp_run[1]
    trainings = len(STRATEGIES) * ddp_worker.N_EXPERIENCES
    assert output.count("-- >> Start of training phase << --") == trainings


@pytest.mark.parametrize("which", ["refusal", "refusal_share"])
def test_strategy_refuses_a_plugin_that_is_not_rank_safe(ddp_run, which):
    for result in ddp_run[0][which]:
        assert result == {"refused": True, "untouched": True}


def test_share_merges_once_for_every_rank(ddp_run, single_run):
    rank0, rank1 = ddp_run[0]["share"]
    assert rank0["adapters"] == ["task_0", "task_1", "task_2"]
    assert rank0["merge_reports"] == rank1["merge_reports"]
    assert [r["basis_sizes"] for r in rank0["merge_reports"]] == [
        r["basis_sizes"] for r in single_run["share"]["merge_reports"]
    ]
    # rank 1 opened a task and temporary vectors on its own: rank 0's subspace replaced them
    for result in (rank0, rank1):
        assert result["resynced"].keys() == rank0["state"].keys()
        for key, value in rank0["state"].items():
            assert torch.equal(result["resynced"][key], value), key


def test_share_stops_every_rank_on_one_ranks_non_finite_loss(ddp_run):
    for result in ddp_run[0]["share"]:
        assert result["stopped"] and result["restored"]


def test_helpers_are_no_ops_in_a_single_process():
    class Holder:
        model = torch.nn.Linear(2, 2)

    holder = Holder()
    model = holder.model
    distributed.wrap_for_training(holder)
    assert holder.model is model
    assert distributed.broadcast_decision(False) is False
    assert distributed.any_rank(True) and not distributed.any_rank(False)
    before = model.weight.detach().clone()
    distributed.broadcast_tensors_([model.weight])
    distributed.broadcast_state_(model, lambda key: True)
    assert torch.equal(model.weight, before)
    distributed.refuse_unsupported_plugins([object()])  # only refused under torchrun
    assert distributed.is_main_process() and not distributed.is_distributed()
