"""The paper's configuration, its own command over ``configs/paper.json``.

    python -m benchmarks.paper --paper imagenet_r --data-root data          # 3 orders x 2 methods
    python -m benchmarks.paper --paper cifar100 --seeds 1993 --strategies litelora
    python -m benchmarks.paper --paper imagenet_r --synthetic --random-init --tiny   # prove the path
    torchrun --standalone --nproc_per_node=4 -m benchmarks.paper --paper imagenet_r  # DDP (NCCL)

(``python -m benchmarks.run --paper NAME ...`` is the same command.)

Settings come from ``configs/paper.json`` (each value's source and every deviation from the
reference code are written there). Every run trains through Avalanche with the package's
``LiteLoRAStrategy`` / ``PerTaskLoRAStrategy`` (SD-LoRA), checkpoints after each experience
(``--resume`` continues a killed command) and writes results.csv / results.md with the
reference's published numbers beside ours.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import timm
import torch
from avalanche.distributed import DistributedHelper
from avalanche.evaluation.metrics import accuracy_metrics, forgetting_metrics, loss_metrics
from avalanche.training.determinism.rng_manager import RNGManager
from avalanche.training.plugins import EvaluationPlugin

from avalanche_litelora import data as paper_data
from avalanche_litelora.data.paper import reference_class_order, synthetic
from avalanche_litelora.data.streams import subsample_benchmark
from avalanche_litelora.evaluation import litelora_evaluator, litelora_metrics
from avalanche_litelora.metrics import (accuracy_row, average_anytime_accuracy, average_forgetting,
                                        backward_transfer, final_accuracy, just_trained_accuracy)
from avalanche_litelora import LiteLoRAStrategy, PerTaskLoRAStrategy
from avalanche_litelora.training.loop import train_stream
from avalanche_litelora.training.optimizer_groups import ROLE_KEY
from avalanche_litelora.training.plugins.autocast import AutocastPlugin, bf16_supported
from avalanche_litelora.training.plugins.lr_milestones import EpochMilestonesLRPlugin
from benchmarks.harness.measure import PeakMemory, StepTimer, sample_inputs, throughput
from benchmarks.harness.paper_report import paper_report
from benchmarks.harness.redundancy import bank_summary
from benchmarks.harness.environment import environment
from benchmarks.harness.report import write_csv

CONFIG_FILE = Path(__file__).parent / "configs" / "paper.json"
STRATEGIES = {"litelora": LiteLoRAStrategy, "sdlora": PerTaskLoRAStrategy}
#: --tiny: the whole path on a CPU in about a minute per run (sizes, not settings, change).
TINY = dict(experiences=2, train_per_experience=8, test_per_experience=4, epochs=1, batch_size=4,
            selection_batch_size=2, eval_batch_size=8, refit_steps=1, throughput_samples=0)


class RankSafeStepTimer(StepTimer, supports_distributed=True):
    """The harness's step timer, declared rank-safe the way Avalanche reads it (a class keyword:
    ``SupervisedPlugin.__init_subclass__`` overwrites a ``supports_distributed`` class attribute)."""


def load_config(name: str) -> Dict[str, Any]:
    """``common`` merged with benchmark ``name``'s own keys, plus its published numbers."""
    with open(CONFIG_FILE) as f:
        config = json.load(f)
    if name not in config["benchmarks"]:
        raise ValueError(f"unknown paper benchmark {name!r}; choose from {sorted(config['benchmarks'])}")
    return dict(config["common"], **config["benchmarks"][name], name=name,
                reference=config["reference"].get(name, {}))


