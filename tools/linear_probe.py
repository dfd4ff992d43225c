#!/usr/bin/env python
"""Linear-probe evaluation of the ``vit_small28_*`` backbones.

Frozen backbone features (``num_classes=0`` -> ``(N, num_features)``) of the
evaluation dataset's train split are standardised and fed to a multinomial
logistic regression (scikit-learn, lbfgs); the accuracy on the test split is
reported for each backbone, by default the cross-dataset pretrained one and the
random-init one of the same shape:

    python tools/linear_probe.py --dataset mnist --data-root data
        # vit_small28_fmnist (pretrained on Fashion-MNIST) vs vit_small28_random
    python tools/linear_probe.py --dataset fashion_mnist --data-root data
        # vit_small28_mnist (pretrained on MNIST) vs vit_small28_random

Inputs are ``ToTensor()`` images ([0, 1]), as the backbones expect. Data loading
is shared with ``pretrain_vit_small28.py`` (torchvision, download=False).

Recorded with the shipped weights (full 60k train split, 10k test, C=1, 1 thread,
``--backbones <pretrained> vit_small28_random pixels``; raw pixels as reference)::

    eval dataset   backbone                  probe test acc
    mnist          vit_small28_fmnist        0.8217
    mnist          vit_small28_random        0.7776   (seed 0)
    mnist          pixels (784-d)            0.9217
    fashion_mnist  vit_small28_mnist         0.8144
    fashion_mnist  vit_small28_random        0.7829   (seed 0)
    fashion_mnist  pixels (784-d)            0.8351

Wall times: 146 s (mnist), 235 s (fashion_mnist). With weights pretrained with a
plain linear head instead of the MLP projector the pretrained features did not
beat random init (mnist 0.7653 vs 0.7776, fashion_mnist 0.7831 vs 0.7829).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pretrain_vit_small28 import DATASETS, load_split  # noqa: E402

DEFAULT_BACKBONES = {
    "mnist": ["vit_small28_fmnist", "vit_small28_random"],
    "fashion_mnist": ["vit_small28_mnist", "vit_small28_random"],
}


@torch.no_grad()
def extract_features(model: torch.nn.Module, x: torch.Tensor, batch_size: int = 1000) -> np.ndarray:
    model.eval()
    return torch.cat([model(x[i:i + batch_size]) for i in range(0, len(x), batch_size)]).numpy()


def probe(train_feats, y_train, test_feats, y_test, C: float = 1.0, max_iter: int = 1000, seed: int = 0,
          threads: int = 1) -> float:
    """Standardise features, fit a multinomial logistic regression, return test accuracy."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler
    from threadpoolctl import threadpool_limits

    # BLAS threads beyond the free cores make lbfgs crawl on a shared machine.
    with threadpool_limits(limits=threads):
        scaler = StandardScaler().fit(train_feats)
        clf = LogisticRegression(C=C, max_iter=max_iter, random_state=seed)
        clf.fit(scaler.transform(train_feats), y_train)
        return float(clf.score(scaler.transform(test_feats), y_test))


def main(argv=None):
    ap = argparse.ArgumentParser(description="Linear probe of frozen vit_small28 backbones")
    ap.add_argument("--dataset", choices=DATASETS, required=True, help="evaluation dataset")
    ap.add_argument("--data-root", default="data")
    ap.add_argument("--backbones", nargs="+", default=None,
                    help="registered backbone names, or 'pixels' (raw-pixel baseline)")
    ap.add_argument("--weights-dir", default=None,
                    help="load pretrained vit_small28 weights from this folder instead of the shipped ones")
    ap.add_argument("--max-train-samples", type=int, default=None)
    ap.add_argument("--C", type=float, default=1.0)
    ap.add_argument("--max-iter", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0, help="seed of the random-init backbone and the subset")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)

    from avalanche_litelora.backbones import create_backbone
    from avalanche_litelora.backbones.vit_small28 import WEIGHT_FILES

    torch.set_num_threads(args.threads)
    x_train, y_train = load_split(args.dataset, args.data_root, train=True)
    x_test, y_test = load_split(args.dataset, args.data_root, train=False)
    if args.max_train_samples:
        sub = torch.randperm(len(x_train), generator=torch.Generator().manual_seed(args.seed))[:args.max_train_samples]
        x_train, y_train = x_train[sub], y_train[sub]
    print(f"[data] {args.dataset}: probe train {len(x_train)}, test {len(x_test)}", flush=True)

    results = {}
    for name in args.backbones or DEFAULT_BACKBONES[args.dataset]:
        t0 = time.perf_counter()
        if name == "pixels":
            f_tr, f_te = x_train.flatten(1).numpy(), x_test.flatten(1).numpy()
        else:
            kwargs = {"num_classes": 0}
            if name == "vit_small28_random":
                kwargs["seed"] = args.seed
            elif args.weights_dir and name in WEIGHT_FILES:
                kwargs["weights"] = Path(args.weights_dir) / WEIGHT_FILES[name]
            model = create_backbone(name, **kwargs)
            f_tr, f_te = extract_features(model, x_train), extract_features(model, x_test)
        t1 = time.perf_counter()
        acc = probe(f_tr, y_train.numpy(), f_te, y_test.numpy(), C=args.C, max_iter=args.max_iter, seed=args.seed,
                    threads=args.threads)
        t2 = time.perf_counter()
        results[name] = acc
        print(f"[probe] {args.dataset} {name:20s} dim={f_tr.shape[1]:4d} test_acc={acc:.4f} "
              f"(features {t1 - t0:.1f}s, fit {t2 - t1:.1f}s)", flush=True)
    return results


if __name__ == "__main__":
    main()
