"""Do adapters matter on clip art with EfficientNet-Lite0, and what does LiteLoRA's gate do?

    OMP_NUM_THREADS=1 python -m benchmarks.studies.clipart_study [--strategies head_only per_task_lora litelora]
        [--epochs 5] [--lr 0.01] [--out results/clipart]

The stream is :func:`avalanche_litelora.data.clipart.clipart_benchmark` (Debian's
``openclipart-png``, one class per subcategory): a rendition domain for an ImageNet backbone,
as ImageNet-R's. Every strategy gets the same frozen ``efficientnet_lite0``, the same growing
head and current-classes loss, SGD (momentum 0.9) and budget:

* ``head_only``: the control, no adapter (:class:`~avalanche_litelora.HeadOnlyStrategy`);
* ``per_task_lora``: one LoRA adapter per experience on the 32 pointwise convs, all kept;
* ``litelora``: the same candidates, each kept only if its gate stays open.

After each experience the whole test stream is evaluated, giving the accuracy matrix; a run
reports its average anytime accuracy (the mean, over experiences, of the accuracy on the
experiences seen so far), its final accuracy, the diagonal (each experience right after it
was trained), the within-experience accuracy (the same images, the prediction restricted
to the experience's own classes: feature quality without the head's cross-experience bias),
LiteLoRA's kept / pruned adapters and each candidate's benefit (nats of
training loss its open gate saves, the quantity lambda is weighed against). Writes
``<out>/<label>.json`` per run and prints a Markdown table of every JSON in ``--out``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any, Dict, List

import torch
from avalanche.evaluation.metrics import accuracy_metrics
from avalanche.training.plugins import EvaluationPlugin
from torch.utils.data import DataLoader

from avalanche_litelora import HeadOnlyStrategy, LiteLoRAStrategy, PerTaskLoRAStrategy
from avalanche_litelora.backbones import create_backbone
from avalanche_litelora.backbones.efficientnet_lite import EFFICIENTNET_LITE0_TARGETS
from avalanche_litelora.data.clipart import CLIPART_ROOT, clipart_benchmark
from benchmarks.harness.redundancy import CandidateRedundancyProbe

STRATEGIES = {"head_only": HeadOnlyStrategy, "per_task_lora": PerTaskLoRAStrategy, "litelora": LiteLoRAStrategy}
#: Adapter targets: every pointwise conv (the backbone's recommendation), or the head conv
#: and the last stage's convs only (fewer modules, to see whether depth matters).
TARGETS = {"pw": list(EFFICIENTNET_LITE0_TARGETS), "late": ["net.blocks.6.*.conv_pw", "net.blocks.6.*.conv_pwl",
                                                          "net.conv_head"]}


@torch.no_grad()
def within_experience_accuracy(strategy, exp) -> float:
    """Accuracy on ``exp``'s test images with the prediction restricted to its own classes:
    the features' quality for the experience, without the class-incremental head's bias
    towards (or against) other experiences' classes."""
    model = strategy.model
    model.eval()
    classes = torch.tensor(sorted(exp.classes_in_this_experience))
    correct = 0
    for x, y, *_ in DataLoader(exp.dataset, batch_size=100):
        correct += int((classes[model(x.to(strategy.device))[:, classes].argmax(1)] == y).sum())
    return correct / len(exp.dataset)


def run(args: argparse.Namespace, name: str) -> Dict[str, Any]:
    torch.manual_seed(args.seed)
    bm = clipart_benchmark(n_experiences=args.experiences, seed=args.seed, root=args.root,
                           classes_per_experience=args.classes_per_experience,
                           images_per_class=args.images_per_class, image_size=args.image_size)
    backbone = create_backbone("efficientnet_lite0")
    settings: Dict[str, Any] = dict(rank=args.rank, target_modules=TARGETS[args.targets])
    plugins = []
    if name == "litelora":
        settings.update(lambda_sparsity=args.lambda_sparsity, lambda_rule=args.lambda_rule,
                        min_selection_steps=args.min_selection_steps,
                        selection_mb_size=args.selection_mb_size)
        plugins.append(CandidateRedundancyProbe())
    strategy = STRATEGIES[name](
        model=backbone, optimizer=torch.optim.SGD(backbone.parameters(), lr=args.lr, momentum=0.9),
        train_mb_size=args.mb_size, train_epochs=args.epochs, eval_mb_size=100,
        evaluator=EvaluationPlugin(accuracy_metrics(experience=True, stream=True), loggers=[]),
        plugins=plugins, **settings,
    )
    matrix: List[List[float]] = []
    within: List[float] = []
    start = time.perf_counter()
    for i, exp in enumerate(bm.train_stream):
        strategy.train(exp)
        metrics = strategy.eval(bm.test_stream)
        matrix.append([float(metrics[f"Top1_Acc_Exp/eval_phase/test_stream/Task000/Exp{j:03d}"])
                       for j in range(len(bm.test_stream))])
        within.append(within_experience_accuracy(strategy, bm.test_stream[i]))
        print(f"{name}: experience {i}: {[round(a, 3) for a in matrix[-1][:i + 1]]}, "
              f"within {within[-1]:.3f}", flush=True)
    seconds = time.perf_counter() - start
    seen = [statistics.mean(row[:i + 1]) for i, row in enumerate(matrix)]
    out = {
        "strategy": name, "settings": {k: v for k, v in vars(args).items() if k not in ("strategies", "out")},
        "classes": [[bm.class_names[c] for c in e.classes_in_this_experience] for e in bm.train_stream],
        "matrix": matrix, "diagonal": [matrix[i][i] for i in range(len(matrix))],
        "within": within,
        "anytime": statistics.mean(seen), "final": seen[-1], "seconds": seconds,
        "adapters": list(strategy.active_adapters), "pruned": strategy.pruned_adapters,
    }
    if name == "litelora":
        out["candidates"] = plugins[0].decisions(strategy)
    return out


