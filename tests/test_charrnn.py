"""The charrnn plugin: vocabulary, splits, stateful batches, models, references, sampling, bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from orch_charrnn import data, reference
from orch_charrnn.model import sample
from orch_charrnn.model import build
from orch_charrnn.params import CharRNNParams
from orch_charrnn.train import evaluate, fit
from orchestrator.errors import UserError

TEXT = "To be, or not to be: that is the question.\n" * 40


def small(**kw) -> CharRNNParams:
    return CharRNNParams(n_fac=8, n_hidden=16, n_layers=2, bs=4, bptt=8, **kw)


def test_vocabulary_is_sorted_with_padding_at_zero():
    vocab = data.Vocab.build("banana\n")
    assert vocab.chars == ("\x00", "\n", "a", "b", "n")
    ids = vocab.encode("banana")
    assert ids.tolist() == [3, 2, 4, 2, 4, 2] and 0 not in ids
    assert vocab.decode(ids) == "banana"


def test_vocabulary_round_trips_through_its_file(tmp_path):
    vocab = data.Vocab.build("héllo wörld")
    vocab.save(tmp_path / "vocab.json")
    assert data.Vocab.load(tmp_path / "vocab.json") == vocab


def test_unknown_characters_are_named():
    with pytest.raises(UserError, match="characters not in the vocabulary: 'xz'"):
        data.Vocab.build("abc").encode("axz")


def test_validation_is_the_tail_and_train_dev_random_blocks():
    ids = np.arange(10_000)
    parts = data.split(ids, valid_pct=0.1, train_dev_pct=0.1, block=500, seed=0)
    assert parts["val"].tolist() == list(range(9000, 10_000))
    assert len(parts["train_dev"]) == 1000 and len(parts["train"]) == 8000
    assert sorted(np.concatenate([parts["train"], parts["train_dev"]]).tolist()) == list(range(9000))
    assert parts["train_dev"].min() < 8000  # drawn from the whole head, not only its end
    again = data.split(ids, 0.1, 0.1, 500, seed=0)
    assert (again["train_dev"] == parts["train_dev"]).all()


def test_each_batch_continues_the_previous_one():
    ids = np.arange(1, 1001)
    batches = list(data.stream_batches(ids, bs=4, bptt=10))
    for (x0, y0), (x1, _) in zip(batches, batches[1:]):
        assert (x1[:, 0] == y0[:, -1]).all()  # row j picks up where row j stopped
        assert (x0[:, 1:] == y0[:, :-1]).all()  # y is x shifted by one
    assert len(batches) == data.n_batches(len(ids), 4, 10)


def test_text_shorter_than_a_batch_is_refused():
    with pytest.raises(UserError, match="text too short"):
        list(data.stream_batches(np.arange(5), bs=4, bptt=10))


@pytest.mark.parametrize("arch", ["char3", "charloop", "rnn", "stateful", "lstm", "gru"])
def test_every_architecture_predicts_every_step(arch):
    model = build(arch, 11, small())
    x = torch.randint(1, 11, (4, 8))
    logits, state = model(x, None)
    assert logits.shape == (4, 8, 11)
    logits2, _ = model(torch.randint(1, 11, (4, 8)), state)
    assert logits2.shape == (4, 8, 11)


@pytest.mark.parametrize("arch", ["stateful", "lstm", "gru"])
def test_hidden_state_is_carried_and_detached(arch):
    model = build(arch, 11, small())
    _, state = model(torch.randint(1, 11, (4, 8)), None)
    tensors = state if isinstance(state, tuple) else (state,)
    assert all(not t.requires_grad and t.grad_fn is None for t in tensors)
    assert any(t.abs().sum() > 0 for t in tensors)
    assert model.carries_state


def test_plain_rnn_restarts_every_block_from_the_context_characters_but_stateful_keeps_history():
    torch.manual_seed(0)
    a = torch.randint(1, 11, (2, 30))
    rnn = build("rnn", 11, small()).eval()
    k = rnn.window
    _, state = rnn(a[:, :20], None)
    assert torch.equal(state, a[:, 20 - k:20])
    second, _ = rnn(a[:, 20:], state)
    alone, _ = rnn(a[:, 20 - k:], None)  # only the k characters before the block matter
    assert torch.allclose(second, alone[:, k:], atol=1e-6)

    stateful = build("stateful", 11, small()).eval()
    _, h = stateful(a[:, :20], None)
    second, _ = stateful(a[:, 20:], h)
    alone, _ = stateful(a[:, 20 - k:], None)
    assert not torch.allclose(second, alone[:, k:], atol=1e-4)


def test_window_models_use_the_previous_block_as_context():
    model = build("char3", 11, small())
    a = torch.tensor([[1, 2, 3, 4, 5, 6]])
    full, _ = model(a, None)
    _, state = model(a[:, :3], None)
    second, _ = model(a[:, 3:], state)
    assert torch.allclose(full[:, 3:], second, atol=1e-6)


def test_training_beats_the_unigram_model():
    vocab = data.Vocab.build(TEXT)
    ids = vocab.encode(TEXT)
    torch.manual_seed(0)
    model = build("lstm", len(vocab), small())
    seen = []
    fit(model, ids, ids, epochs=8, bs=4, bptt=16, lr=1e-2, clip=1.0, device="cpu",
        on_epoch=lambda e, m: seen.append(m))
    nll, acc = evaluate(model, ids, 4, 16, "cpu")
    assert nll / math.log(2) < reference.unigram_bpc(ids, ids, len(vocab)) - 1.0
    assert seen[-1]["val_bpc"] < seen[0]["val_bpc"] and acc > 0.5


def test_reference_models_and_compressors():
    vocab = data.Vocab.build(TEXT)
    ids = vocab.encode(TEXT)
    uni, bi = reference.unigram_bpc(ids, ids, len(vocab)), reference.bigram_bpc(ids, ids, len(vocab))
    assert bi < uni < math.log2(len(vocab))
    refs = reference.compressor_bpc(TEXT)
    assert refs["xz"] < 1.0 and refs["bz2"] < 1.0  # the text repeats itself: both find it
    random_text = "".join(np.random.default_rng(0).choice(list("abcdefgh"), 5000))
    assert 2.5 < reference.compressor_bpc(random_text)["bz2"] < 4.5  # about log2(8) = 3 bits


def test_sampling_is_deterministic_for_a_seed_and_respects_top_k():
    vocab = data.Vocab.build(TEXT)
    model = build("lstm", len(vocab), small())
    a = sample(model, vocab, "To be", 50, 0.8, seed=1)
    assert a == sample(model, vocab, "To be", 50, 0.8, seed=1)
    assert a != sample(model, vocab, "To be", 50, 0.8, seed=2)
    assert a.startswith("To be") and len(a) == 55 and "\x00" not in a
    greedy = sample(model, vocab, "To", 20, 1.0, top_k=1, seed=3)
    assert greedy == sample(model, vocab, "To", 20, 1.0, top_k=1, seed=4)  # top-1 is argmax


def test_prompt_outside_the_vocabulary_is_an_error():
    vocab = data.Vocab.build(TEXT)
    with pytest.raises(UserError, match="--prompt: characters not in the model's vocabulary: 'Z~'"):
        sample(build("lstm", len(vocab), small()), vocab, "Z~", 5)


def test_bad_text_files(tmp_path):
    (tmp_path / "empty.txt").write_text("  \n")
    with pytest.raises(UserError, match="empty.txt: the file is empty"):
        data.read_text(str(tmp_path / "empty.txt"))
    (tmp_path / "latin.txt").write_bytes("caf\xe9".encode("latin-1"))
    with pytest.raises(UserError, match=r"latin.txt: not UTF-8 text \(bad byte at offset 3\)"):
        data.read_text(str(tmp_path / "latin.txt"))
    with pytest.raises(UserError, match="missing.txt: text file not found"):
        data.read_text(str(tmp_path / "missing.txt"))
    with pytest.raises(UserError, match=r"is a folder; charrnn.data takes one UTF-8 text file"):
        data.read_text(str(tmp_path))


def test_a_text_too_short_for_its_blocks_names_the_file_and_charrnn_block():
    with pytest.raises(UserError, match=r"^play.txt: too short: 3 characters make 1 block\(s\) of charrnn.block=100"):
        data.split(np.arange(3), 0.1, 0.1, block=100, seed=0, source="play.txt")


def test_embedded_corpus():
    text, name = data.read_text("embedded", max_chars=None)
    assert len(text) == 5_057_321 and "Shakespeare" in name
    assert "HAMLET" in text and "To be, or not to be" in text
