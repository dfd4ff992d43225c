"""SplitWordNetTopics: a class-incremental text stream of WordNet definitions, offline.

Each WordNet 3.0 synset has a definition (its gloss without the quoted examples) and a
lexicographer file, the topic it was filed under (``noun.animal``, ``noun.food``, ...).
The task is to tell the topic from the definition. By default the classes are the 19
noun topics with at least 1,000 definitions (79,405 definitions); they arrive as
``n_experiences`` experiences of new topics, built with Avalanche's ``nc_benchmark`` as
its classic benchmarks are.

The database comes from Debian's ``wordnet-base`` via
``fetch_dataset("wordnet_topics", root)`` (done here when missing). The train/test split
is fixed: a synset is a test sample when the CRC-32 of ``<pos><offset>`` is divisible by
5 (about 20%), whatever the seed, the topics or the library versions.
"""

from __future__ import annotations

import re
import zlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Union

import torch
from torch.utils.data import TensorDataset

from .fetch import fetch_dataset, raw_dir
from avalanche_litelora.checks import check_count

#: WordNet's lexicographer files, by number (lexnames(5WN)): the topic categories.
LEXNAMES = (
    "adj.all", "adj.pert", "adv.all", "noun.Tops", "noun.act", "noun.animal", "noun.artifact",
    "noun.attribute", "noun.body", "noun.cognition", "noun.communication", "noun.event",
    "noun.feeling", "noun.food", "noun.group", "noun.location", "noun.motive", "noun.object",
    "noun.person", "noun.phenomenon", "noun.plant", "noun.possession", "noun.process",
    "noun.quantity", "noun.relation", "noun.shape", "noun.state", "noun.substance", "noun.time",
    "verb.body", "verb.change", "verb.cognition", "verb.communication", "verb.competition",
    "verb.consumption", "verb.contact", "verb.creation", "verb.emotion", "verb.motion",
    "verb.perception", "verb.possession", "verb.social", "verb.stative", "verb.weather", "adj.ppl",
)
PARTS_OF_SPEECH = {"noun": "data.noun", "verb": "data.verb", "adj": "data.adj", "adv": "data.adv"}
#: Where a gloss's quoted examples start (``; "..."``, a few times ``: "..."``).
_EXAMPLES = re.compile(r'[;:] "')
#: One test sample in this many (by CRC-32 of the synset's id).
TEST_MODULUS = 5


@dataclass(frozen=True)
class Definition:
    synset: str  # "<pos letter><offset>", e.g. "n00001740"
    topic: str  # lexicographer file name, e.g. "noun.Tops"
    text: str


@dataclass
class WordNetTopics:
    """The definitions of the chosen topics, split; labels index :attr:`topics`."""

    topics: List[str]
    train_texts: List[str]
    train_labels: List[int]
    test_texts: List[str]
    test_labels: List[int]


def parse_data_file(path: Union[str, Path]) -> List[Definition]:
    """Every synset of one WordNet ``data.<pos>`` file (the licence header is skipped)."""
    definitions = []
    with open(path, encoding="utf-8", errors="replace") as handle:
        for number, line in enumerate(handle, 1):
            if line.startswith("  ") or not line.strip():
                continue
            head, sep, gloss = line.partition(" | ")
            fields = head.split()
            if not sep or len(fields) < 3 or not fields[1].isdigit() or int(fields[1]) >= len(LEXNAMES):
                raise ValueError(f"{path}:{number}: not a WordNet synset line")
            text = _EXAMPLES.split(gloss, 1)[0].strip()  # the definition, without examples
            definitions.append(Definition(fields[2][0] + fields[0], LEXNAMES[int(fields[1])], text))
    return definitions


def is_test_synset(synset: str) -> bool:
    """The fixed split: about one synset in :data:`TEST_MODULUS` is a test sample."""
    return zlib.crc32(synset.encode("ascii")) % TEST_MODULUS == 0


