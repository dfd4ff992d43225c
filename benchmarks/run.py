"""Benchmark runner: LiteLoRA against per-task LoRA, Share and Avalanche's baselines.

    python -m benchmarks.run              # the default suite, one seed (see configs/suites.json)
    python -m benchmarks.run --quick      # a three-minute smoke run
    python -m benchmarks.run --full       # three seeds, more data (GPU-sized)
    python -m benchmarks.run --long       # the 24-experience ground-truth streams, three seeds

The paper's configuration is its own command over its own JSON, ``python -m benchmarks.paper
--paper NAME`` (``python -m benchmarks.run --paper NAME`` hands over to it);
the text suite is ``python -m benchmarks.text_suite``. All three share the harness
(:mod:`benchmarks.harness`): one ``run_one``, one results row.

Writes results.csv, results.md, sweep.csv, figures/*.png and one TensorBoard folder per
run under --out. Every run goes through Avalanche's train/eval loop and EvaluationPlugin.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from dataclasses import replace
from typing import Any, Dict, List, Optional, Tuple

import torch

from avalanche_litelora.progress import Countdown, progress_enabled, say, switched
from benchmarks import paper
from benchmarks.harness import figures
from benchmarks.harness.ground_truth import decision_table
from benchmarks.harness.methods import has_candidates, is_lora_family, load_method_configs, runs_on
from benchmarks.harness.redundancy import pruning_vs_overlap
from benchmarks.harness.report import goal_checks, markdown_goals, markdown_tables, write_csv
from benchmarks.harness.runner import RunSettings, bare_throughput, run_one
from benchmarks.harness.measure import sample_inputs
from benchmarks.harness.streams import STREAMS, build_stream, get_stream
from benchmarks.harness.environment import environment
from benchmarks.harness.sweep import lambda_sweep

SUITES_FILE = Path(__file__).parent / "configs" / "suites.json"


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="the smoke suite (about 3 minutes on 2 cores)")
    mode.add_argument("--full", action="store_true", help="three seeds, more data: for a GPU")
    mode.add_argument("--long", action="store_true",
                      help="the 24-experience ground-truth streams, three seeds (judged by halves)")
    parser.add_argument("--streams", nargs="+", choices=sorted(STREAMS))
    parser.add_argument("--strategies", nargs="+", choices=sorted(load_method_configs()))
    parser.add_argument("--seeds", nargs="+", type=int, help="class orders / permutations")
    parser.add_argument("--backbone", help="registry name (default: the stream's, pretrained on the other dataset)")
    parser.add_argument("--lora-lr", type=float,
                        help="SGD rate of the LoRA methods and the head-only control (the token read-outs "
                             "need 0.01: their 1,632-wide head diverges at methods.json's 0.05)")
    parser.add_argument("--epochs", type=int, help="training epochs per experience (LiteLoRA adds its selection)")
    parser.add_argument("--train-per-experience", type=int, help="0: the whole experience")
    parser.add_argument("--test-per-experience", type=int, help="0: the whole experience")
    parser.add_argument("--lambda", dest="lambda_sparsity", type=float,
                        help="LiteLoRA's lambda_sparsity (default: its config's, under its lambda rule)")
    parser.add_argument("--sweep-lambdas", nargs="+", type=float,
                        help="pick λ among these on a validation split instead (the suite's own sweep "
                             "runs only where the suite asks for it)")
    parser.add_argument("--validation-fraction", type=float, help="share of training data held out for the sweep")
    parser.add_argument("--out", default="results/benchmarks", help="output folder")
    parser.add_argument("--data-root", default="data", help="MNIST / Fashion-MNIST folder (filled offline)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--resume", action="store_true",
                        help="continue a killed command in the same --out: finished runs are kept, "
                             "the interrupted one resumes from its last experience")
    parser.add_argument("--no-progress", action="store_true")
    return parser.parse_args(argv)


def suite_settings(args: argparse.Namespace) -> Dict[str, Any]:
    """The named suite from configs/suites.json, with the command line's overrides."""
    with open(SUITES_FILE) as f:
        suite_name = "quick" if args.quick else "full" if args.full else "long" if args.long else "default"
        suite = dict(json.load(f)[suite_name], name=suite_name)
    for key in ("streams", "strategies", "seeds", "epochs", "train_per_experience", "test_per_experience"):
        value = getattr(args, key)
        if value is not None:
            suite[key] = value or None  # 0 on the command line: the whole experience
            if key.endswith("per_experience"):  # the command line's sizes hold for every stream
                for sizes in suite.get("stream_sizes", {}).values():
                    sizes.pop(key, None)
    if "sweep" not in suite and not args.sweep_lambdas:
        return suite  # the default lambda rule: no per-stream tuning
    sweep = dict(suite.get("sweep") or {"stream": suite["streams"][0], "validation_fraction": 0.2})
    if sweep["stream"] not in suite["streams"]:  # sweep on a stream the command actually runs
        sweep["stream"] = suite["streams"][0]
    if args.sweep_lambdas:
        sweep["lambdas"] = args.sweep_lambdas
    if args.validation_fraction is not None:
        sweep["validation_fraction"] = args.validation_fraction
    suite["sweep"] = sweep
    if suite["epochs"] is None or suite["epochs"] < 1:
        raise SystemExit("--epochs must be at least 1")
    return suite


