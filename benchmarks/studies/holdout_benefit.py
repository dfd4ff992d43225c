"""Does a LiteLoRA candidate's benefit on HELD-OUT data separate novel experiences from repeats?

    python -m benchmarks.studies.holdout_benefit --out docs/benchmarks/studies/holdout_benefit

On the token read-out ViT every candidate's benefit on its experience's *training* loss is
tiny (BENCHMARKS.md, "What holds and what does not"), so the gate prunes everything. This
study holds out a seeded slice of every training experience (the harness's
``split_validation``), trains LiteLoRA with lambda = 0 on the rest (every candidate kept: the
bank is per-task LoRA's) and, when each selection phase starts (the moment
:class:`benchmarks.harness.redundancy.CandidateRedundancyProbe` reads), measures the candidate's
benefit -- mean loss with its gate closed minus open, evaluation mode, deterministic gates --
on (a) the training slice, (b) the held-out slice and (c) the experience's test data, with
the strategy's own training criterion (class-incremental: restricted to the experience's
classes; domain-incremental: every class is current, so plain cross-entropy). Also the
held-out accuracy (argmax over the whole head, as evaluation reads it) closed and open.

Writes ``<out>.csv`` (one row per candidate) and ``<out>.md``.
"""

from __future__ import annotations

import argparse
import csv
import platform
import subprocess
import time
from pathlib import Path
from typing import Any, Dict, List, Sequence

import torch
from avalanche.core import SupervisedPlugin
from avalanche.evaluation.metrics import accuracy_metrics
from avalanche.models.utils import avalanche_forward
from avalanche.training.plugins import EvaluationPlugin
from torch.nn import functional as F
from torch.utils.data import DataLoader

from avalanche_litelora.backbones import create_backbone
from avalanche_litelora.data import redundancy_of
from avalanche_litelora.training.losses import ClassRestrictedLoss, restrict_per_sample
from avalanche_litelora import LoRAClassifier
from avalanche_litelora.adapters.access import adapter_model_of
from benchmarks.harness.methods import Budget, build_strategy
from avalanche_litelora.lora.plugins.candidate_losses import candidate_losses
from benchmarks.harness.streams import build_stream, get_stream

COLUMNS = (
    "stream", "seed", "experience", "candidate", "kind", "source",
    "benefit_train_nats", "benefit_heldout_nats", "benefit_test_nats",
    "se_train_nats", "se_heldout_nats", "se_test_nats",
    "probe_benefit_train_nats", "acc_closed_heldout", "acc_open_heldout", "acc_delta_heldout",
    "racc_closed_heldout", "racc_open_heldout", "racc_delta_heldout",
    "n_train", "n_heldout", "n_test", "final_logit",
)


@torch.no_grad()
def closed_vs_open(strategy, model, dataset, batch_size: int = 256) -> Dict[str, float]:
    """Mean criterion loss and accuracy on ``dataset`` with the candidate's gate closed and open.

    Evaluation mode (no gate noise: the gate is ``1[l > 0]``), the logit set to -1 / +1 and
    restored afterwards, data read in order under a forked generator (the run is the same with
    or without this measurement), exactly as :func:`avalanche_litelora.lora.plugins.candidate_losses.candidate_losses`.
    """
    logit, was_training = model.gate.logits[model.candidate], model.training
    saved = logit.detach().clone()
    sums = {f"{m}_{s}": 0.0 for m in ("loss", "acc", "racc") for s in ("closed", "open")}
    crit = strategy._criterion
    restricted = isinstance(crit, ClassRestrictedLoss) and crit.enabled and crit.current is not None
    seen, diffs = 0, []
    model.eval()
    with torch.random.fork_rng(devices=[]):
        try:
            for batch in DataLoader(dataset, batch_size=batch_size):
                x, y, t = (v.to(strategy.device) for v in (batch[0], batch[1], batch[-1]))
                per_sample = []
                for state, value in (("closed", -1.0), ("open", 1.0)):
                    logit.data.fill_(value)
                    out = avalanche_forward(strategy.model, x, t)
                    sums[f"loss_{state}"] += float(strategy._criterion(out, y)) * len(y)
                    sums[f"acc_{state}"] += float((out.argmax(dim=1) == y).sum())
                    # the criterion's view: argmax over the classes the loss lets compete
                    rout = restrict_per_sample(out, y, crit.current, crit.seen) if restricted else out
                    sums[f"racc_{state}"] += float((rout.argmax(dim=1) == y).sum())
                    # per-sample losses, only for the standard error of the mean difference
                    per_sample.append(F.cross_entropy(rout, y, reduction="none"))
                diffs.append(per_sample[0] - per_sample[1])
                seen += len(y)
        finally:
            logit.data.copy_(saved)
            model.train(was_training)
    d = torch.cat(diffs) if diffs else torch.zeros(1)
    se = float(d.std() / len(d) ** 0.5) if len(d) > 1 else float("nan")
    return {k: v / max(seen, 1) for k, v in sums.items()} | {"n": seen, "se": se}


