"""Does the boundary rescale change the bank the gate judges? The bank's loss across each boundary.

    python -m benchmarks.studies.boundary_jump [--seed 1993] [--data-root data]

One question. The reference code normalises a finished adapter at the task boundary and keeps
its magnitude, which multiplies its output by 1/(||B|| ||A||) when the next experience opens
(``boundary="rescale"``); ``boundary="preserve"`` folds the norms into the magnitude, so the
function does not change. On ``short_immediate`` (each novel permutation followed at once by
its repeat on fresh images) this records, for every experience, the bank's training loss on
that experience's data right after it trained and again once the next experience has opened
(its candidate is still zero then), and the gate's judgement of the next candidate. Writes
``boundary_jump.md`` and ``boundary_jump.json`` to ``docs/benchmarks/studies/``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from avalanche.core import SupervisedPlugin
from avalanche.evaluation.metrics import accuracy_metrics
from avalanche.models.utils import avalanche_forward
from avalanche.training.determinism.rng_manager import RNGManager
from avalanche.training.plugins import EvaluationPlugin
from torch.utils.data import DataLoader

from avalanche_litelora import LiteLoRAStrategy, known_redundancy_stream
from avalanche_litelora.backbones import create_backbone

OUT = Path(__file__).resolve().parents[2] / "docs" / "benchmarks" / "studies"


@torch.no_grad()
def bank_loss(strategy, dataset) -> float:
    """Mean cross-entropy of the whole model on ``dataset``, evaluation mode, global RNG untouched."""
    model, was_training = strategy.model, strategy.model.training
    model.eval()
    total, seen = 0.0, 0
    with torch.random.fork_rng(devices=[]):
        for x, y, t in DataLoader(dataset, batch_size=256):
            out = avalanche_forward(model, x.to(strategy.device), t.to(strategy.device))
            total += float(torch.nn.functional.cross_entropy(out, y.to(strategy.device), reduction="sum"))
            seen += len(y)
    model.train(was_training)
    return total / seen


class BoundaryProbe(SupervisedPlugin):
    """The bank's loss on the experience just trained: after training, and after the next boundary."""

    def __init__(self):
        super().__init__()
        self.rows, self._previous = [], None

    def after_training_exp(self, strategy, **kwargs):
        self._previous = strategy.experience.dataset
        self.rows.append({"experience": strategy.experience.current_experience,
                          "loss_after_training": bank_loss(strategy, self._previous)})

    def before_training_epoch(self, strategy, **kwargs):
        if strategy.clock.train_exp_epochs == 0 and self._previous is not None:
            self.rows[-1]["loss_after_next_boundary"] = bank_loss(strategy, self._previous)


def run(boundary: str, seed: int, data_root: str, epochs: int, selection_mb_size=None) -> dict:
    RNGManager.set_random_seeds(seed)
    benchmark = known_redundancy_stream(form="domain", schedule="short_immediate", seed=seed,
                                        dataset_root=data_root, train_per_experience=1000,
                                        test_per_experience=300)
    model = create_backbone("vit_small28_fmnist")
    probe = BoundaryProbe()
    strategy = LiteLoRAStrategy(model=model, optimizer=torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9),
                                boundary=boundary, train_epochs=epochs, plugins=[probe],
                                selection_mb_size=selection_mb_size,
                                evaluator=EvaluationPlugin(accuracy_metrics(stream=True), loggers=[]))
    for experience in benchmark.train_stream:
        strategy.train(experience)
    labels = [f"{lab.kind}" + (f" of {lab.source}" if lab.source is not None else "") for lab in benchmark.redundancy]
    judged = {d["candidate"]: d for d in strategy.candidate_decisions}
    for row in probe.rows:
        nxt = judged.get(f"adapter_{row['experience'] + 1}")
        row["next_experience"] = labels[row["experience"] + 1] if row["experience"] + 1 < len(labels) else None
        if nxt:
            row.update(next_loss_closed=nxt["loss_closed"], next_benefit=nxt["benefit_nats"], next_kept=nxt["kept"])
    return {"boundary": boundary, "seed": seed, "selection_mb_size": selection_mb_size, "rows": probe.rows, "active_adapters": len(strategy.active_adapters)}


def markdown(results) -> str:
    lines = ["| boundary | experience | loss after training | after the next boundary | next experience | "
             "its candidate: closed loss / benefit (nats) | decision |", "|---|---|---|---|---|---|---|"]
    for result in results:
        for r in result["rows"][:-1]:
            lines.append(
                f"| {result['boundary']} | {r['experience']} | {r['loss_after_training']:.3f} | "
                f"{r.get('loss_after_next_boundary', float('nan')):.3f} | {r['next_experience']} | "
                f"{r.get('next_loss_closed', float('nan')):.3f} / {r.get('next_benefit', float('nan')):.3f} | "
                f"{'kept' if r.get('next_kept') else 'pruned'} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=1993)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--data-root", default="data")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--boundaries", nargs="+", default=["rescale", "preserve"])
    parser.add_argument("--selection-mb-size", type=int, help="default: the strategy's (its training minibatch)")
    args = parser.parse_args(argv)
    results = [run(b, args.seed, args.data_root, args.epochs, args.selection_mb_size) for b in args.boundaries]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "boundary_jump.json").write_text(json.dumps(results, indent=1))
    table = markdown(results)
    (args.out / "boundary_jump_table.md").write_text(table)
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