def stream_sizes(suite: Dict[str, Any], stream: str) -> Tuple[Optional[int], Optional[int]]:
    """Training and test samples per experience for one stream (long streams may use fewer)."""
    own = suite.get("stream_sizes", {}).get(stream, {})
    return (own.get("train_per_experience", suite["train_per_experience"]),
            own.get("test_per_experience", suite["test_per_experience"]))


def paper_requested(argv) -> bool:
    """``--paper NAME`` is a declared option of this command that hands the whole command line to
    ``python -m benchmarks.paper`` (its own command over ``configs/paper.json``)."""
    front = argparse.ArgumentParser(add_help=False)
    front.add_argument("--paper")
    return front.parse_known_args(argv)[0].paper is not None


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if paper_requested(argv):  # the README's spelling of ``python -m benchmarks.paper``
        return paper.main(argv)
    args = parse_args(argv)
    progress = progress_enabled(False if args.no_progress else None)  # or AVALANCHE_LITELORA_PROGRESS=0
    with switched(progress):  # train_stream, inside each run, follows
        return run_suite(args, argv)


def run_suite(args: argparse.Namespace, argv) -> int:
    """The suite of the parsed command line: the sweep if asked, every run, the report."""
    suite = suite_settings(args)
    out = Path(args.out)
    (out / "figures").mkdir(parents=True, exist_ok=True)
    env = environment(argv)
    previous = out / "environment.json"
    if args.resume and previous.exists():  # the report keeps the run it continues
        first = json.loads(previous.read_text())
        env = dict(first, resumed=f"{env['date']} at commit {env['commit']} ({env['command']})")
    started = time.perf_counter()
    settings = RunSettings(epochs=suite["epochs"], train_per_experience=suite["train_per_experience"],
                           device=args.device)
    progress = progress_enabled()  # a line per run, with the time left

    lam = args.lambda_sparsity
    sweep_rows: List[Dict[str, Any]] = []
    reference: Dict[str, Any] = {}
    if lam is None and "litelora" in suite["strategies"] and "sweep" in suite:
        sweep = suite["sweep"]
        say(f"[benchmarks] lambda sweep on the validation split of {sweep['stream']}: "
            f"{len(sweep['lambdas'])} LiteLoRA runs and per-task LoRA's", progress)
        lam, sweep_rows, reference = lambda_sweep(
            get_stream(sweep["stream"]), suite["seeds"][0], settings, sweep["lambdas"],
            sweep["validation_fraction"], args.data_root, suite["test_per_experience"],
            out / "runs" / "sweep", resume=args.resume,
        )
        write_csv_rows(out / "sweep.csv", [reference] + sweep_rows)
        figures.lambda_sweep(sweep_rows, reference, lam, out / "figures" / "lambda_sweep.png")
        print(f"lambda chosen on the validation split of {sweep['stream']}: {lam:g}")

    plan = [
        (stream, seed, strategy)
        for stream in suite["streams"] for seed in suite["seeds"] for strategy in suite["strategies"]
        if runs_on(strategy, get_stream(stream).task_incremental)
    ]
    rows: List[Dict[str, Any]] = []
    benchmarks: Dict[Any, Any] = {}
    bare: Dict[Any, float] = {}
    countdown = Countdown("benchmarks", "run", len(plan), progress)
    for index, (stream, seed, strategy) in enumerate(plan):
        countdown.start(index, f"{strategy} on {stream}, seed {seed}")
        spec = get_stream(stream)
        sizes = stream_sizes(suite, stream)
        if (stream, seed) not in benchmarks:
            benchmarks = {(stream, seed): build_stream(spec, seed, args.data_root, *sizes)}
        benchmark = benchmarks[(stream, seed)]
        backbone = args.backbone or spec.backbone
        if (stream, backbone) not in bare:
            x, t = sample_inputs(benchmark.test_stream, settings.throughput_samples, args.device)
            bare[(stream, backbone)] = bare_throughput(backbone, x, t, settings.eval_mb_size)
        overrides = dict({"lambda_sparsity": lam} if lam is not None and has_candidates(strategy) else {},
                         **({"lr": args.lora_lr or spec.lora_lr}
                            if (args.lora_lr or spec.lora_lr) and is_lora_family(strategy) else {})) or None
        run_settings = replace(settings, train_per_experience=sizes[0])
        rows.append(run_one(
            spec, benchmark, strategy, seed, run_settings, out / "runs" / stream / f"{strategy}_seed{seed}",
            overrides=overrides, backbone_name=backbone, bare_sps=bare[(stream, backbone)],
            resume=args.resume,
        ))
        write_csv(rows, out / "results.csv")  # after every run: a long suite loses nothing
        countdown.finish(index, f"{strategy} on {stream}, seed {seed}")

    write_report(out, rows, sweep_rows, reference, lam, env, suite, time.perf_counter() - started)
    print((out / "results.md").read_text())
    return 0


