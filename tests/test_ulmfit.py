"""The ulmfit plugin: text fix-up and special tokens, vocabulary, the variable-BPTT loader, AWD-LSTM
parts (locked dropout, weight drop, tied weights, concat pooling), the vocabulary conversion, STLR and
gradual unfreezing, loaders and bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from orch_ulmfit import data, text
from orch_ulmfit.model import (PAD_ID, Classifier, EmbeddingDropout, LanguageModel, LockedDropout, WeightDrop,
                               convert_embeddings, load_encoder, masked_concat_pool)
from orch_ulmfit.train import LMLoader, discriminative_groups, stlr, unfreezing_schedule
from orchestrator.errors import UserError


# --- text pipeline -----------------------------------------------------------------------------

def test_fixup_undoes_html_artefacts():
    assert text.fixup("Great film.<br /><br />Loved it &amp; more #39;s") == "Great film.\n\nLoved it & more 's"
    assert text.fixup("a  &quot;b&quot;") == 'a "b"'


def test_special_tokens_for_case_repetition_and_fields():
    [doc] = text.tokenize_docs([["WOW this is Great!!!!!"]])
    assert doc[0] == text.BOS
    assert doc[1:3] == [text.UP, "wow"]
    assert [text.MAJ, "great"] == doc[doc.index("great") - 1:doc.index("great") + 1]
    i = doc.index(text.REP)
    assert doc[i:i + 3] == [text.REP, "5", "!"]
    [words] = text.tokenize_docs([["so so so so good"]])
    assert words[1:4] == [text.WREP, "4", "so"]
    docs = text.tokenize_docs([["A title", "The body"], ["x", "y"]])
    assert docs[0][:3] == [text.BOS, text.FLD, "1"] and [text.FLD, "2"] == docs[0][6:8]


def test_parallel_tokenization_keeps_order_and_matches_one_process():
    docs = [[f"Review number {i}: it was FINE."] for i in range(300)]
    assert text.tokenize(docs, processes=2, chunk=50) == text.tokenize(docs, processes=1)


def test_vocabulary_limits_and_specials_first():
    docs = [["a", "b", "b", "c", "c", "c", "d"]]
    v = text.Vocab.build(docs, max_size=len(text.SPECIAL) + 2, min_freq=1)
    assert v.itos[:2] == ("xxunk", "xxpad") and v.itos[len(text.SPECIAL):] == ("c", "b")
    v2 = text.Vocab.build(docs, max_size=100, min_freq=2)
    assert set(v2.itos[len(text.SPECIAL):]) == {"b", "c"}
    assert v2.numericalize(["c", "zzz"]).tolist() == [v2.stoi["c"], 0]  # unknown -> xxunk (0)


def test_vocab_file_round_trip_and_bad_file(tmp_path):
    v = text.Vocab.build([["hello", "hello", "world", "world"]], 100, 1)
    v.save(tmp_path / "vocab.txt")
    assert text.Vocab.load(tmp_path / "vocab.txt") == v
    (tmp_path / "bad.txt").write_text("just\nwords\n")
    with pytest.raises(UserError, match="bad.txt: not a vocabulary file"):
        text.Vocab.load(tmp_path / "bad.txt")


def test_ids_round_trip(tmp_path):
    docs = [np.array([1, 2, 3], np.int32), np.array([], np.int32), np.array([7], np.int32)]
    text.save_ids(docs, tmp_path / "x.npz")
    assert [d.tolist() for d in text.load_ids(tmp_path / "x.npz")] == [[1, 2, 3], [], [7]]


# --- the LM loader -----------------------------------------------------------------------------

def test_lm_loader_streams_continue_across_batches_with_variable_lengths():
    ids = np.arange(10_000)
    loader = LMLoader(ids, bs=4, bptt=20, seed=0)
    batches = list(loader)
    lengths = [x.shape[1] for x, _ in batches]
    assert len(set(lengths)) > 3 and min(lengths) >= 5
    assert abs(np.mean(lengths) - 20) < 3  # mostly bptt, sometimes bptt / 2
    for (x0, y0), (x1, _) in zip(batches, batches[1:]):
        assert (x1[:, 0] == y0[:, -1]).all()  # each row picks up where it stopped
        assert (y0[:, :-1] == x0[:, 1:]).all()
    covered = sum(lengths)
    assert covered == loader.n - 1


# --- AWD-LSTM parts ----------------------------------------------------------------------------

def test_locked_dropout_uses_one_mask_across_time():
    torch.manual_seed(0)
    drop = LockedDropout(0.5).train()
    out = drop(torch.ones(3, 10, 8))
    assert ((out == 0) | (out == 2)).all()
    assert (out == out[:, :1]).all()  # the same mask at every step
    assert not (out[0] == out[1]).all()  # a different one per sequence
    assert torch.equal(drop.eval()(torch.ones(3, 10, 8)), torch.ones(3, 10, 8))


def test_embedding_dropout_drops_whole_words():
    torch.manual_seed(0)
    emb = torch.nn.Embedding(50, 4)
    drop = EmbeddingDropout(0.5).train()
    out = drop(emb, torch.tensor([[3, 3, 3, 7, 7]]))
    zero = (out == 0).all(-1)[0]
    assert zero[0] == zero[1] == zero[2] and zero[3] == zero[4]  # a word is dropped everywhere or nowhere


def test_weight_drop_masks_the_hidden_matrix_and_keeps_the_raw_weights():
    torch.manual_seed(0)
    lstm = torch.nn.LSTM(4, 6, batch_first=True)
    wd = WeightDrop(lstm, 0.5).train()
    before = lstm.weight_hh_l0.detach().clone()
    x = torch.randn(2, 5, 4)
    a, _ = wd(x)
    b, _ = wd(x)
    assert not torch.allclose(a, b)  # a new mask every forward pass
    assert torch.equal(lstm.weight_hh_l0, before)  # the parameter itself is never overwritten
    a.sum().backward()
    assert lstm.weight_hh_l0.grad is not None and (lstm.weight_hh_l0.grad == 0).any()  # dropped entries get none
    wd.eval()
    assert torch.allclose(wd(x)[0], lstm(x)[0])


def test_language_model_ties_encoder_and_decoder():
    lm = LanguageModel(30, 8, 16, 2)
    assert lm.decoder.decoder.weight is lm.encoder.encoder.weight
    assert [k for k, v in lm.state_dict().items() if v.shape == (30, 8)] == ["encoder.encoder.weight",
                                                                             "decoder.decoder.weight"]
    assert lm(torch.randint(0, 30, (2, 7))).shape == (2, 7, 30)
    ids = {id(p) for g in discriminative_groups(lm.layer_groups(), 1e-3) for p in g["params"]}
    assert len(ids) == len(list(lm.parameters()))  # the tied matrix is in exactly one group


def test_lm_is_stateful_across_batches():
    torch.manual_seed(0)
    lm = LanguageModel(30, 8, 16, 2).eval()
    x = torch.randint(2, 30, (2, 6))
    first = lm(x)
    second = lm(x)
    assert not torch.allclose(first, second)  # the second call starts from the first one's state
    lm.reset()
    assert torch.allclose(lm(x), first)


def test_concat_pooling_uses_only_real_steps():
    out = torch.arange(2 * 4 * 3, dtype=torch.float).view(2, 4, 3)
    pooled = masked_concat_pool(out, torch.tensor([4, 2]))
    assert pooled.shape == (2, 9)
    assert pooled[1, :3].tolist() == out[1, 1].tolist()  # last real step of a length-2 document
    assert pooled[1, 3:6].tolist() == out[1, :2].max(0).values.tolist()
    assert pooled[1, 6:].tolist() == out[1, :2].mean(0).tolist()
    clf = Classifier(30, 8, 16, 2, n_classes=3).eval()
    x = torch.full((2, 5), PAD_ID)
    x[0, :5] = 4
    x[1, :2] = 5
    assert clf(x, torch.tensor([5, 2])).shape == (2, 3)


def test_vocabulary_conversion_copies_known_rows_and_uses_the_mean_for_new_words():
    old = torch.tensor([[1.0, 1.0], [2.0, 2.0], [3.0, 6.0]])
    new, found = convert_embeddings(old, ["xxunk", "cat", "dog"], ["xxunk", "dog", "emu"])
    assert found == 2
    assert new[1].tolist() == [3.0, 6.0] and new[2].tolist() == [2.0, 3.0]  # emu = mean row


def test_encoder_mismatch_is_a_clear_error():
    clf = Classifier(30, 8, 16, 2, n_classes=2)
    other = LanguageModel(40, 8, 16, 2)
    with pytest.raises(UserError, match="encoder does not match the model"):
        load_encoder(clf, other.encoder.state_dict(), "finetune/encoder.pt")
    load_encoder(clf, LanguageModel(30, 8, 16, 2).encoder.state_dict())


# --- schedules ---------------------------------------------------------------------------------

def test_slanted_triangular_rates():
    total = 1000
    rates = [stlr(t, total) for t in range(total)]
    peak = int(np.argmax(rates))
    assert peak == 100 and rates[peak] == pytest.approx(1.0)
    assert rates[0] == pytest.approx(1 / 32)
    assert all(a <= b for a, b in zip(rates[:peak], rates[1:peak + 1]))
    assert all(a >= b for a, b in zip(rates[peak:], rates[peak + 1:]))
    assert rates[-1] == pytest.approx(1 / 32, abs=0.01)


def test_discriminative_rates_divide_by_2_6_per_group():
    groups = [[torch.nn.Linear(2, 2)] for _ in range(3)]
    lrs = [g["lr"] for g in discriminative_groups(groups, 1.0)]
    assert lrs == pytest.approx([1 / 2.6 ** 2, 1 / 2.6, 1.0])


def test_gradual_unfreezing_schedule():
    assert unfreezing_schedule(4, gradual=True, final_epochs=2) == [1, 2, 3, 4, 4]
    assert unfreezing_schedule(4, gradual=False, final_epochs=2) == [4, 4, 4, 4, 4]


# --- loaders and bad input ---------------------------------------------------------------------

def test_csv_standard_with_classes(tmp_path):
    (tmp_path / "classes.txt").write_text("neg\npos\n")
    (tmp_path / "train.csv").write_text('pos,"Loved it, truly"\nneg,Awful\n2,Fine\n')
    got = data.load_csv_folder(tmp_path)
    assert got.labels == [1, 0, 1] and got.docs[0] == ["Loved it, truly"]


def test_csv_numbered_labels_are_one_based_as_in_the_standard_or_zero_based_with_a_zero(tmp_path):
    (tmp_path / "classes.txt").write_text("World\nSports\nBusiness\n")
    (tmp_path / "train.csv").write_text("3,a\n1,b\n2,c\n")  # AG News' numbering
    assert data.load_csv_folder(tmp_path).labels == [2, 0, 1]
    (tmp_path / "train.csv").write_text("2,a\n0,b\n1,c\n")
    assert data.load_csv_folder(tmp_path).labels == [2, 0, 1]
    (tmp_path / "train.csv").write_text("1,a\n4,b\n")
    with pytest.raises(UserError, match=r"train.csv: line 2: label 4 is outside 1..3 \(numbered from 1: 3 classes"):
        data.load_csv_folder(tmp_path)


def test_csv_bad_inputs_are_named(tmp_path):
    (tmp_path / "classes.txt").write_text("neg\npos\n")
    (tmp_path / "train.csv").write_text("maybe,Hmm\n")
    with pytest.raises(UserError, match=r"train.csv: line 1: label 'maybe' is not in classes.txt"):
        data.load_csv_folder(tmp_path)
    (tmp_path / "train.csv").write_text("pos\n")
    with pytest.raises(UserError, match="expected label,text"):
        data.load_csv_folder(tmp_path)
    (tmp_path / "train.csv").write_bytes("pos,caf\xe9".encode("latin-1"))
    with pytest.raises(UserError, match="not UTF-8"):
        data.load_csv_folder(tmp_path)
    (tmp_path / "train.csv").write_text("")
    with pytest.raises(UserError, match="no rows"):
        data.load_csv_folder(tmp_path)
    (tmp_path / "classes.txt").unlink()
    with pytest.raises(UserError, match="classes.txt: not found"):
        data.load_csv_folder(tmp_path)


def test_aclimdb_layout(tmp_path):
    for split in ("train", "test"):
        for cls in ("pos", "neg"):
            (tmp_path / split / cls).mkdir(parents=True)
            (tmp_path / split / cls / "0_7.txt").write_text(f"{split} {cls} review<br />")
    (tmp_path / "train" / "unsup").mkdir()
    (tmp_path / "train" / "unsup" / "0_0.txt").write_text("no label")
    got = data.load_labelled(str(tmp_path), tmp_path / "scratch")
    assert got.classes == ["neg", "pos"] and got.labels == [0, 1]
    assert len(got.unlabelled) == 1 and got.test_labels == [0, 1]


def test_embedded_reviews_go_through_the_csv_loader(tmp_path):
    got = data.load_labelled("embedded", tmp_path)
    assert (tmp_path / "reviews" / "train.csv").exists()
    assert got.classes == ["no", "yes"] and len(got.docs) == 22_641
    assert sum(got.labels) / len(got.labels) == pytest.approx(0.82, abs=0.01)


def test_corpus_paragraphs_stream_and_bad_files(tmp_path):
    path = tmp_path / "c.txt"
    path.write_text("one\npara\n\n\ntwo\n\n" + "x " * 10 + "\n")
    assert list(data.paragraphs(path)) == ["one\npara", "two", ("x " * 10).strip()]
    (tmp_path / "empty.txt").write_text("\n\n")
    with pytest.raises(UserError, match="empty.txt: empty"):
        list(data.paragraphs(tmp_path / "empty.txt"))
    (tmp_path / "bin.txt").write_bytes(b"\xff\xfe\x00abc")
    with pytest.raises(UserError, match="bin.txt: not UTF-8"):
        list(data.paragraphs(tmp_path / "bin.txt"))
    names = [name for name, _ in data.general_corpus(["embedded"])]
    assert names == ["kjv.txt.xz", "fortunes.txt.xz", "shakespeare"]
