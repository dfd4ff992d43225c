"""The paper's configuration, its own command over ``configs/paper.json``.

    python -m benchmarks.paper --paper imagenet_r --data-root data          # 3 orders x 2 methods
    python -m benchmarks.paper --paper cifar100 --seeds 1993 --strategies litelora
    python -m benchmarks.paper --paper imagenet_r --strategies inflora olora      # their published settings
    python -m benchmarks.paper --paper imagenet_r --synthetic --random-init --tiny   # prove the path
    torchrun --standalone --nproc_per_node=4 -m benchmarks.paper --paper imagenet_r  # DDP (NCCL)

(``python -m benchmarks.run --paper NAME ...`` is the same command.)

Settings come from ``configs/paper.json`` (each value's source and every deviation from the
reference code are written there). Every run trains through Avalanche with the package's
``LiteLoRAStrategy`` / ``PerTaskLoRAStrategy`` (SD-LoRA) / ``InfLoRAStrategy`` / ``OLoRAStrategy``
through the harness's ``run_one`` (one results row for every suite), checkpoints after each
experience (``--resume`` continues a killed command) and writes results.csv / results.md with
the published numbers beside ours.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

import timm
import torch
from avalanche.distributed import DistributedHelper
from avalanche.training.determinism.rng_manager import RNGManager

from avalanche_litelora import data as paper_data
from avalanche_litelora.data.paper import reference_class_order, synthetic
from avalanche_litelora.data.streams import subsample_benchmark
from avalanche_litelora.training.plugins.autocast import bf16_supported
from benchmarks.harness.environment import environment
from benchmarks.harness.paper_config import STRATEGIES, available_strategies, benchmark_names, load_config
from benchmarks.harness.paper_methods import build_paper_strategy
from benchmarks.harness.paper_report import paper_report
from benchmarks.harness.report import write_csv
from benchmarks.harness.runner import RunSettings, run_one
from benchmarks.harness.streams import StreamSpec

#: --tiny: the whole path on a CPU in about a minute per run (sizes, not settings, change).
TINY = dict(experiences=2, train_per_experience=8, test_per_experience=4, epochs=1, batch_size=4,
            selection_batch_size=2, eval_batch_size=8, refit_steps=1, throughput_samples=0)


def parse_args(argv=None) -> argparse.Namespace:
    names = benchmark_names()
    p = argparse.ArgumentParser(prog="python -m benchmarks.paper", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--paper", required=True, choices=names, help="the benchmark")
    p.add_argument("--data-root", default="data", help="folder holding the dataset (see the README)")
    p.add_argument("--out", help="output folder (default results/paper/NAME)")
    p.add_argument("--strategies", nargs="+", choices=sorted(STRATEGIES),
                   help="default litelora sdlora; inflora and olora where paper.json has their settings")
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
    budget = ("train_epochs", "train_mb_size")
    cfg["as_published"] = {m: {k: s[k] for k in budget} for m, s in [("litelora", cfg), *cfg["methods"].items()]}
    overrides = dict(train_epochs=args.epochs, train_mb_size=args.batch_size, eval_mb_size=args.eval_batch_size,
                     selection_mb_size=args.selection_batch_size, refit_steps=args.refit_steps,
                     throughput_samples=args.throughput_samples, seeds=args.seeds, strategies=args.strategies)
    overrides = {k: v for k, v in overrides.items() if v is not None}
    cfg.update(overrides)
    for method in cfg["methods"].values():  # the command line's budget binds every method
        method.update({k: v for k, v in overrides.items() if k in ("train_epochs", "train_mb_size", "eval_mb_size")})
    unknown = [s for s in cfg["strategies"] if s not in available_strategies(cfg)]
    if unknown:
        raise SystemExit(f"--strategies {' '.join(unknown)}: configs/paper.json holds no published settings for "
                         f"them on {args.paper}; here: {' '.join(available_strategies(cfg))}")
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


def weights_source(cfg: Dict[str, Any], args: argparse.Namespace) -> Tuple[Optional[str], str]:
    """The ViT-B/16 weights file (None: random init or timm's download) and how rows name it;
    refuses, with where to get them, when there are none."""
    name = cfg["pretrained"]
    if args.random_init:
        return None, "random init"
    path = args.checkpoint or cached_weights(name)
    if path:
        return path, f"{name} ({path})"
    if args.allow_download:
        return None, f"{name} (downloaded by timm)"
    raise SystemExit(f"no weights for {name}: pass --checkpoint FILE (e.g. model.safetensors from "
                     f"https://huggingface.co/timm/{name}), put them in the Hugging Face cache, pass "
                     "--allow-download, or --random-init for a smoke run")


def load_backbone(cfg: Dict[str, Any], args: argparse.Namespace) -> Tuple[torch.nn.Module, str]:
    """ViT-B/16 without its head, and where its weights came from."""
    from avalanche_litelora.backbones import create_backbone

    path, label = weights_source(cfg, args)
    name = cfg["pretrained"]
    if path:
        return create_backbone("timm_local", model_name=name, checkpoint_path=path, num_classes=0), label
    return timm.create_model(name.split(".")[0] if args.random_init else name, pretrained=not args.random_init,
                             num_classes=0), label


def stream_spec(cfg: Dict[str, Any], label: str, download: bool) -> StreamSpec:
    """The benchmark as the harness names a stream (built per class order by :func:`build_benchmark`)."""
    return StreamSpec(name=cfg["name"], build=lambda seed, root: build_benchmark(cfg, seed, root, download),
                      task_incremental=False, backbone=label, dataset=cfg["builder"],
                      description="the paper's configuration (configs/paper.json)")


def run_paper(name: str, seed: int, cfg: Dict[str, Any], args, device, world: int, out: Path) -> Dict[str, Any]:
    """One method on one class order through the harness's :func:`run_one` (its row, resume and
    checkpoints), with the method's published settings."""
    budget = cfg["methods"].get(name, cfg)
    _, label = weights_source(cfg, args)  # refuses missing weights before anything trains
    RNGManager.set_random_seeds(seed)  # python, numpy and torch, as the reference seeds
    spec = stream_spec(cfg, label, args.allow_download)
    benchmark = spec.build(seed, args.data_root)
    amp = args.amp == "bf16" or (args.amp == "auto" and bf16_supported(device))

    def build(plugins, log_dir):  # the backbone is created after the runner seeds torch, as before
        return build_paper_strategy(name, load_backbone(cfg, args)[0], cfg, device=device, world=world,
                                    workers=args.workers, amp_device=torch.device(device).type if amp else None,
                                    plugins=plugins, log_dir=log_dir)

    settings = RunSettings(epochs=budget["train_epochs"], train_per_experience=cfg["train_per_experience"],
                           device=str(device), train_mb_size=budget["train_mb_size"],
                           eval_mb_size=budget["eval_mb_size"], throughput_samples=cfg["throughput_samples"],
                           world_size=world, amp=amp, save_model=False)
    row = run_one(spec, benchmark, name, seed, settings, out / "runs" / f"{name}_seed{seed}", resume=args.resume,
                  build=build, checkpoints=True,
                  scenario="domain-il" if cfg["builder"] == "DomainNet" else "class-il")
    if DistributedHelper.is_main_process:
        merged = row["infer_merged_sps"]
        print(f"[{cfg['name']} {name} seed {seed}] train {row['train_images_per_s']:.1f} img/s "
              f"(median step {row['train_step_ms']:.0f} ms at {settings.process_mb_size} per process), peak memory "
              f"{row['peak_mem_mb']:.0f} MB, inference merged "
              f"{f'{merged:.1f} img/s' if cfg['throughput_samples'] else 'not measured'}, "
              f"{row['train_time_s']:.0f} s", flush=True)
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
    rows = [run_paper(name, seed, cfg, args, device, world, out)
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