class HeldOutBenefitProbe(SupervisedPlugin):
    """At the first selection iteration of each experience: the candidate's benefit on three sets."""

    def __init__(self, benchmark, stream_name: str, seed: int):
        super().__init__()
        self.benchmark, self.stream_name, self.seed = benchmark, stream_name, seed
        self.records: List[Dict[str, Any]] = []
        self._seen = False

    def before_training_exp(self, strategy, **kwargs):
        self._seen = False

    def before_training_iteration(self, strategy, **kwargs):
        model = adapter_model_of(strategy, LoRAClassifier)
        if self._seen or not model.gate.selecting:
            return
        self._seen = True
        i = strategy.experience.current_experience
        label = redundancy_of(strategy.experience)
        train = closed_vs_open(strategy, model, strategy.experience.dataset)
        held = closed_vs_open(strategy, model, self.benchmark.valid_stream[i].dataset)
        test = closed_vs_open(strategy, model, self.benchmark.test_stream[i].dataset)
        self.records.append({
            "stream": self.stream_name, "seed": self.seed, "experience": i,
            "candidate": model.candidate, "kind": label.kind,
            "source": "" if label.source is None else label.source,
            "benefit_train_nats": train["loss_closed"] - train["loss_open"],
            "benefit_heldout_nats": held["loss_closed"] - held["loss_open"],
            "benefit_test_nats": test["loss_closed"] - test["loss_open"],
            "se_train_nats": train["se"], "se_heldout_nats": held["se"], "se_test_nats": test["se"],
            # the harness's own probe on the same candidate, as a cross-check of (a)
            "probe_benefit_train_nats": candidate_losses(strategy, model)["benefit_nats"],
            "acc_closed_heldout": held["acc_closed"], "acc_open_heldout": held["acc_open"],
            "acc_delta_heldout": held["acc_open"] - held["acc_closed"],
            "racc_closed_heldout": held["racc_closed"], "racc_open_heldout": held["racc_open"],
            "racc_delta_heldout": held["racc_open"] - held["racc_closed"],
            "n_train": train["n"], "n_heldout": held["n"], "n_test": test["n"],
        })

    def after_training_iteration(self, strategy, **kwargs):
        model = adapter_model_of(strategy, LoRAClassifier)
        if self.records and model.gate.selecting and model.candidate == self.records[-1]["candidate"]:
            self.records[-1]["final_logit"] = float(model.gate.logits[model.candidate].detach())


