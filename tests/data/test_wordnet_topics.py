"""SplitWordNetTopics on the real WordNet 3.0 database (fetched offline from Debian's wordnet-base)."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader

from avalanche_litelora.data import SplitWordNetTopics, load_wordnet_topics
from avalanche_litelora.data.__main__ import main as cli_main
from avalanche_litelora.data.wordnet_topics import (
    LEXNAMES, TEST_MODULUS, is_test_synset, parse_data_file,
)

pytestmark = pytest.mark.slow  # builds the WordNet topic stream and its tokenizer

NOUN_TOPICS_1000 = [  # noun lexicographer files with at least 1,000 synsets, by file number
    "noun.act", "noun.animal", "noun.artifact", "noun.attribute", "noun.body", "noun.cognition",
    "noun.communication", "noun.event", "noun.food", "noun.group", "noun.location", "noun.object",
    "noun.person", "noun.plant", "noun.possession", "noun.quantity", "noun.state", "noun.substance",
    "noun.time",
]


class SpaceTokenizer:
    """A stand-in with the Hugging Face call signature: one id per distinct word, [CLS]=1, pad 0."""

    def __init__(self):
        self.vocab = {}

    def __call__(self, texts, padding, truncation, max_length, return_tensors):
        assert padding == "max_length" and truncation and return_tensors == "pt"
        ids = torch.zeros(len(texts), max_length, dtype=torch.long)
        for row, text in enumerate(texts):
            words = [1] + [self.vocab.setdefault(w, len(self.vocab) + 2) for w in text.split()]
            ids[row, : min(len(words), max_length)] = torch.tensor(words[:max_length])
        return {"input_ids": ids, "attention_mask": (ids != 0).long()}


@pytest.fixture(scope="module")
def root(fetched):
    return fetched("wordnet_topics")[0]


@pytest.fixture(scope="module")
def topics(root):
    return load_wordnet_topics(root)


def test_noun_topics_counts_and_fixed_split(topics, root):
    assert topics.topics == NOUN_TOPICS_1000
    assert len(topics.train_texts) + len(topics.test_texts) == 79405
    assert len(topics.test_texts) == 15825  # one synset in TEST_MODULUS by CRC-32, whatever the seed
    assert set(topics.train_labels) == set(topics.test_labels) == set(range(19))
    assert topics.train_texts[0] == "an action"
    assert not any('; "' in t or ': "' in t for t in topics.train_texts + topics.test_texts)  # examples cut
    everything = load_wordnet_topics(root, min_definitions=1, parts_of_speech=["noun", "verb", "adj", "adv"],
                                     fetch=False)
    assert len(everything.topics) == len(LEXNAMES) == 45
    assert len(everything.train_texts) + len(everything.test_texts) == 117659


def test_split_rule_is_a_pure_function_of_the_synset():
    assert [is_test_synset(f"n{i:08d}") for i in range(5)] == [is_test_synset(f"n{i:08d}") for i in range(5)]
    share = sum(is_test_synset(f"n{i:08d}") for i in range(20000)) / 20000
    assert abs(share - 1 / TEST_MODULUS) < 0.01


def test_parser_keeps_the_definition_and_refuses_other_lines(tmp_path):
    good = tmp_path / "data.noun"
    good.write_text("  1 This software and database is being provided\n"
                    '00001740 03 n 01 entity 0 000 | that which exists; "an entity of its own"  \n'
                    '00001741 04 n 01 swap 0 000 | a change (the phrase "swap out"): "a fair swap"\n')
    first, second = parse_data_file(good)
    assert (first.synset, first.topic, first.text) == ("n00001740", "noun.Tops", "that which exists")
    assert (second.topic, second.text) == ("noun.act", 'a change (the phrase "swap out")')
    bad = tmp_path / "bad.noun"
    bad.write_text("00001740 99 n 01 entity 0 000 | out of range topic\n")
    with pytest.raises(ValueError, match="bad.noun:1"):
        parse_data_file(bad)


def seeded_order(seed: int, sizes) -> list:
    """The topic order Avalanche's nc_benchmark draws for ``seed`` (global torch generator), cut by ``sizes``."""
    torch.manual_seed(seed)
    order, out = torch.randperm(19).tolist(), []
    for size in sizes:
        out.append(sorted(order[:size]))
        order = order[size:]
    return out


@pytest.fixture(scope="module")
def stream(root):
    return SplitWordNetTopics(5, seed=1993, dataset_root=root, max_length=16)  # all-MiniLM's tokenizer


def test_stream_is_class_incremental_over_topics_with_token_samples(stream):
    classes = [sorted(exp.classes_in_this_experience) for exp in stream.train_stream]
    assert classes == seeded_order(1993, [4, 4, 4, 4, 3])  # 19 topics, the first ones one more
    assert sum(len(exp.dataset) for exp in stream.test_stream) == 15825
    assert sum(len(exp.dataset) for exp in stream.train_stream) == 63580
    assert stream.topics == NOUN_TOPICS_1000
    x, y, t = next(iter(DataLoader(stream.train_stream[0].dataset, batch_size=8)))
    assert x.shape == (8, 2, 16) and x.dtype == torch.long
    assert set(y.tolist()) <= set(classes[0]) and t.tolist() == [0] * 8
    assert torch.all(x[:, 0, 0] == 101) and torch.all(x[:, 1, 0] == 1)  # [CLS] opens every sample


def test_seed_and_tokenizer_are_the_callers(root):
    bench = SplitWordNetTopics(4, seed=7, dataset_root=root, tokenizer=SpaceTokenizer(), max_length=8)
    assert [sorted(exp.classes_in_this_experience) for exp in bench.train_stream] == seeded_order(7, [5, 5, 5, 4])
    x, *_ = bench.train_stream[0].dataset[0]
    assert x.shape == (2, 8) and int(x[0, 0]) == 1  # SpaceTokenizer's own [CLS] id


@pytest.mark.parametrize("kwargs, match", [
    ({"n_experiences": 0}, "n_experiences"), ({"n_experiences": 20}, "n_experiences"),
    ({"n_experiences": True}, "n_experiences"), ({"min_definitions": 0}, "min_definitions"),
    ({"min_definitions": 10**6}, "lower min_definitions"), ({"max_length": 1}, "max_length"),
])
def test_bad_arguments_are_refused_by_name(root, kwargs, match):
    with pytest.raises(ValueError, match=match):
        SplitWordNetTopics(dataset_root=root, tokenizer=SpaceTokenizer(), **kwargs)


def test_cli_fetches_wordnet(root, capsys):
    assert cli_main(["fetch", "--root", str(root), "--dataset", "wordnet_topics"]) == 0
    assert f"wordnet_topics: source=present -> {root / 'WordNetTopics' / 'raw'}" in capsys.readouterr().out
