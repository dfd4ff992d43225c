"""Cost of the adapter bank against its size: training steps and inference, timed interleaved.

    python -m benchmarks.studies.bank_scaling [--backbones vit_small28 vit_b16] [--sizes 1 5 10 20 50]
                                      [--rounds N] [--device cpu] [--out results/bank_scaling]
                                      [--figure docs/bank_scaling.png]

Rounds default per backbone (:data:`BACKBONES`): 7 on the shipped ViT, 5 on the
ViT-B/16 shapes (one training step there is seconds on a 2-core CPU). Writes
``bank_scaling.json`` (rows, memory, environment), ``bank_scaling.csv`` (one row per
backbone and bank size) and ``bank_scaling.md`` (the tables) under ``--out``, and the plot.

For each backbone and bank size n the models are built directly: per-task LoRA / LiteLoRA
hold n - 1 frozen SD-LoRA adapters and one open candidate (SD-LoRA's magnitude phase:
the candidate, every magnitude and the head train; LiteLoRA's selection phase: only the
candidate's gate logit trains, through its straight-through gate); Share holds n - 1
merged tasks (merged in two rounds, see :func:`share_bank`) and trains the n-th. Every model shares the frozen backbone's tensors, so
fifty banks fit in memory. Each ratio is the median over rounds of two timings taken back
to back (:func:`benchmarks.harness.measure.interleaved_times`), never of two sequential blocks.
Peak memory at the largest bank is read in a fresh process per model.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List, Tuple

import torch
from torch import nn
from torch.nn import functional as F

from avalanche_litelora.backbones import create_backbone
from avalanche_litelora.lora.model import LoRAClassifier
from avalanche_litelora.lora.phases import Phase
from avalanche_litelora.share import ShareClassifier
from avalanche_litelora.share.model import task_key
from benchmarks.harness.measure import interleaved_times, paired_ratio

#: Backbone: (constructor, input shape, training minibatch, inference minibatch, default rounds).
BACKBONES: Dict[str, Tuple[Callable[[], nn.Module], Tuple[int, ...], int, int, int]] = {
    "vit_small28": (lambda: create_backbone("vit_small28_fmnist", num_classes=10), (1, 28, 28), 64, 256, 7),
    "vit_b16": (lambda: __import__("timm").create_model("vit_base_patch16_224", pretrained=False,
                                                        num_classes=10), (3, 224, 224), 2, 8, 5),
}
#: Columns of ``bank_scaling.csv``, in order (``backbone`` then a row of :func:`measure_size`).
COLUMNS = ["backbone", "n", "lora_step_ms", "lora_step_vs_1", "lite_selection_step_ms", "lite_vs_per_task",
           "share_step_ms", "share_step_vs_1", "bare_infer_ms", "unmerged_vs_bare", "merged_vs_bare",
           "share_single_vs_bare", "share_mixed_vs_bare", "wall_s"]
RANK = 10
CLASSES = 10
#: Learning rate of the timed optimizer steps: they run, but leave the bank as built.
LR = 1e-9


def sharing_copy(backbone: nn.Module) -> nn.Module:
    """A structural copy whose parameters and buffers are the original's tensors."""
    memo = {id(t): t for t in list(backbone.parameters()) + list(backbone.buffers())}
    return copy.deepcopy(backbone, memo)


def _randomise(tensors, generator: torch.Generator, scale: float = 0.02) -> None:
    with torch.no_grad():
        for t in tensors:
            t.copy_(torch.randn(t.shape, generator=generator, dtype=t.dtype) * scale)


def lora_bank(backbone: nn.Module, n: int, seed: int = 0) -> LoRAClassifier:
    """n - 1 frozen adapters (trained-looking B) and an open candidate, per-task LoRA's bank."""
    model = LoRAClassifier(sharing_copy(backbone), rank=RANK, initial_out_features=CLASSES, seed=seed)
    generator = torch.Generator().manual_seed(seed)
    for index in range(n):
        name = model.open_candidate()
        _randomise([b for layer in model.lora_layers().values() for b in layer.adapters[name].B.values()],
                   generator)
        if index < n - 1:
            model.freeze(name)  # closes the candidate: the next one opens
    return model