def run_stream(stream_name: str, seed: int, epochs: int, train_per_experience: int,
               test_per_experience: int, fraction: float, data_root: str, selection_lr: float) -> List[Dict[str, Any]]:
    spec = get_stream(stream_name)
    benchmark = build_stream(spec, seed, data_root, train_per_experience, test_per_experience,
                             validation_fraction=fraction)
    torch.manual_seed(seed)
    probe = HeldOutBenefitProbe(benchmark, stream_name, seed)
    budget = Budget(epochs=epochs, task_incremental=spec.task_incremental, plugins=[probe])
    evaluator = EvaluationPlugin(accuracy_metrics(experience=True, stream=True), loggers=[])
    strategy = build_strategy("litelora", create_backbone(spec.backbone), budget, evaluator,
                              overrides={"lambda_sparsity": 0.0, "selection_lr": selection_lr})
    for exp in benchmark.train_stream:
        start = time.perf_counter()
        strategy.train(exp)
        print(f"{stream_name} experience {exp.current_experience} trained in "
              f"{time.perf_counter() - start:.0f} s", flush=True)
    return probe.records


def _fmt(v: float) -> str:
    return f"{v:+.4f}"


def _group_range(rows, key, kinds) -> str:
    values = [r[key] for r in rows if r["kind"] in kinds]
    return f"{min(values):+.4f} .. {max(values):+.4f} (n={len(values)})" if values else "none"


def separating_lambda(rows: Sequence[Dict[str, Any]], key: str):
    """(lo, hi): every lambda in (lo, hi) keeps every novel candidate and prunes every other, or None.

    The gate keeps a candidate when its benefit exceeds lambda (the L1 term on an open gate
    costs lambda per sample, in the same nats-per-sample unit as the mean loss).
    """
    novel = [r[key] for r in rows if r["kind"] == "novel"]
    redundant = [r[key] for r in rows if r["kind"] != "novel"]
    if not novel or not redundant:
        return None
    lo, hi = max(redundant), min(novel)
    return (lo, hi) if lo < hi else None


def markdown(rows, meta) -> str:
    lines = [
        "# Held-out benefit of LiteLoRA candidates (one seed)",
        "",
        "```bash",
        meta["command"],
        "```",
        "",
        f"Commit `{meta['commit']}` (working tree), {meta['date']}, hardware: {meta['hardware']}, "
        f"torch threads {meta['threads']}; wall time **{meta['wall_min']:.1f} min**.",
        "",
        f"Set-up: backbone `vit_small28_fmnist_tokens` (the harness's for MNIST streams), LiteLoRA "
        f"with λ = 0 and the gate logit's AdamW lr {meta['selection_lr']:g} (the logit stays at its "
        f"initial +0.5, so every candidate is kept and the bank is per-task LoRA's; with the "
        f"package's lr 0.05 a near-zero benefit lets gradient noise close gates even at λ = 0, "
        f"seen in a smoke run), rank 4, SGD lr 0.01 "
        f"momentum 0.9, train_mb_size 64, {meta['epochs']} epochs, {meta['train']} images per "
        f"experience of which {meta['fraction']:.0%} (seeded, `split_validation`) are held out and "
        f"never trained on; {meta['test']} test images per experience; seed {meta['seed']}. "
        "Benefit = mean loss with the candidate's gate closed minus open, in nats per sample, "
        "measured when its selection phase starts (evaluation mode, gates deterministic), with "
        "the strategy's training criterion (class stream: restricted to the experience's two "
        "classes; domain stream: all ten classes are current, so plain cross-entropy). "
        "`probe train` is `avalanche_litelora.lora.plugins.candidate_losses.candidate_losses` on the same candidate (a "
        "cross-check of the `train` column). ± is the standard error of the mean over the set's "
        "samples (per-sample closed-minus-open differences; data noise only, not seed noise). Held-out accuracy: argmax over the whole head (as "
        "the test stream is scored), and argmax over the classes the criterion lets compete "
        "(`restricted`; the same as the whole head on the domain stream); Δ = open minus "
        "closed, in points.",
        "",
        "| stream | exp | kind | benefit train | probe train | benefit held-out | benefit test "
        "| held-out acc closed → open (Δ pts) | restricted Δ pts | logit at end |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['stream']} | {r['experience']} | {r['kind']}"
            f"{'' if r['source'] == '' else ' of ' + str(r['source'])} | {_fmt(r['benefit_train_nats'])} "
            f"| {_fmt(r['probe_benefit_train_nats'])} | {_fmt(r['benefit_heldout_nats'])} ± {r['se_heldout_nats']:.4f} "
            f"| {_fmt(r['benefit_test_nats'])} ± {r['se_test_nats']:.4f} | {r['acc_closed_heldout']:.3f} → {r['acc_open_heldout']:.3f} "
            f"({100 * r['acc_delta_heldout']:+.1f}) | {100 * r['racc_delta_heldout']:+.1f} "
            f"| {r.get('final_logit', float('nan')):+.2f} |"
        )
    lines += ["", "Range per group (min .. max):", ""]
    lines += ["| stream | measure | novel | repeat | near-repeat | λ that keeps novel, prunes the rest |",
              "|---|---|---|---|---|---|"]
    for stream in dict.fromkeys(r["stream"] for r in rows):
        sub = [r for r in rows if r["stream"] == stream]
        for key, name in (("benefit_train_nats", "train"), ("benefit_heldout_nats", "held-out"),
                          ("benefit_test_nats", "test")):
            sep = separating_lambda(sub, key)
            lines.append(
                f"| {stream} | {name} | {_group_range(sub, key, ('novel',))} "
                f"| {_group_range(sub, key, ('repeat',))} | {_group_range(sub, key, ('near_repeat',))} "
                f"| {'λ in (%+.4f, %+.4f)' % sep if sep else 'none'} |"
            )
    lines += ["", "## Conclusion", "", meta.get("conclusion", "(written by hand after the run)"), ""]
    return "\n".join(lines)