def parse_args(argv=None) -> argparse.Namespace:
    with open(CONFIG_FILE) as f:
        names = sorted(json.load(f)["benchmarks"])
    p = argparse.ArgumentParser(prog="python -m benchmarks.paper", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--paper", required=True, choices=names, help="the benchmark")
    p.add_argument("--data-root", default="data", help="folder holding the dataset (see the README)")
    p.add_argument("--out", help="output folder (default results/paper/NAME)")
    p.add_argument("--strategies", nargs="+", choices=sorted(STRATEGIES))
    p.add_argument("--seeds", nargs="+", type=int, help="class orders (default 1993 1995 2000)")
    weights = p.add_mutually_exclusive_group()
    weights.add_argument("--checkpoint", help="ViT-B/16 weights file (.safetensors / .pth) for timm_local")
    weights.add_argument("--random-init", action="store_true", help="random ViT-B/16 (smoke runs only)")
    weights.add_argument("--allow-download", action="store_true",
                         help="let timm download the weights (and the dataset builders their data)")
    p.add_argument("--pretrained", help="timm name.tag of the backbone (default: the config's "
                   "vit_base_patch16_224.augreg_in21k; e.g. ...augreg2_in21k_ft_in1k, the reference's)")
    p.add_argument("--synthetic", action="store_true",
                   help="first write a synthetic folder in the official layout under --data-root")
    p.add_argument("--synthetic-images-per-class", type=int, default=5)
    p.add_argument("--tiny", action="store_true", help="two experiences of a few minibatches: " + str(TINY))
    p.add_argument("--experiences", type=int, help="train only the first N experiences")
    p.add_argument("--train-per-experience", type=int, help="random subset of each training experience")
    p.add_argument("--test-per-experience", type=int, help="random subset of each test experience")
    p.add_argument("--epochs", type=int, help="magnitude epochs per experience (paper: 20)")
    p.add_argument("--batch-size", type=int, help="global training batch (paper: 128)")
    p.add_argument("--selection-batch-size", type=int)
    p.add_argument("--eval-batch-size", type=int)
    p.add_argument("--refit-steps", type=int)
    p.add_argument("--throughput-samples", type=int)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--amp", choices=("auto", "bf16", "off"), default="off",
                   help="bf16 autocast (default off: the reference runs fp32); auto = on CUDA "
                        "devices that support it")
    p.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1), help="data loader workers")
    p.add_argument("--resume", action="store_true", help="continue a killed command in the same --out")
    args = p.parse_args(argv)
    if args.tiny:
        for key, value in TINY.items():
            if getattr(args, key) is None:
                setattr(args, key, value)
    for key in ("experiences", "train_per_experience", "test_per_experience", "epochs", "batch_size",
                "selection_batch_size", "eval_batch_size", "synthetic_images_per_class"):
        value = getattr(args, key)
        if value is not None and value < 1:
            p.error(f"--{key.replace('_', '-')} must be at least 1, got {value}")
    for key in ("refit_steps", "throughput_samples"):
        if getattr(args, key) is not None and getattr(args, key) < 0:
            p.error(f"--{key.replace('_', '-')} must be >= 0")
    return args


def settings(args: argparse.Namespace) -> Dict[str, Any]:
    """The configuration of this command: paper.json with the command line's overrides."""
    cfg = load_config(args.paper)
    overrides = dict(train_epochs=args.epochs, train_mb_size=args.batch_size, eval_mb_size=args.eval_batch_size,
                     selection_mb_size=args.selection_batch_size, refit_steps=args.refit_steps,
                     throughput_samples=args.throughput_samples, seeds=args.seeds, strategies=args.strategies)
    cfg.update({k: v for k, v in overrides.items() if v is not None})
    if args.pretrained:
        try:
            known = timm.models.get_pretrained_cfg(args.pretrained) is not None
        except RuntimeError:  # timm raises on an unknown tag of a known architecture
            known = False
        if not known:
            raise SystemExit(f"--pretrained {args.pretrained}: timm knows no such model.tag")
        cfg["pretrained"] = args.pretrained
    cfg["img_size"] = timm.models.get_pretrained_cfg(cfg["pretrained"]).input_size[-1]  # 224 for ViT-B/16
    cfg["experiences"] = min(args.experiences or cfg["n_experiences"], cfg["n_experiences"])
    cfg["train_per_experience"], cfg["test_per_experience"] = args.train_per_experience, args.test_per_experience
    return cfg


def make_synthetic(name: str, root: Path, per_class: int) -> None:
    """A folder in the official layout, unless the dataset is already there."""
    if name in ("imagenet_r", "imagenet_a"):
        folder = "imagenet-r" if name == "imagenet_r" else "imagenet-a"
        if not (root / folder).exists():
            synthetic.make_imagenet_variant(root, folder, images_per_class=max(2, per_class), size=32)
    elif name == "cub200" and not (root / "CUB_200_2011").exists():
        synthetic.make_cub(root, train_per_class=max(1, per_class - 1), test_per_class=1, size=32)
    elif name.startswith("domainnet") and not (root / "domainnet").exists():
        synthetic.make_domainnet(root, train_per_class=max(1, per_class - 1), test_per_class=1, size=32)
    elif name == "cifar100":
        raise SystemExit("--synthetic cannot stand in for CIFAR-100: torchvision checks the official "
                         "files' MD5; use --paper imagenet_r --synthetic for a smoke run")