def share_bank(backbone: nn.Module, n: int, seed: int = 0) -> ShareClassifier:
    """Task 0 trained and merged, tasks 1..n-2 trained together and merged, the n-th training.

    Two merges, not n - 1: one merge costs seconds on ViT-B/16 shapes, and what the timed
    passes see (a basis, n sets of coefficients, one task's gate open) is the same. The
    tasks' random coefficients make the merge keep a basis of realistic size.
    """
    features = sharing_copy(backbone)
    head = nn.Linear(features.num_features, CLASSES)
    model = ShareClassifier(features, rank=RANK, head=head)
    generator = torch.Generator().manual_seed(seed)
    groups = [[0]] + ([list(range(1, n - 1))] if n > 2 else []) + ([[n - 1]] if n > 1 else [])
    for index, tasks in enumerate(groups):
        model.open_tasks(tasks, pseudo_rank=1, temporary_vectors=2)
        layers = model.share_layers().values()
        _randomise([p for layer in layers for task in tasks for side in ("A", "B")
                    for p in getattr(layer.adapters[task_key(task)], side).values()], generator, 0.3)
        if index < len(groups) - 1:
            model.merge_subspace()
    model.set_trainable([task_key(n - 1)])
    return model


def lora_phase(model: LoRAClassifier, phase: str) -> torch.optim.Optimizer:
    """Put the model in a phase of its strategy; the optimizer over what trains in it."""
    if phase == "magnitude":
        model.gate.selecting = False
        model.magnitude_phase(train_past_magnitudes=True)
        params = [p for p in model.parameters() if p.requires_grad]
        return torch.optim.SGD(params, lr=LR, momentum=0.9)
    model.gate.selecting = True
    model.set_phase(Phase.SELECTION)
    return torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=LR)


def lora_step(model: LoRAClassifier, phase: str, x, y) -> Tuple[Callable, Callable]:
    """(enter, step): ``enter`` sets the phase (untimed), ``step`` is one training step."""
    state = {}

    def enter():
        model.train()
        state["optimizer"] = lora_phase(model, phase)

    def step():
        optimizer = state["optimizer"]
        optimizer.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), y)
        if phase == "selection":  # LiteLoRA's sparsity term on the sampled gate
            loss = loss + 0.02 * model.gate.last_candidate_value
        loss.backward()
        optimizer.step()

    return enter, step


def share_step(model: ShareClassifier, x, y, task: int) -> Tuple[Callable, Callable]:
    labels = torch.full((len(x),), task, dtype=torch.long, device=x.device)
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=LR, momentum=0.9)

    def step():
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(model(x, labels), y).backward()
        optimizer.step()

    return model.train, step


def forward_pass(model: nn.Module, x, task_labels=None) -> Callable[[], None]:
    @torch.no_grad()
    def run():
        model(x) if task_labels is None else model(x, task_labels)
    return run


