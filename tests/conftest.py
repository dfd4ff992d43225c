"""Shared fixtures; the builders themselves live in builders.py (on pytest's pythonpath)."""

from __future__ import annotations

import os
import tempfile

# `import avalanche` writes ~/.avalanche/config.json: give it a writable HOME if needed.
if not os.access(os.path.expanduser("~"), os.W_OK):
    os.environ["HOME"] = tempfile.mkdtemp(prefix="home-")

import pytest
import torch

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