def redundancy_section(out: Path, rows) -> str:
    """redundancy.csv (final banks), candidates.csv (LiteLoRA's decisions) and their summary."""
    banks = [dict(stream=r["stream"], strategy=r["strategy"], seed=r["seed"], **r["redundancy"])
             for r in rows if "redundancy" in r]
    candidates = [dict(stream=r["stream"], seed=r["seed"], **c) for r in rows for c in r.get("candidates", [])]
    for path, table in (("redundancy.csv", banks), ("candidates.csv", candidates)):
        if table:
            with open(out / path, "w", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=list(table[0]))
                writer.writeheader()
                writer.writerows(table)
    if not banks:
        return ""
    lines = ["### Redundancy of the final banks", "",
             "| stream | strategy | seed | adapters | mean overlap | mean captured | rank90 | rank99 |",
             "|---|---|---|---|---|---|---|---|"]
    for b in banks:  # overlap and captured need two adapters
        pair = [f"{b[k]:.3f}" if b["adapters"] > 1 else "–" for k in ("mean_overlap", "mean_captured")]
        lines.append(f"| {b['stream']} | {b['strategy']} | {b['seed']} | {b['adapters']} | {pair[0]} | "
                     f"{pair[1]} | {b['rank90']} | {b['rank99']} |")
    text = "\n".join(lines) + "\n\n"
    if candidates:
        text += pruning_vs_overlap(candidates)
    return text


def write_csv_rows(path: Path, rows: List[Dict[str, Any]]) -> None:
    keys = ["lambda_sparsity", "strategy", "avg_anytime_acc", "final_acc", "active_adapters",
            "adapter_params", "train_time_s"]
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=keys, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def write_report(out: Path, rows, sweep_rows, reference, lam, env, suite, elapsed: float) -> None:
    for stream in dict.fromkeys(r["stream"] for r in rows):
        figures.accuracy_matrices(rows, stream, out / "figures" / f"accuracy_matrix_{stream}.png")
        figures.forgetting_curves(rows, stream, out / "figures" / f"forgetting_{stream}.png")
    figures.accuracy_vs_adapters(rows, out / "figures" / "final_acc_vs_adapters.png")
    header = [
        f"Suite `{suite['name']}`: {suite['epochs']} epoch(s) per experience, "
        f"{suite['train_per_experience'] or 'all'} training / {suite['test_per_experience'] or 'all'} "
        f"test samples per experience"
        + "".join(f" ({name}: {sizes})" for name, sizes in suite.get("stream_sizes", {}).items() if sizes)
        + (f"; LiteLoRA λ = {lam:g}" + (" (picked on the validation split)" if sweep_rows else " (given)")
           if lam is not None else "; LiteLoRA λ: its config's default rule") + ".",
        "",
        *(f"- {k}: {v}" for k, v in env.items() if k != "wall_time_min"),
        f"- wall time of the command: {env.setdefault('wall_time_min', f'{elapsed / 60:.1f}')} min"
        + (f" (then {elapsed / 60:.1f} min to resume)" if "resumed" in env else ""),
        "",
    ]
    sweep = ""
    if sweep_rows:
        sweep = (
            f"### λ sweep (validation split of {reference['stream']}, seed {reference['seed']})\n\n"
            "| run | avg anytime acc | final acc | active adapters |\n|---|---|---|---|\n"
            + "".join(
                f"| {name} | {r['avg_anytime_acc']:.3f} | {r['final_acc']:.3f} | {r['active_adapters']} |\n"
                for name, r in [("per-task LoRA", reference)]
                + [(f"LiteLoRA λ={r['lambda_sparsity']:g}", r) for r in sweep_rows]
            )
            + "\n"
        )
    decisions = decision_table(rows)
    if decisions:
        decisions = "### Ground-truth decisions (experience 0 opens no gate)\n\n" + decisions
    text = "\n".join(header) + "\n" + markdown_tables(rows) + "\n" + sweep + \
        "### Goals\n\n" + markdown_goals(goal_checks(rows)) + "\n" + decisions + redundancy_section(out, rows)
    (out / "results.md").write_text(text)
    (out / "environment.json").write_text(json.dumps(env, indent=2))


if __name__ == "__main__":
    sys.exit(main())
