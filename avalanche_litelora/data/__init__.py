"""Offline-capable dataset fetching for Avalanche's classic MNIST / Fashion-MNIST benchmarks.

``fetch_dataset("mnist", root)`` then ``SplitMNIST(..., dataset_root=root)``;
CLI: ``python -m avalanche_litelora.data fetch --root DIR [--dataset mnist|fashion_mnist|all]``.
"""

from .fetch import DatasetUnavailableError, FetchResult, fetch_dataset, verify_dataset

__all__ = ["DatasetUnavailableError", "FetchResult", "fetch_dataset", "verify_dataset"]
