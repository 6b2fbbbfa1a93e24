"""The ulmfit pipeline:

  prepare    target data: load, split (seeded random), tokenize, vocabulary, ids
  corpus     general-domain text: tokenize, vocabulary, ids (cached apart from any target data)
  pretrain   (a) language model on the general corpus                      [tracked from here]
  finetune   (b) target LM: (a)'s embeddings converted to the target vocabulary, discriminative LRs, STLR
  classify   (c) classifier on (b)'s encoder: gradual unfreezing, discriminative LRs, STLR
  ablation   the same classifier from scratch, from (a) alone, and from (a)+(b) without gradual unfreezing
  report     ablation table, curves, bias/variance
"""

from __future__ import annotations

import functools
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from orch_ulmfit import data, text
from orch_ulmfit.report import reviewer_consistency
from orchestrator import SPLITS, StageContext, UserError


def prepare(ctx: StageContext) -> dict[str, float]:
    p = ctx.params
    labelled = data.load_labelled(p.data, ctx.out_dir)
    if len(set(labelled.labels)) < 2:
        raise UserError(f"{labelled.source}: every document has the same label; a classifier needs two classes")
    rng = np.random.default_rng(p.seed)
    n = len(labelled.docs)
    order = rng.permutation(n)
    n_val = int(round(n * p.valid_pct))
    val_idx, rest = order[:n_val], order[n_val:]
    n_dev = int(round(len(rest) * p.train_dev_pct))
    index = {"val": np.sort(val_idx), "train_dev": np.sort(rest[:n_dev]), "train": np.sort(rest[n_dev:])}
    start = time.perf_counter()
    tokens = text.tokenize(labelled.docs + labelled.unlabelled, p.processes, progress=not ctx.quiet)
    seconds = time.perf_counter() - start
    docs, unsup = tokens[:n], tokens[n:]
    # the vocabulary comes from the training texts (and unlabelled ones): nothing of val leaks in
    vocab = text.Vocab.build([docs[i] for i in index["train"]] + unsup, p.max_vocab, p.min_freq)
    vocab.save(ctx.out_dir / "vocab.txt")
    labels = np.array(labelled.labels)
    for split, idx in index.items():
        text.save_ids([vocab.numericalize(docs[i]) for i in idx], ctx.out_dir / f"{split}.npz")
        np.save(ctx.out_dir / f"{split}_labels.npy", labels[idx])
    text.save_ids([vocab.numericalize(d) for d in unsup], ctx.out_dir / "unlabelled.npz")
    n_tokens = sum(len(d) for d in tokens)
    # fields: a document's text fields (a review: title, text), as `orch predict ulmfit` must give them
    facts = {"source": labelled.source, "classes": labelled.classes, "fields": max(len(d) for d in labelled.docs)}
    if p.data == "embedded":
        facts["human"] = reviewer_consistency(pd.read_parquet(data.corpus_dir() / data.REVIEWS))
    (ctx.out_dir / "facts.json").write_text(json.dumps(facts, indent=1))
    majority = max(np.bincount(labels[index["val"]])) / len(index["val"])
    unknown = sum(int((vocab.numericalize(docs[i]) == 0).sum()) for i in index["val"])
    return {"n_train": len(index["train"]), "n_train_dev": len(index["train_dev"]), "n_val": len(index["val"]),
            "n_unlabelled": len(unsup), "vocab_size": len(vocab), "n_tokens": n_tokens,
            "tokenize_tokens_per_s": n_tokens / seconds, "val_majority_error": 1 - majority,
            "val_unk_rate": unknown / max(1, sum(len(docs[i]) for i in index["val"]))}