def measure_size(name: str, backbone: nn.Module, n: int, rounds: int, device) -> Dict[str, float]:
    """Every ratio at bank size n, each from its own interleaved group."""
    started = time.perf_counter()
    _, shape, train_batch, eval_batch, _ = BACKBONES[name]
    g = torch.Generator().manual_seed(n)
    x = torch.rand((train_batch,) + shape, generator=g).to(device)
    y = torch.randint(0, CLASSES, (train_batch,), generator=g).to(device)
    xe = torch.rand((eval_batch,) + shape, generator=g).to(device)
    one, bank = lora_bank(backbone, 1).to(device), lora_bank(backbone, n).to(device)
    share_one, share_n = share_bank(backbone, 1).to(device), share_bank(backbone, n).to(device)
    steps, enter = {}, {}
    for label, model, phase in (("lora_1", one, "magnitude"), ("lora_n", bank, "magnitude"),
                                ("lite_n", bank, "selection")):
        enter[label], steps[label] = lora_step(model, phase, x, y)
    enter["share_1"], steps["share_1"] = share_step(share_one, x, y, 0)
    enter["share_n"], steps["share_n"] = share_step(share_n, x, y, n - 1)
    step_times = interleaved_times(steps, rounds=rounds, enter=enter, device=device)

    bare = sharing_copy(backbone).eval()
    bank.eval()
    share_n.eval()
    single = torch.zeros(eval_batch, dtype=torch.long, device=device)  # the oldest task
    mixed = torch.arange(eval_batch, device=device) % min(n, 4)
    passes = {"bare": forward_pass(bare, xe), "unmerged": forward_pass(bank, xe),
              "merged": forward_pass(bank, xe), "share_single": forward_pass(share_n, xe, single),
              "share_mixed": forward_pass(share_n, xe, mixed)}
    infer_times = interleaved_times(passes, rounds=rounds, enter={"merged": bank.merge},
                                    leave={"merged": bank.unmerge}, device=device)
    median = lambda ts: sorted(ts)[len(ts) // 2]  # noqa: E731
    return {
        "n": n,
        "lora_step_ms": 1e3 * median(step_times["lora_n"]),
        "lora_step_vs_1": paired_ratio(step_times, "lora_n", "lora_1"),
        "lite_selection_step_ms": 1e3 * median(step_times["lite_n"]),
        "lite_vs_per_task": paired_ratio(step_times, "lite_n", "lora_n"),
        "share_step_ms": 1e3 * median(step_times["share_n"]),
        "share_step_vs_1": paired_ratio(step_times, "share_n", "share_1"),
        "bare_infer_ms": 1e3 * median(infer_times["bare"]),
        "unmerged_vs_bare": 1 / paired_ratio(infer_times, "unmerged", "bare"),
        "merged_vs_bare": 1 / paired_ratio(infer_times, "merged", "bare"),
        "share_single_vs_bare": 1 / paired_ratio(infer_times, "share_single", "bare"),
        "share_mixed_vs_bare": 1 / paired_ratio(infer_times, "share_mixed", "bare"),
        "wall_s": time.perf_counter() - started,
    }


def memory_probe(name: str, method: str, n: int, device: str) -> Dict[str, float]:
    """Run in a fresh process: peak memory of two training steps and one inference pass."""
    backbone = BACKBONES[name][0]()
    _, shape, train_batch, eval_batch, _ = BACKBONES[name]
    x = torch.rand((train_batch,) + shape, device=device)
    y = torch.randint(0, CLASSES, (train_batch,), device=device)
    model = (lora_bank(backbone, n) if method == "lora" else share_bank(backbone, n)).to(device)
    del backbone
    params = sum(p.numel() * p.element_size() for n_, p in model.named_parameters()
                 if ".adapters." in n_ or ".basis_" in n_ or ".extra_" in n_)
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    enter, step = lora_step(model, "magnitude", x, y) if method == "lora" else share_step(model, x, y, n - 1)
    enter()
    for _ in range(2):
        step()
    model.eval()
    labels = torch.zeros(eval_batch, dtype=torch.long, device=device)
    forward_pass(model, torch.rand((eval_batch,) + shape, device=device),
                 None if method == "lora" else labels)()
    peak = torch.cuda.max_memory_allocated() if device.startswith("cuda") else _resident_peak()
    return {"peak_mb": peak / 2**20, "adapter_mb": params / 2**20}


def _resident_peak() -> int:
    """Peak resident bytes of this process since its exec (``VmHWM``).

    Not ``ru_maxrss``: Linux carries that high-water mark across ``execve``, so a probe
    process would report the (larger) peak of the benchmark process that forked it.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _probe(name: str, method: str, n: int, device: str) -> Dict[str, float]:
    command = [sys.executable, "-m", "benchmarks.studies.bank_scaling", "--memory-probe", name, method, str(n),
               "--device", device]
    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def markdown(results: Dict[str, List[Dict[str, float]]], memory: Dict[str, Dict]) -> str:
    head = ("| backbone | n | step ms (per-task) | step / step at 1 | LiteLoRA sel. / per-task | "
            "Share step / at 1 | unmerged / bare | merged / bare | Share single / bare | "
            "Share mixed / bare |\n|---|---|---|---|---|---|---|---|---|---|\n")
    lines = []
    for name, rows in results.items():
        for r in rows:
            lines.append(
                f"| {name} | {r['n']} | {r['lora_step_ms']:.1f} | {r['lora_step_vs_1']:.2f} | "
                f"{r['lite_vs_per_task']:.2f} | {r['share_step_vs_1']:.2f} | {r['unmerged_vs_bare']:.2f} | "
                f"{r['merged_vs_bare']:.2f} | {r['share_single_vs_bare']:.2f} | {r['share_mixed_vs_bare']:.2f} |")
    text = head + "\n".join(lines) + "\n"
    if memory:
        text += "\n| backbone | model | n | peak memory MB | adapter tensors MB |\n|---|---|---|---|---|\n"
        text += "\n".join(f"| {k.split('/')[0]} | {k.split('/')[1]} | {k.split('/')[2]} | "
                          f"{v['peak_mb']:.0f} | {v['adapter_mb']:.1f} |" for k, v in memory.items()) + "\n"
    return text


def plot(results: Dict[str, List[Dict[str, float]]], path: Path) -> None:
    """Top row: milliseconds against bank size; bottom row: the ratios of the table."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, len(results), figsize=(6 * len(results), 8), squeeze=False)
    for column, (name, rows) in enumerate(results.items()):
        sizes = [r["n"] for r in rows]
        top, bottom = axes[0][column], axes[1][column]
        for key, label in (("lora_step_ms", "train step, per-task LoRA (SD-LoRA magnitude phase)"),
                           ("lite_selection_step_ms", "train step, LiteLoRA selection phase"),
                           ("share_step_ms", "train step, Share"),
                           ("bare_infer_ms", "inference pass, bare backbone")):
            top.plot(sizes, [r[key] for r in rows], marker="o", label=label)
        top.set_ylabel("ms (median over rounds)")
        top.set_ylim(bottom=0)
        for key, label in (("lora_step_vs_1", "train step / step at n=1 (per-task LoRA)"),
                           ("share_step_vs_1", "train step / step at n=1 (Share)"),
                           ("lite_vs_per_task", "LiteLoRA selection step / per-task step"),
                           ("unmerged_vs_bare", "unmerged inference speed / bare"),
                           ("merged_vs_bare", "merged inference speed / bare"),
                           ("share_single_vs_bare", "Share single-task inference / bare")):
            bottom.plot(sizes, [r[key] for r in rows], marker="o", label=label)
        bottom.axhline(1.0, color="grey", lw=0.5)
        bottom.set_ylabel("ratio (median of interleaved pairs)")
        for ax in (top, bottom):
            ax.set_xscale("log")
            ax.set_xticks(sizes, [str(s) for s in sizes])
            ax.set_xlabel("adapters in the bank (tasks for Share)")
            ax.set_title(name)
            ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_csv(results: Dict[str, List[Dict[str, float]]], path: Path) -> None:
    import csv

    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        for name, rows in results.items():
            for row in rows:
                writer.writerow({"backbone": name, **row})


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              cwd=Path(__file__).resolve().parent, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbones", nargs="+", default=list(BACKBONES), choices=list(BACKBONES))
    parser.add_argument("--sizes", nargs="+", type=int, default=[1, 5, 10, 20, 50])
    parser.add_argument("--rounds", type=int, default=None,
                        help="interleaved rounds per group (default: per backbone, see BACKBONES)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, default=Path("docs/benchmarks/studies/bank_scaling"))
    parser.add_argument("--figure", type=Path, default=Path("docs/bank_scaling.png"))
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory processes")
    parser.add_argument("--memory-probe", nargs=3, metavar=("BACKBONE", "METHOD", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if any(s < 1 for s in args.sizes):
        parser.error(f"--sizes must be positive, got {args.sizes}")
    if args.rounds is not None and args.rounds < 1:
        parser.error(f"--rounds must be positive, got {args.rounds}")
    if args.memory_probe:
        name, method, n = args.memory_probe
        print(json.dumps(memory_probe(name, method, int(n), args.device)))
        return
    torch.manual_seed(0)
    device = torch.device(args.device)
    load_before = os.getloadavg()
    started = time.perf_counter()
    rounds = {}
    results: Dict[str, List[Dict[str, float]]] = {}
    for name in args.backbones:
        backbone = BACKBONES[name][0]().to(device)
        for p in backbone.parameters():
            p.requires_grad_(False)
        results[name] = []
        rounds[name] = args.rounds if args.rounds is not None else BACKBONES[name][4]
        for n in args.sizes:
            row = measure_size(name, backbone, n, rounds[name], device)
            results[name].append(row)
            print(json.dumps({"backbone": name, **row}), flush=True)
    memory = {}
    if not args.no_memory:
        largest = max(args.sizes)
        for name in args.backbones:
            for method in ("lora", "share"):
                for n in sorted({1, largest}):
                    memory[f"{name}/{method}/{n}"] = _probe(name, method, n, args.device)
    env = {"device": str(device), "torch": torch.__version__, "threads": torch.get_num_threads(),
           "cpus": os.cpu_count(), "cpu_model": _cpu_model(), "platform": platform.platform(),
           "commit": _commit(), "load_avg_before": load_before, "load_avg_after": os.getloadavg(),
           "rounds": rounds, "sizes": args.sizes, "wall_s": time.perf_counter() - started,
           "date": time.strftime("%Y-%m-%d %H:%M %Z")}
    args.out.mkdir(parents=True, exist_ok=True)
    write_csv(results, args.out / "bank_scaling.csv")
    (args.out / "bank_scaling.json").write_text(json.dumps({"results": results, "memory": memory, "env": env}, indent=1))
    table = markdown(results, memory)
    (args.out / "bank_scaling.md").write_text(table)
    plot(results, args.figure)
    print(table)
    print(json.dumps(env))


if __name__ == "__main__":
    main()