def build_benchmark(cfg: Dict[str, Any], seed: int, data_root: str, download: bool):
    """The benchmark for one class order (the reference's permutation of ``seed``), cut as asked."""
    builder = getattr(paper_data, cfg["builder"])
    model_name = cfg["pretrained"]
    transforms = dict(train_transform=paper_data.paper.vit_train_transform(cfg["img_size"], model_name),
                      eval_transform=paper_data.paper.vit_eval_transform(cfg["img_size"], model_name))
    try:
        if cfg["builder"] == "DomainNet":  # the domains in their listed order
            benchmark = builder(dataset_root=data_root, **transforms)
        else:
            kwargs = {} if cfg["builder"] == "SplitDomainNet" else dict(download=download)
            benchmark = builder(cfg["n_experiences"], fixed_class_order=reference_class_order(cfg["n_classes"], seed),
                                dataset_root=data_root, **transforms, **kwargs)
    except paper_data.PaperDatasetError as error:  # a command-line user gets the message, not a traceback
        raise SystemExit(f"{error}\nOn the command line: --data-root DIR is dataset_root"
                         + (", --allow-download asks for the download" if error.downloadable else "")
                         + "; --paper imagenet_r --synthetic --random-init --tiny is a smoke run without data.")
    k = cfg["experiences"]
    if k < cfg["n_experiences"] or cfg["train_per_experience"] or cfg["test_per_experience"]:
        sliced = argparse.Namespace(train_stream=benchmark.train_stream[:k], test_stream=benchmark.test_stream[:k])
        benchmark = subsample_benchmark(sliced, cfg["train_per_experience"], cfg["test_per_experience"], seed=seed)
    return benchmark


def cached_weights(model_name: str) -> Optional[str]:
    """The weights file timm would download, if it is already in the Hugging Face cache."""
    from huggingface_hub import try_to_load_from_cache

    hub_id = getattr(timm.models.get_pretrained_cfg(model_name), "hf_hub_id", None)
    for filename in ("model.safetensors", "pytorch_model.bin"):
        path = try_to_load_from_cache(hub_id, filename) if hub_id else None
        if isinstance(path, str) and os.path.isfile(path):
            return path
    return None


def load_backbone(cfg: Dict[str, Any], args: argparse.Namespace) -> Tuple[torch.nn.Module, str]:
    """ViT-B/16 without its head, and where its weights came from."""
    from avalanche_litelora.backbones import create_backbone

    name = cfg["pretrained"]
    if args.random_init:
        return timm.create_model(name.split(".")[0], pretrained=False, num_classes=0), "random init"
    path = args.checkpoint or cached_weights(name)
    if path:
        return create_backbone("timm_local", model_name=name, checkpoint_path=path, num_classes=0), f"{name} ({path})"
    if args.allow_download:
        return timm.create_model(name, pretrained=True, num_classes=0), f"{name} (downloaded by timm)"
    raise SystemExit(f"no weights for {name}: pass --checkpoint FILE (e.g. model.safetensors from "
                     f"https://huggingface.co/timm/{name}), put them in the Hugging Face cache, pass "
                     "--allow-download, or --random-init for a smoke run")


def evaluator(log_dir: Path, main: bool) -> EvaluationPlugin:
    """The package's evaluator on rank 0; the same metrics without loggers on the others
    (Avalanche refuses loggers there, and a checkpoint must name the same metrics)."""
    if main:
        return litelora_evaluator(log_dir, interactive=False)
    return EvaluationPlugin(accuracy_metrics(epoch=True, experience=True, stream=True),
                            loss_metrics(epoch=True, experience=True, stream=True),
                            forgetting_metrics(experience=True, stream=True), *litelora_metrics(), loggers=[])