def _sh(cmd: str) -> str:
    try:
        return subprocess.run(cmd, shell=True, capture_output=True, text=True).stdout.strip()
    except OSError:
        return ""


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="docs/benchmarks/studies/holdout_benefit",
                   help="path prefix: writes <out>.csv and <out>.md")
    p.add_argument("--streams", nargs="+", default=["redundant_domain_short", "redundant_class_short"])
    p.add_argument("--seed", type=int, default=1993)
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--train-per-experience", type=int, default=1000)
    p.add_argument("--test-per-experience", type=int, default=300)
    p.add_argument("--holdout-fraction", type=float, default=0.2)
    p.add_argument("--data-root", default="data")
    p.add_argument("--selection-lr", type=float, default=1e-9,
                   help="AdamW lr of the gate logit; the default keeps the logit at its initial "
                        "+0.5, so every candidate is kept (at lambda=0 and the package's 0.05 a "
                        "benefit near 0 lets gradient noise close gates)")
    args = p.parse_args(argv)

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    rows: List[Dict[str, Any]] = []
    for stream in args.streams:
        rows += run_stream(stream, args.seed, args.epochs, args.train_per_experience,
                           args.test_per_experience, args.holdout_fraction, args.data_root,
                           args.selection_lr)
        with open(out.with_suffix(".csv"), "w", newline="") as f:  # after every stream
            writer = csv.DictWriter(f, fieldnames=COLUMNS, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows)
    wall = (time.perf_counter() - start) / 60
    argv_text = " ".join(argv) if argv is not None else " ".join(__import__("sys").argv[1:])
    meta = {
        "command": f"python -m benchmarks.studies.holdout_benefit {argv_text}".strip(),
        "commit": _sh("git rev-parse --short HEAD"),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "hardware": _sh("lscpu | grep 'Model name' | sed 's/Model name: *//'") or platform.processor(),
        "threads": torch.get_num_threads(), "wall_min": wall, "epochs": args.epochs,
        "train": args.train_per_experience, "test": args.test_per_experience,
        "fraction": args.holdout_fraction, "seed": args.seed, "selection_lr": args.selection_lr,
    }
    out.with_suffix(".md").write_text(markdown(rows, meta))
    print(f"wrote {out.with_suffix('.csv')} and {out.with_suffix('.md')} ({wall:.1f} min)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