def corpus(ctx: StageContext) -> dict[str, float]:
    """Tokenize the general-domain corpus in chunks of paragraphs; its own vocabulary; a held-out tail."""
    p = ctx.params
    budget = p.pretrain.max_tokens
    docs: list[list[str]] = []
    n_tokens, start = 0, time.perf_counter()
    for name, path in data.general_corpus(p.pretrain_corpus):
        paragraphs = list(data.paragraphs(Path(path)))
        for chunk in text.chunks(paragraphs, 20_000):
            for doc in text.tokenize([[para] for para in chunk], p.processes, progress=not ctx.quiet):
                docs.append(doc)
                n_tokens += len(doc)
        if not ctx.quiet:
            print(f"[ulmfit:corpus] {name}: {len(paragraphs):,} paragraphs, {n_tokens:,} tokens so far", file=sys.stderr,
                  flush=True)
    seconds = time.perf_counter() - start
    # interleave the sources' paragraphs (seeded) so a token budget samples all of them
    order = np.random.default_rng(p.seed).permutation(len(docs))
    docs = [docs[i] for i in order]
    n_val = max(1, len(docs) // 50)
    train_docs, val_docs = docs[n_val:], docs[:n_val]
    vocab = text.Vocab.build(train_docs, p.max_vocab, p.min_freq)
    vocab.save(ctx.out_dir / "vocab.txt")
    train_ids = np.concatenate([vocab.numericalize(d) for d in train_docs])
    if budget:
        train_ids = train_ids[:budget]
    np.save(ctx.out_dir / "train_ids.npy", train_ids)
    np.save(ctx.out_dir / "val_ids.npy", np.concatenate([vocab.numericalize(d) for d in val_docs])[:200_000])
    return {"corpus_tokens": n_tokens, "corpus_train_tokens": len(train_ids), "corpus_vocab_size": len(vocab),
            "corpus_tokenize_tokens_per_s": n_tokens / seconds}


def _lm_log(ctx: StageContext, prefix: str):
    return lambda epoch, m: ctx.log_epoch(epoch, {f"{prefix}.{k}": v for k, v in m.items()})


def _lm_figures(ctx: StageContext, prefix: str) -> tuple[dict, float]:
    """The last epoch's figures of a language-model stage (prefix dropped) and the mean epoch time."""
    rows = [{k[len(prefix) + 1:]: v for k, v in ctx.history[e].items()} for e in sorted(ctx.history)]
    return rows[-1], float(np.mean([r["epoch_seconds"] for r in rows]))


def pretrain(ctx: StageContext) -> dict[str, float]:
    """(a) General-domain language model."""

    from orch_ulmfit.model import LanguageModel
    from orch_ulmfit.train import fit_lm

    p, src = ctx.params, ctx.input_dir("corpus")
    vocab = text.Vocab.load(src / "vocab.txt")
    train_ids, val_ids = np.load(src / "train_ids.npy"), np.load(src / "val_ids.npy")
    model = LanguageModel(len(vocab), p.emb_sz, p.n_hid, p.n_layers, p.drop_mult).to(ctx.device)
    s = p.pretrain
    speed = fit_lm(model, train_ids, val_ids, epochs=s.epochs, bs=s.bs, bptt=s.bptt, lr=s.lr, wd=s.wd, clip=p.clip,
                   device=ctx.device, seed=p.seed, discriminative=False, on_epoch=_lm_log(ctx, "pretrain"),
                   progress=ctx.progress, resumable=ctx.resumable)
    ctx.save_model("lm", model)
    vocab.save(ctx.out_dir / "vocab.txt")
    last, epoch_seconds = _lm_figures(ctx, "pretrain")
    return {"pretrain_val_loss": last["val_loss"], "pretrain_val_ppl": last["val_ppl"],
            "pretrain_val_acc": last["val_acc"], "pretrain_tokens_per_s": speed,
            "pretrain_epoch_seconds": epoch_seconds}


def _target_stream(prep: Path, splits: tuple[str, ...]) -> np.ndarray:
    docs = [d for s in splits for d in text.load_ids(prep / f"{s}.npz")]
    return np.concatenate(docs) if docs else np.zeros(0, np.int32)


def converted_lm(ctx: StageContext):
    """(a)'s language model with its embedding (and tied decoder) rows moved to the target vocabulary."""
    from orch_ulmfit.model import LanguageModel, convert_lm

    p, pre = ctx.params, ctx.input_dir("pretrain")
    old_vocab = text.Vocab.load(pre / "vocab.txt")
    new_vocab = text.Vocab.load(ctx.input_dir("prepare") / "vocab.txt")
    state = ctx.load_state("pretrain", "lm")
    rows = state["encoder.encoder.weight"].shape[0]
    if rows != len(old_vocab):
        raise UserError(f"{pre / 'vocab.txt'}: {len(old_vocab)} words, but the encoder has {rows} rows")
    state, found = convert_lm(state, list(old_vocab.itos), list(new_vocab.itos))
    model = LanguageModel(len(new_vocab), p.emb_sz, p.n_hid, p.n_layers, p.drop_mult)
    model.load_state_dict(state)
    return model, found / len(new_vocab)


def finetune(ctx: StageContext) -> dict[str, float]:
    """(b) Target-task LM fine-tuning on the training texts (and unlabelled ones), validated on train-dev."""
    from orch_ulmfit.model import encoder_state
    from orch_ulmfit.train import evaluate_lm, fit_lm

    p, prep = ctx.params, ctx.input_dir("prepare")
    model, coverage = converted_lm(ctx)
    model.to(ctx.device)
    train_ids = _target_stream(prep, ("train", "unlabelled"))
    val_ids = _target_stream(prep, ("train_dev",))
    s = p.finetune
    if s.max_tokens:
        train_ids = train_ids[: s.max_tokens]
    before_loss, before_acc = evaluate_lm(model, val_ids, s.bs, s.bptt, ctx.device)
    speed = fit_lm(model, train_ids, val_ids, epochs=s.epochs, bs=s.bs, bptt=s.bptt, lr=s.lr, wd=s.wd, clip=p.clip,
                   device=ctx.device, seed=p.seed, discriminative=True, on_epoch=_lm_log(ctx, "finetune"),
                   progress=ctx.progress, resumable=ctx.resumable)
    ctx.save_model("encoder", encoder_state(model))
    last, epoch_seconds = _lm_figures(ctx, "finetune")
    return {"vocab_coverage": coverage, "finetune_before_val_ppl": float(np.exp(before_loss)),
            "finetune_before_val_acc": before_acc, "finetune_val_loss": last["val_loss"],
            "finetune_val_ppl": last["val_ppl"], "finetune_val_acc": last["val_acc"], "finetune_tokens_per_s": speed,
            "finetune_epoch_seconds": epoch_seconds}


def _classifier_data(ctx: StageContext) -> dict[str, tuple[list[np.ndarray], np.ndarray]]:
    """The prepared splits; the training split subsampled (seeded) to ``classifier.train_docs``."""
    prep, p = ctx.input_dir("prepare"), ctx.params
    sets = {s: (text.load_ids(prep / f"{s}.npz"), np.load(prep / f"{s}_labels.npy")) for s in SPLITS}
    n, docs, labels = p.classifier.train_docs, *sets["train"]
    if n and n < len(docs):
        keep = np.sort(np.random.default_rng(p.seed).choice(len(docs), n, replace=False))
        sets["train"] = ([docs[i] for i in keep], labels[keep])
    return sets


def classifier_config(ctx: StageContext) -> dict:
    """What rebuilds the classifier (``model.build_classifier``) and feeds it (vocabulary, classes)."""
    p, prep = ctx.params, ctx.input_dir("prepare")
    return {"vocab_size": len(text.Vocab.load(prep / "vocab.txt")), "emb_sz": p.emb_sz, "n_hid": p.n_hid,
            "n_layers": p.n_layers, "drop_mult": p.classifier.drop_mult, "max_len": p.classifier.max_len,
            **{k: json.loads((prep / "facts.json").read_text())[k] for k in ("classes", "fields")}}


def train_classifier(ctx: StageContext, variant: str, encoder: dict | None, gradual: bool,
                     prefix: str) -> tuple[object, dict[str, float]]:
    """One classifier: ``encoder`` weights (None: from scratch, trained as any network is: every layer
    at once at one rate, nothing pretrained to protect); returns the model and its errors."""
    from orch_ulmfit.model import build_classifier, load_encoder
    from orch_ulmfit.train import classifier_errors, fit_classifier

    p, c, sets = ctx.params, ctx.params.classifier, _classifier_data(ctx)
    ctx.reseed()  # every variant starts from the same RNG state
    model = build_classifier(classifier_config(ctx))
    if encoder is not None:
        load_encoder(model, encoder, f"{variant} encoder")
    model.to(ctx.device)
    start = time.perf_counter()
    speed = fit_classifier(model, sets["train"], sets["val"], lr=c.lr, wd=c.wd, bs=c.bs, max_len=c.max_len,
                           clip=p.clip, device=ctx.device, seed=p.seed, gradual=gradual,
                           discriminative=encoder is not None, final_epochs=c.final_epochs,
                           on_epoch=lambda e, m: ctx.log_epoch(e, {f"{prefix}{k}": v for k, v in m.items()}),
                           progress=ctx.progress, resumable=functools.partial(ctx.resumable, variant))
    out = {"docs_per_s": speed, "seconds": time.perf_counter() - start}
    return model, {**out, **classifier_errors(model, sets, c.bs, c.max_len, ctx.device)}


def classify(ctx: StageContext) -> dict[str, float]:
    """(c) The full method: (a) + (b) + gradual unfreezing."""
    model, out = train_classifier(ctx, "ulmfit", ctx.load_state("finetune", "encoder"), True, "")
    ctx.save_model("classifier", model, classifier_config(ctx))
    # the target vocabulary beside the weights: `orch predict ulmfit --run ID` needs nothing else
    shutil.copyfile(ctx.input_dir("prepare") / "vocab.txt", ctx.out_dir / "classifier.vocab.txt")
    return {**out, "epoch_seconds": float(np.mean([h["epoch_seconds"] for h in ctx.history.values()]))}


def ablation(ctx: StageContext) -> dict[str, float]:
    """The ablation's other rows: each classifier trained exactly as in classify, from another start."""
    from orch_ulmfit.model import encoder_state

    p = ctx.params
    rows, out = [], {}
    for variant in p.ablation:
        if variant == "scratch":
            encoder, gradual = None, False
        elif variant == "pretrained":
            encoder, gradual = encoder_state(converted_lm(ctx)[0]), True
        else:
            encoder = ctx.load_state("finetune", "encoder")
            gradual = False
        _, result = train_classifier(ctx, variant, encoder, gradual, f"{variant}.")
        rows.append({"variant": variant, **result})
        out.update({f"{variant}.{k}": v for k, v in result.items() if k in ("val_error", "train_error", "seconds")})
    pd.DataFrame(rows).to_csv(ctx.out_dir / "ablation.csv", index=False)
    return out


def report(ctx: StageContext) -> dict[str, float]:
    from orch_ulmfit import plots, report as write_up

    out, m = ctx.out_dir, ctx.upstream_metrics()
    ablation_csv = ctx.input_dir("ablation") / "ablation.csv"
    done = ablation_csv.exists() and ablation_csv.stat().st_size > 1  # an empty ablation writes no rows
    table = write_up.ablation_table(m, pd.read_csv(ablation_csv) if done else None)
    table.to_csv(out / "ablation.csv", index=False)
    plots.ablation(table, m["val_majority_error"], out / "ablation.png")
    plots.classifier_curves(ctx.input_history("classify"), ctx.input_history("ablation"), list(ctx.params.ablation),
                            out / "classifier_curves.png")
    plots.lm_curves({s: ctx.input_history(s) for s in ("pretrain", "finetune")}, out / "lm_curves.png")
    (out / "ablation.md").write_text(write_up.ablation_md(table, m), encoding="utf-8")
    facts = json.loads((ctx.input_dir("prepare") / "facts.json").read_text())
    ctx.bias_variance_report(m, human=write_up.human_baseline(facts))
    return {}
