"""DomainNet from its official folder and split files, in two forms.

* :func:`DomainNet`: domain-incremental, one experience per domain, all 345 classes in each
  (Avalanche's PermutedMNIST pattern: one dataset per experience, task label = domain index
  with ``return_task_id``);
* :func:`SplitDomainNet`: class-incremental over the chosen domains pooled (CODA-Prompt's
  DomainNet: 345 classes, 5 x 69).

Layout under ``dataset_root`` (each domain's zip unpacks to ``<domain>/``)::

    domainnet/<domain>/<class>/*.jpg
    domainnet/<domain>_train.txt, domainnet/<domain>_test.txt   lines "<domain>/<class>/<file> <label>"
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, List, Optional, Sequence, Tuple, Union

import numpy as np
from avalanche.benchmarks import nc_benchmark

from avalanche_litelora.checks import check_count

from ._folders import SPLIT_KEYWORDS, PaperDatasetError, class_incremental
from ._folders import dataset_root_or_default, paths_dataset, split_builder

DOMAINS = ("clipart", "infograph", "painting", "quickdraw", "real", "sketch")
N_CLASSES = 345
SOURCE = ("http://ai.bu.edu/M3SDA/ (DomainNet, Peng et al. 2019): the six domain zips and the "
          "<domain>_train.txt / <domain>_test.txt split files; unpack into dataset_root/domainnet")
LAYOUT = ("  domainnet/<domain>/<class>/*.jpg for each domain\n"
          "  domainnet/<domain>_train.txt and domainnet/<domain>_test.txt\n"
          f"  domains: {', '.join(DOMAINS)}")

def _missing(problem: str) -> PaperDatasetError:
    """DomainNet's error: the builders have no ``download`` (the split files are published apart)."""
    return PaperDatasetError("DomainNet", problem, LAYOUT, SOURCE, downloadable=False)


def _read_split(base: Path, domain: str, part: str) -> List[Tuple[str, int]]:
    """One official split file as (path relative to the dataset root's parent, label)."""
    path = base / f"{domain}_{part}.txt"
    if not path.is_file():
        raise _missing(f"no split file {path}")
    rows: List[Tuple[str, int]] = []
    with open(path) as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            parts = line.split()
            if len(parts) != 2 or not parts[1].lstrip("-").isdigit() or not 0 <= int(parts[1]) < N_CLASSES:
                raise _missing(f"{path}:{number} is not '<path> <label 0..344>'")
            rows.append((f"{base.name}/{parts[0]}", int(parts[1])))
    if not rows:
        raise _missing(f"{path} lists no images")
    return rows


def read_domain(dataset_root: Path, domain: str) -> Tuple[List[Tuple[str, int]], List[Tuple[str, int]]]:
    """(train, test) of one domain; every listed image must exist and all 345 classes appear."""
    if domain not in DOMAINS:
        raise ValueError(f"unknown DomainNet domain {domain!r}; choose from {DOMAINS}")
    base = dataset_root / "domainnet"
    if not (base / domain).is_dir():
        raise _missing(f"no folder {base / domain}")
    train, test = _read_split(base, domain, "train"), _read_split(base, domain, "test")
    for rel, _ in train + test:
        if not (dataset_root / rel).is_file():
            raise _missing(f"{dataset_root / rel} is listed but missing")
    labels = {label for _, label in train}
    if len(labels) != N_CLASSES:
        raise _missing(f"{domain}_train.txt covers {len(labels)} of the {N_CLASSES} classes")
    return train, test


def _check_domains(domains: Sequence[str]) -> List[str]:
    domains = list(domains)
    if not domains or len(set(domains)) != len(domains) or any(d not in DOMAINS for d in domains):
        raise ValueError(f"domains must be distinct names from {DOMAINS}, got {domains!r}")
    return domains


def DomainNet(
    *,
    domains: Sequence[str] = DOMAINS,
    return_task_id: bool = False,
    seed: Optional[int] = None,
    train_transform: Optional[Any] = SPLIT_KEYWORDS["train_transform"],
    eval_transform: Optional[Any] = SPLIT_KEYWORDS["eval_transform"],
    dataset_root: Optional[Union[str, Path]] = None,
):
    """Domain-incremental DomainNet: one experience per domain, in ``domains`` order, or
    shuffled by ``seed`` (NumPy's legacy generator) when it is given."""
    domains = _check_domains(domains)
    if seed is not None:
        check_count("seed", seed, 0)
        domains = [domains[i] for i in np.random.RandomState(seed).permutation(len(domains))]
    root = dataset_root_or_default(dataset_root)
    splits = [read_domain(root, d) for d in domains]
    benchmark = nc_benchmark(
        [paths_dataset(root, train) for train, _ in splits],
        [paths_dataset(root, test) for _, test in splits],
        n_experiences=len(domains),
        task_labels=return_task_id,
        shuffle=False,
        class_ids_from_zero_in_each_exp=True,  # identity: every domain holds all 345 classes
        one_dataset_per_exp=True,
        train_transform=train_transform,
        eval_transform=eval_transform,
    )
    benchmark.domains = domains
    return benchmark


@split_builder(n_experiences=5)
def SplitDomainNet(n_experiences: int, root: Path, *, domains: Sequence[str] = DOMAINS, **split):
    """Class-incremental DomainNet: the chosen domains pooled, 345 classes in ``n_experiences``."""
    train: List[Tuple[str, int]] = []
    test: List[Tuple[str, int]] = []
    for domain in _check_domains(domains):
        domain_train, domain_test = read_domain(root, domain)
        train += domain_train
        test += domain_test
    return class_incremental(paths_dataset(root, train), paths_dataset(root, test),
                             n_experiences=n_experiences, n_classes=N_CLASSES, **split)