def build_strategy(name: str, backbone, cfg: Dict[str, Any], device, world: int, plugins, log_dir: Path):
    if cfg["train_mb_size"] % world:
        raise SystemExit(f"the batch {cfg['train_mb_size']} does not split over {world} processes")
    # the reference's groups: its magnitudes at their own rate with the weight decay, the
    # adapters and the head without (nothing trains a magnitude in the first task)
    optimizer = torch.optim.SGD(
        [{"params": backbone.parameters(), "weight_decay": 0.0},
         {"params": [], "lr": cfg["magnitude_lr"], "weight_decay": cfg["weight_decay"],
          ROLE_KEY: "magnitudes"}],
        lr=cfg["lr"], momentum=cfg["momentum"])
    kwargs = dict(model=backbone, optimizer=optimizer, rank=cfg["rank"], target_modules=cfg["target_modules"],
                  init_logit=cfg["init_logit"], tau=cfg["tau"], train_mb_size=cfg["train_mb_size"] // world,
                  train_epochs=cfg["train_epochs"], eval_mb_size=cfg["eval_mb_size"], device=device,
                  evaluator=evaluator(log_dir, DistributedHelper.is_main_process), plugins=plugins)
    if name == "litelora":
        kwargs.update(lambda_sparsity=cfg["lambda_sparsity"], selection_epochs=cfg["selection_epochs"],
                      selection_lr=cfg["selection_lr"], min_selection_steps=cfg["min_selection_steps"],
                      selection_mb_size=max(1, cfg["selection_mb_size"] // world),
                      gate_noise=cfg["gate_noise"], refit_steps=cfg["refit_steps"],
                      gate_sampling=cfg["gate_sampling"], lambda_rule=cfg["lambda_rule"])
    if name in ("litelora", "sdlora"):
        kwargs.update(magnitude_scope=cfg["magnitude_scope"], boundary=cfg["boundary"])
    return STRATEGIES[name](**kwargs)


def weighted_anytime(matrix: List[List[float]], test_sizes: List[int]) -> float:
    """The reference's anytime accuracy: after task i, accuracy on every test sample of tasks
    0..i (so larger experiences weigh more), averaged over i."""
    rows = [sum(matrix[i][j] * test_sizes[j] for j in range(i + 1)) / sum(test_sizes[: i + 1])
            for i in range(len(matrix))]
    return sum(rows) / len(rows)


def _train_rate(timer: StepTimer, batch: int) -> float:
    steps = [(n, t) for exp, _, n, t in timer.steps if exp in (0, 1) and n == batch] or \
        [(n, t) for *_, n, t in timer.steps]
    return sum(n for n, _ in steps) / sum(t for _, t in steps) if steps else float("nan")


def run_one(name: str, seed: int, cfg: Dict[str, Any], args, device, world: int, out: Path) -> Dict[str, Any]:
    """Train one method on one class order; the results row (harness columns + the paper's)."""
    run_dir = out / "runs" / f"{name}_seed{seed}"
    row_file = run_dir / "row.json"
    if args.resume and row_file.exists():
        return json.loads(row_file.read_text())
    if not args.resume and run_dir.exists() and DistributedHelper.is_main_process:
        shutil.rmtree(run_dir)  # a rerun never mixes old events or checkpoints with new ones
    if world > 1:
        DistributedHelper.barrier()
    RNGManager.set_random_seeds(seed)
    benchmark = build_benchmark(cfg, seed, args.data_root, args.allow_download)
    backbone, weights = load_backbone(cfg, args)
    amp = args.amp == "bf16" or (args.amp == "auto" and bf16_supported(device))
    timer = RankSafeStepTimer()
    plugins = [timer, EpochMilestonesLRPlugin(cfg["lr"], cfg["lr_milestones"], cfg["lr_gamma"], from_experience=1)]
    if amp:
        plugins.append(AutocastPlugin(torch.bfloat16, device_types=(torch.device(device).type,)))
    strategy = build_strategy(name, backbone, cfg, device, world, plugins, run_dir / "tensorboard")
    if args.workers:  # Avalanche takes loader settings as train()/eval() keywords
        strategy.train = functools.partial(strategy.train, num_workers=args.workers)
        strategy.eval = functools.partial(strategy.eval, num_workers=args.workers)
    n = len(benchmark.train_stream)
    start = time.perf_counter()
    with PeakMemory(device) as memory:
        results = train_stream(strategy, benchmark, eval_streams=[benchmark.test_stream], resume=args.resume,
                               checkpoint_dir=run_dir / "checkpoint")
    train_time = time.perf_counter() - start
    matrix = [accuracy_row(r, n) for r in results]
    test_sizes = [len(exp.dataset) for exp in benchmark.test_stream]
    model = strategy.adapter_model
    unmerged = merged = float("nan")
    if cfg["throughput_samples"]:
        x, t = sample_inputs(benchmark.test_stream, cfg["throughput_samples"], device)
        with torch.autocast(torch.device(device).type, torch.bfloat16, enabled=amp):
            unmerged = throughput(model, x, t, cfg["eval_mb_size"])
            model.merge()
            merged = throughput(model, x, t, cfg["eval_mb_size"])
            model.unmerge()
    batch = cfg["train_mb_size"] // world
    row = {
        "stream": cfg["name"], "strategy": name, "seed": seed,
        "lambda_sparsity": cfg["lambda_sparsity"] if name == "litelora" else "",
        "backbone": weights, "scenario": "domain-il" if cfg["builder"] == "DomainNet" else "class-il",
        "experiences": n, "epochs": cfg["train_epochs"],
        "train_per_experience": cfg["train_per_experience"] or "all",
        "avg_anytime_acc": average_anytime_accuracy(matrix), "final_acc": final_accuracy(matrix),
        "just_trained_acc": just_trained_accuracy(matrix),
        "forgetting": average_forgetting(matrix), "bwt": backward_transfer(matrix),
        "forgetting_reference": average_forgetting(matrix, include_final=True),
        "avg_anytime_acc_weighted": weighted_anytime(matrix, test_sizes),
        "active_adapters": len(model.active_adapters), "pruned_adapters": len(model.pruned_adapters),
        "adapter_params": model.adapter_parameter_count(), "adapter_bytes": model.adapter_parameter_bytes(),
        "train_time_s": train_time, "train_step_ms": timer.median_step_ms(batch, epochs=cfg["train_epochs"]),
        "train_images_per_s": _train_rate(timer, batch) * world, "peak_mem_mb": memory.peak_mb,
        "infer_bare_sps": float("nan"), "infer_unmerged_sps": unmerged, "infer_merged_sps": merged,
        "amp": "bf16" if amp else "fp32", "world_size": world, "device": str(device),
        "notes": f"{weights}; {world} process(es), {'bf16 autocast' if amp else 'fp32'}",
        "accuracy_matrix": matrix, "redundancy": bank_summary(model),
    }
    if not DistributedHelper.is_main_process:
        return row
    row_file.write_text(json.dumps(row))
    print(f"[{cfg['name']} {name} seed {seed}] train {row['train_images_per_s']:.1f} img/s "
          f"(median step {row['train_step_ms']:.0f} ms at {batch} per process), peak memory "
          f"{row['peak_mem_mb']:.0f} MB, inference merged "
          f"{f'{merged:.1f} img/s' if cfg['throughput_samples'] else 'not measured'}, {train_time:.0f} s", flush=True)
    return row


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    cfg = settings(args)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1:  # torchrun: NCCL on GPUs, gloo on CPUs
        DistributedHelper.init_distributed(random_seed=cfg["seeds"][0], use_cuda=args.device.startswith("cuda"))
    device = DistributedHelper.make_device() if world > 1 else torch.device(args.device)
    out = Path(args.out or f"results/paper/{args.paper}")
    data_root = Path(args.data_root)
    if DistributedHelper.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
        if args.synthetic:
            make_synthetic(args.paper, data_root, args.synthetic_images_per_class)
    if world > 1:
        DistributedHelper.barrier()
    env = environment(argv, "python -m benchmarks.paper")
    started = time.perf_counter()
    rows = [run_one(name, seed, cfg, args, device, world, out)
            for seed in cfg["seeds"] for name in cfg["strategies"]]
    if DistributedHelper.is_main_process:
        env["wall_time_min"] = f"{(time.perf_counter() - started) / 60:.1f}"
        write_csv(rows, out / "results.csv")
        (out / "rows.json").write_text(json.dumps(rows, indent=1))
        (out / "environment.json").write_text(json.dumps(env, indent=2))
        text = paper_report(rows, cfg, env, synthetic=args.synthetic, random_init=args.random_init)
        (out / "results.md").write_text(text)
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
