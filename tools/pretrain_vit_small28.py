#!/usr/bin/env python
"""Reproducible pretraining of the shipped ``vit_small28_*`` backbones.

Trains the ViT of ``avalanche_litelora.backbones.vit_small28`` (with a temporary
classification head) on the *train* split of MNIST or Fashion-MNIST: plain
supervised cross-entropy, no augmentation, AdamW + linear warmup + cosine decay,
fixed seed. Saves the backbone weights *without the head* as safetensors and
prints the training time and the test-split accuracy.

Temporary head (``--head``): ``mlp`` (default) is a projector
Linear(96, 512)-BatchNorm-ReLU-Linear(512, 10) on top of the pooled feature, as
in "Revisiting the Transferability of Supervised Pretraining: an MLP Projector
is All You Need" (Wang et al., NeurIPS 2022); ``linear`` is a single Linear.
Both are discarded. With the linear head the backbone features collapse onto
the pretraining classes and did *not* beat a random-init backbone on the
cross-dataset linear probe (see tools/linear_probe.py); the projector
absorbs that collapse and keeps the backbone features transferable.

Inputs are ``ToTensor()`` images ([0, 1], no mean/std normalisation), exactly what
the backbone module documents (``INPUT_MEAN = 0``, ``INPUT_STD = 1``).

Data: ``torchvision.datasets.MNIST / FashionMNIST(root, download=False)``, i.e. the
uncompressed IDX files under ``<root>/MNIST/raw/`` or ``<root>/FashionMNIST/raw/``.
If they are missing, ``avalanche_litelora.data.fetch_dataset(name, root)`` is used
when available (offline sources). Nothing is downloaded from the internet here.

Commands used for the shipped weights (defaults: 3 epochs, batch 128, AdamW lr 1e-3,
wd 0.05, 200 warmup steps + cosine, mlp head, seed 0, 1 torch thread)::

    python tools/pretrain_vit_small28.py --dataset fashion_mnist --data-root data \
        --out avalanche_litelora/backbones/weights/vit_small28_fmnist.safetensors
    python tools/pretrain_vit_small28.py --dataset mnist --data-root data \
        --out avalanche_litelora/backbones/weights/vit_small28_mnist.safetensors

Recorded (torch 2.14.1 CPU, timm 1.0.31, shared 2-core machine, 1 thread):

    dataset        train time  process wall  test acc (with temporary head)
    fashion_mnist  370.7 s     387.9 s       0.8800
    mnist          358.2 s     376.3 s       0.9784

(``--head linear``, same settings, run earlier: fashion_mnist 0.8625 in 299 s,
mnist 0.9704 in 313 s, but no linear-probe gain over random init; see
tools/linear_probe.py.) Two torch threads are *slower* when another process
keeps one core busy (OpenMP oversubscription: 0.6-0.8 s vs 0.25 s per step).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Tuple

import torch
import torch.nn.functional as F

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

DATASETS = ("mnist", "fashion_mnist")
DEFAULT_OUT = {
    "fashion_mnist": REPO_ROOT / "avalanche_litelora/backbones/weights/vit_small28_fmnist.safetensors",
    "mnist": REPO_ROOT / "avalanche_litelora/backbones/weights/vit_small28_mnist.safetensors",
}


def _try_fetch(dataset: str, root: str) -> bool:
    fetch = None
    for mod in ("avalanche_litelora.data.fetch", "avalanche_litelora.data"):
        try:
            fetch = getattr(__import__(mod, fromlist=["fetch_dataset"]), "fetch_dataset", None)
        except ImportError:
            fetch = None
        if fetch is not None:
            break
    if fetch is None:
        return False
    print(f"[data] {dataset} not found under {root}; calling fetch_dataset({dataset!r}, {root!r})", flush=True)
    fetch(dataset, root)
    return True


def load_split(dataset: str, root: str, train: bool) -> Tuple[torch.Tensor, torch.Tensor]:
    """Whole split as tensors: images (N, 1, 28, 28) float in [0, 1] (== ToTensor()), labels (N,)."""
    from torchvision.datasets import MNIST, FashionMNIST

    cls = {"mnist": MNIST, "fashion_mnist": FashionMNIST}[dataset]
    try:
        ds = cls(root, train=train, download=False)
    except RuntimeError:
        if not _try_fetch(dataset, root):
            raise SystemExit(
                f"{dataset} not found: expected the uncompressed IDX files in "
                f"{os.path.join(root, cls.__name__, 'raw')} (train-images-idx3-ubyte, ...). "
                f"Provide them (e.g. avalanche_litelora.data.fetch_dataset) and retry."
            )
        ds = cls(root, train=train, download=False)
    # ds.data is the uint8 (N, 28, 28) tensor torchvision decodes from the IDX file;
    # /255 gives exactly ToTensor()'s output, without a per-sample PIL round trip.
    x = ds.data.unsqueeze(1).float().div_(255.0)
    y = torch.as_tensor(ds.targets, dtype=torch.long)
    return x, y


@torch.no_grad()
def accuracy(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 1000) -> float:
    model.eval()
    correct = 0
    for i in range(0, len(x), batch_size):
        correct += (model(x[i:i + batch_size]).argmax(1) == y[i:i + batch_size]).sum().item()
    return correct / len(x)


def param_groups(model: torch.nn.Module, weight_decay: float):
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        # no weight decay for biases, norms, position embedding and class token (standard for ViTs)
        (no_decay if p.ndim <= 1 or name.split(".")[-1] in ("pos_embed", "cls_token") else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def make_head(kind: str, num_features: int, num_classes: int, hidden: int = 512) -> torch.nn.Module:
    """Temporary pretraining head (discarded after pretraining)."""
    if kind == "linear":
        return torch.nn.Linear(num_features, num_classes)
    if kind == "mlp":
        return torch.nn.Sequential(
            torch.nn.Linear(num_features, hidden), torch.nn.BatchNorm1d(hidden), torch.nn.ReLU(inplace=True),
            torch.nn.Linear(hidden, num_classes))
    raise ValueError(f"unknown head {kind!r}")


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", choices=DATASETS, required=True)
    ap.add_argument("--data-root", default="data")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--weight-decay", type=float, default=0.05)
    ap.add_argument("--warmup-steps", type=int, default=200)
    ap.add_argument("--head", choices=("mlp", "linear"), default="mlp", help="temporary pretraining head")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1,
                    help="torch CPU threads (1 is fastest on a shared 2-core machine: 2 threads oversubscribe)")
    ap.add_argument("--max-train-samples", type=int, default=None, help="subset of the train split (smoke tests)")
    ap.add_argument("--out", default=None, help="output .safetensors (default: the shipped file for --dataset)")
    args = ap.parse_args(argv)

    from safetensors.torch import save_file
    import timm
    from avalanche_litelora.backbones.vit_small28 import (
        INPUT_MEAN, INPUT_STD, VIT_SMALL28_CONFIG, build_vit_small28)

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    out = Path(args.out) if args.out else DEFAULT_OUT[args.dataset]

    x_train, y_train = load_split(args.dataset, args.data_root, train=True)
    x_test, y_test = load_split(args.dataset, args.data_root, train=False)
    if args.max_train_samples:
        sub = torch.randperm(len(x_train), generator=torch.Generator().manual_seed(args.seed))[:args.max_train_samples]
        x_train, y_train = x_train[sub], y_train[sub]
    num_classes = int(y_train.max()) + 1
    print(f"[data] {args.dataset}: train {tuple(x_train.shape)}, test {tuple(x_test.shape)}, "
          f"pixel mean {x_train.mean():.4f}", flush=True)

    model = build_vit_small28(num_classes=0, seed=args.seed)  # backbone only: forward -> (B, 96)
    head = make_head(args.head, model.num_features, num_classes)  # temporary, not saved
    net = torch.nn.Sequential(model, head)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"[model] {VIT_SMALL28_CONFIG} backbone params {n_params:,}, temporary {args.head} head", flush=True)

    steps_per_epoch = len(x_train) // args.batch_size  # drop last partial batch
    total = steps_per_epoch * args.epochs
    warmup = min(args.warmup_steps, max(total // 10, 1))
    opt = torch.optim.AdamW(param_groups(net, args.weight_decay), lr=args.lr)

    def lr_factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1.0 + math.cos(math.pi * (step - warmup) / max(total - warmup, 1)))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_factor)
    gen = torch.Generator().manual_seed(args.seed)

    t0 = time.perf_counter()
    step = 0
    for epoch in range(args.epochs):
        net.train()
        perm = torch.randperm(len(x_train), generator=gen)
        running, seen = 0.0, 0
        for i in range(steps_per_epoch):
            idx = perm[i * args.batch_size:(i + 1) * args.batch_size]
            loss = F.cross_entropy(net(x_train[idx]), y_train[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            running += loss.item() * len(idx)
            seen += len(idx)
        print(f"[train] epoch {epoch + 1}/{args.epochs} loss {running / seen:.4f} "
              f"elapsed {time.perf_counter() - t0:.1f}s", flush=True)
    train_time = time.perf_counter() - t0

    test_acc = accuracy(net, x_test, y_test)
    print(f"[result] dataset={args.dataset} epochs={args.epochs} steps={total} "
          f"train_time={train_time:.1f}s test_acc={test_acc:.4f}", flush=True)

    backbone = {k: v.detach().contiguous().clone() for k, v in model.state_dict().items()}
    assert not any(k.startswith("head.") for k in backbone)
    metadata = {
        "arch": "timm.models.vision_transformer.VisionTransformer",
        "config": json.dumps(VIT_SMALL28_CONFIG),
        "pretrain_dataset": args.dataset,
        "input_transform": f"ToTensor() only: [0,1], mean={INPUT_MEAN}, std={INPUT_STD}",
        "epochs": str(args.epochs),
        "batch_size": str(args.batch_size),
        "lr": str(args.lr),
        "weight_decay": str(args.weight_decay),
        "seed": str(args.seed),
        "train_samples": str(len(x_train)),
        "test_acc": f"{test_acc:.4f}",
        "train_time_s": f"{train_time:.1f}",
        "torch": torch.__version__,
        "timm": timm.__version__,
        "pretrain_head": args.head,
        "head": "not included",
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    save_file(backbone, str(out), metadata=metadata)
    print(f"[save] {out} ({out.stat().st_size / 1e6:.2f} MB, {len(backbone)} tensors, head excluded)", flush=True)
    return {"test_acc": test_acc, "train_time": train_time, "out": str(out)}


if __name__ == "__main__":
    main()