def label(args: argparse.Namespace, name: str) -> str:
    tail = f"_lam{args.lambda_sparsity:g}_sel{args.min_selection_steps}" if name == "litelora" else ""
    tail += "_relative" if name == "litelora" and args.lambda_rule == "relative" else ""
    return (f"{name}_e{args.epochs}_lr{args.lr:g}_r{args.rank}_{args.targets}_{args.image_size}px"
            f"_{args.images_per_class}img_s{args.seed}{tail}")


def table(rows: List[Dict[str, Any]]) -> str:
    head = ("| run | seed | anytime acc | final acc | diagonal (acc right after each experience) | "
            "within-experience acc (mean) | adapters kept | pruned | candidate benefits (nats) | seconds |\n"
            "|---|---|---|---|---|---|---|---|---|---|\n")
    body = ""
    for r in rows:
        s = r["settings"]
        run_name = f"{r['strategy']} (lr {s['lr']:g}, {s['epochs']} ep, rank {s['rank']}, {s['targets']}"
        rule = " relative" if s.get("lambda_rule") == "relative" else ""
        run_name += f", λ={s['lambda_sparsity']:g}{rule})" if r["strategy"] == "litelora" else ")"
        kept = "-" if r["strategy"] == "head_only" else str(len(r["adapters"]))
        benefits = ", ".join(f"{c['benefit_nats']:+.3f}{'p' if c['pruned'] else ''}" for c in r.get("candidates", []))
        body += (f"| {run_name} | {s['seed']} | {r['anytime']:.3f} | {r['final']:.3f} | "
                 f"{' '.join(f'{a:.2f}' for a in r['diagonal'])} | {statistics.mean(r['within']):.3f} | "
                 f"{kept} | {len(r['pruned'])} | "
                 f"{benefits or '-'} | {r['seconds']:.0f} |\n")
    return head + body


def summary(rows: List[Dict[str, Any]]) -> str:
    """Mean (and spread: min-max) over seeds of every configuration in ``rows``."""
    groups: Dict[str, List[Dict[str, Any]]] = {}
    for r in rows:
        key = table([r]).split("\n")[2].split(" | ")[0]  # the run's name, seed left out
        groups.setdefault(key, []).append(r)
    out = ("| run | seeds | anytime acc | final acc | diagonal, mean | within-experience acc | "
           "adapters kept (of 5) | seconds, mean |\n|---|---|---|---|---|---|---|---|\n")

    def cell(values: List[float]) -> str:
        return f"{statistics.mean(values):.3f} ({min(values):.3f}-{max(values):.3f})"

    for key, rs in groups.items():
        kept = "-" if rs[0]["strategy"] == "head_only" else " ".join(str(len(r["adapters"])) for r in rs)
        out += (f"{key} | {len(rs)} | {cell([r['anytime'] for r in rs])} | {cell([r['final'] for r in rs])} | "
                f"{cell([statistics.mean(r['diagonal']) for r in rs])} | "
                f"{cell([statistics.mean(r['within']) for r in rs])} | {kept} | "
                f"{statistics.mean(r['seconds'] for r in rs):.0f} |\n")
    return out


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--strategies", nargs="+", default=list(STRATEGIES), choices=list(STRATEGIES))
    p.add_argument("--root", default=CLIPART_ROOT)
    p.add_argument("--experiences", type=int, default=5)
    p.add_argument("--classes-per-experience", type=int, default=4)
    p.add_argument("--images-per-class", type=int, default=40)
    p.add_argument("--image-size", type=int, default=96)
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--mb-size", type=int, default=32)
    p.add_argument("--rank", type=int, default=4)
    p.add_argument("--targets", choices=list(TARGETS), default="pw")
    p.add_argument("--lambda-sparsity", type=float, default=0.03)
    p.add_argument("--lambda-rule", choices=["absolute", "relative"], default="absolute",
                   help="absolute: nats per sample (the package's default); relative: a share of the loss")
    p.add_argument("--min-selection-steps", type=int, default=30)
    p.add_argument("--selection-mb-size", type=int, default=16)
    p.add_argument("--seed", type=int, default=1993)
    p.add_argument("--out", default="docs/benchmarks/studies/clipart_study")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name in args.strategies:
        result = run(args, name)
        (out / f"{label(args, name)}.json").write_text(json.dumps(result, indent=1))
        print(f"{name}: anytime {result['anytime']:.3f}, final {result['final']:.3f}, {result['seconds']:.0f} s",
              flush=True)
    rows = [json.loads(f.read_text()) for f in sorted(out.glob("*.json"))]
    print(table(rows))
    print(summary(rows))


if __name__ == "__main__":
    main()