def load_wordnet_topics(
    dataset_root: Union[str, Path],
    *,
    min_definitions: int = 1000,
    parts_of_speech: Sequence[str] = ("noun",),
    fetch: bool = True,
) -> WordNetTopics:
    """Definitions of the topics with at least ``min_definitions`` of them, split train/test.

    Topics are ordered by lexicographer file number; ``fetch`` fills ``dataset_root``
    from Debian's ``wordnet-base`` when the files are missing or damaged.
    """
    check_count("min_definitions", min_definitions)
    if isinstance(parts_of_speech, str):
        parts_of_speech = [parts_of_speech]
    unknown = [p for p in parts_of_speech if p not in PARTS_OF_SPEECH]
    if unknown or not parts_of_speech:
        raise ValueError(f"parts_of_speech must be a non-empty subset of {sorted(PARTS_OF_SPEECH)}, "
                         f"got {list(parts_of_speech)!r}")
    if fetch:
        fetch_dataset("wordnet_topics", dataset_root)
    folder = raw_dir("wordnet_topics", dataset_root)
    definitions = [d for pos in parts_of_speech for d in parse_data_file(folder / PARTS_OF_SPEECH[pos])]
    counts = Counter(d.topic for d in definitions)
    topics = [name for name in LEXNAMES if counts[name] >= min_definitions]
    if len(topics) < 2:
        raise ValueError(f"only {len(topics)} topic(s) have at least {min_definitions} definitions; "
                         "lower min_definitions")
    index = {name: i for i, name in enumerate(topics)}
    data = WordNetTopics(topics, [], [], [], [])
    for d in definitions:
        if d.topic in index:
            side = "test" if is_test_synset(d.synset) else "train"
            getattr(data, f"{side}_texts").append(d.text)
            getattr(data, f"{side}_labels").append(index[d.topic])
    return data


def _dataset(tokens: torch.Tensor, labels: List[int]) -> TensorDataset:
    dataset = TensorDataset(tokens, torch.tensor(labels, dtype=torch.long))
    dataset.targets = list(labels)  # what Avalanche's generators read the classes from
    return dataset


def _per_experience_classes(n_classes: int, n_experiences: int) -> Dict[int, int]:
    """Unequal splits for nc_benchmark: the first experiences take one class more."""
    base, extra = divmod(n_classes, n_experiences)
    return {i: base + 1 for i in range(extra)}


def SplitWordNetTopics(  # noqa: N802 - named like Avalanche's classic benchmarks
    n_experiences: int = 5,
    *,
    return_task_id: bool = False,
    seed: Optional[int] = None,
    fixed_class_order: Optional[Sequence[int]] = None,
    shuffle: bool = True,
    class_ids_from_zero_in_each_exp: bool = False,
    dataset_root: Union[str, Path] = "data",
    tokenizer=None,
    max_length: int = 32,
    min_definitions: int = 1000,
):
    """Class-incremental WordNet topics (see the module docstring), as an Avalanche ``NCScenario``.

    Samples are ``(tokens, topic)`` with ``tokens`` a ``(2, max_length)`` LongTensor of ids
    and attention mask, for :mod:`avalanche_litelora.backbones.text`. ``tokenizer`` is a
    Hugging Face tokenizer (default: all-MiniLM-L6-v2's, from the ``text`` extra). When the
    topics do not divide evenly, the first experiences get one topic more (19 topics in 5
    experiences: 4, 4, 4, 4, 3). ``seed`` shuffles the topic order, as in ``SplitMNIST``.
    """
    from avalanche.benchmarks.scenarios.deprecated.generators import nc_benchmark

    from avalanche_litelora.backbones.text import load_tokenizer, tokenize

    check_count("n_experiences", n_experiences)
    check_count("max_length", max_length, 2)
    data = load_wordnet_topics(dataset_root, min_definitions=min_definitions)
    n_classes = len(data.topics)
    if n_experiences > n_classes:
        raise ValueError(f"n_experiences must be at most {n_classes} (the topics), got {n_experiences}")
    tokenizer = tokenizer if tokenizer is not None else load_tokenizer()
    train = _dataset(tokenize(tokenizer, data.train_texts, max_length), data.train_labels)
    test = _dataset(tokenize(tokenizer, data.test_texts, max_length), data.test_labels)
    benchmark = nc_benchmark(
        train, test, n_experiences=n_experiences, task_labels=return_task_id, shuffle=shuffle,
        seed=seed, fixed_class_order=fixed_class_order,
        per_exp_classes=_per_experience_classes(n_classes, n_experiences) or None,
        class_ids_from_zero_in_each_exp=class_ids_from_zero_in_each_exp,
    )
    benchmark.topics = list(data.topics)  # class id -> lexicographer file name
    return benchmark
