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
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from orch_ulmfit import data, text
from orchestrator import SPLITS, StageContext, UserError
from orchestrator import HumanBaseline

# measured with fastai 2.8.12 on the embedded reviews (AWD-LSTM 200/400/2, 80/20 split, no downloads)
FASTAI_ANCHOR_ERROR = {"scratch": 0.0870, "ulmfit": 0.0780, "majority": 0.1875}


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
    facts = {"source": labelled.source, "classes": labelled.classes}
    if p.data == "embedded":
        facts["human"] = _reviewer_consistency()
    (ctx.out_dir / "facts.json").write_text(json.dumps(facts, indent=1))
    majority = max(np.bincount(labels[index["val"]])) / len(index["val"])
    unknown = sum(int((vocab.numericalize(docs[i]) == 0).sum()) for i in index["val"])
    return {"n_train": len(index["train"]), "n_train_dev": len(index["train_dev"]), "n_val": len(index["val"]),
            "n_unlabelled": len(unsup), "vocab_size": len(vocab), "n_tokens": n_tokens,
            "tokenize_tokens_per_s": n_tokens / seconds, "val_majority_error": 1 - majority,
            "val_unk_rate": unknown / max(1, sum(len(docs[i]) for i in index["val"]))}


def _reviewer_consistency() -> dict:
    """How often the reviewers' own star ratings disagree with their own recommendation, at the best
    threshold: a reader who recovered the stars from the text exactly would still err this often."""
    frame = pd.read_parquet(data.corpus_dir() / data.REVIEWS)
    frame = frame[frame["Review Text"].notna()]
    errors = {t: float(((frame["Rating"] >= t).astype(int) != frame["Recommended IND"]).mean()) for t in range(2, 6)}
    best = min(errors, key=errors.get)
    return {"error": errors[best], "threshold": best}


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
    import torch

    from orch_ulmfit.model import LanguageModel, convert_embeddings

    p = ctx.params
    pre = ctx.input_dir("pretrain")
    old_vocab = text.Vocab.load(pre / "vocab.txt")
    new_vocab = text.Vocab.load(ctx.input_dir("prepare") / "vocab.txt")
    state = ctx.load_state("pretrain", "lm")
    key = "encoder.encoder.weight"
    if state[key].shape[0] != len(old_vocab):
        raise UserError(f"{pre / 'vocab.txt'}: {len(old_vocab)} words, but the encoder has {state[key].shape[0]} rows")
    weight, found = convert_embeddings(state[key], list(old_vocab.itos), list(new_vocab.itos))
    state[key] = weight
    state["decoder.decoder.weight"] = weight
    bias = state["decoder.decoder.bias"]
    old = old_vocab.stoi
    state["decoder.decoder.bias"] = torch.stack([bias[old[w]] if w in old else bias.mean() for w in new_vocab.itos])
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


def _classifier_data(prep: Path) -> dict[str, tuple[list[np.ndarray], np.ndarray]]:
    return {s: (text.load_ids(prep / f"{s}.npz"), np.load(prep / f"{s}_labels.npy")) for s in SPLITS}


def train_classifier(ctx: StageContext, variant: str, encoder: dict | None, gradual: bool,
                     prefix: str) -> tuple[object, dict[str, float]]:
    """One classifier: ``encoder`` weights (None: from scratch, trained as any network is: every layer
    at once at one rate, nothing pretrained to protect); returns the model and its errors."""
    from orch_ulmfit.model import Classifier, load_encoder
    from orch_ulmfit.train import evaluate_classifier, fit_classifier

    p = ctx.params
    prep = ctx.input_dir("prepare")
    vocab = text.Vocab.load(prep / "vocab.txt")
    classes = json.loads((prep / "facts.json").read_text())["classes"]
    sets = _classifier_data(prep)
    c = p.classifier
    if c.train_docs and c.train_docs < len(sets["train"][0]):
        keep = np.sort(np.random.default_rng(p.seed).choice(len(sets["train"][0]), c.train_docs, replace=False))
        sets["train"] = ([sets["train"][0][i] for i in keep], sets["train"][1][keep])
    ctx.reseed()  # every variant starts from the same RNG state
    model = Classifier(len(vocab), p.emb_sz, p.n_hid, p.n_layers, len(classes), c.drop_mult)
    if encoder is not None:
        load_encoder(model, encoder, f"{variant} encoder")
    model.to(ctx.device)

    def on_epoch(epoch: int, m: dict) -> None:
        ctx.log_epoch(epoch, {f"{prefix}{k}": v for k, v in m.items()})

    start = time.perf_counter()
    speed = fit_classifier(model, sets["train"], sets["val"], lr=c.lr, wd=c.wd, bs=c.bs, max_len=c.max_len,
                           clip=p.clip, device=ctx.device, seed=p.seed, gradual=gradual,
                           discriminative=encoder is not None,
                           final_epochs=c.final_epochs, on_epoch=on_epoch, progress=ctx.progress,
                           resumable=functools.partial(ctx.resumable, variant))
    out = {"docs_per_s": speed, "seconds": time.perf_counter() - start}
    probe = (sets["train"][0][: len(sets["val"][0])], sets["train"][1][: len(sets["val"][0])])
    for split, (docs, labels) in (("train", probe), ("train_dev", sets["train_dev"]), ("val", sets["val"])):
        loss, error = evaluate_classifier(model, docs, labels, c.bs, c.max_len, ctx.device)
        out[f"{split}_error"], out[f"{split}_loss"] = error, loss
    return model, out


def classify(ctx: StageContext) -> dict[str, float]:
    """(c) The full method: (a) + (b) + gradual unfreezing."""
    model, out = train_classifier(ctx, "ulmfit", ctx.load_state("finetune", "encoder"), True, "")
    ctx.save_model("classifier", model, {"params": ctx.params.model_dump(mode="json")})
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


VARIANTS = {
    "scratch": "classifier from scratch (no pretraining)",
    "pretrained": "(a) general-domain LM only",
    "no_unfreezing": "(a) + (b) LM fine-tuning, all layers trained at once",
    "ulmfit": "(a) + (b) + gradual unfreezing: full ULMFiT",
}


def report(ctx: StageContext) -> dict[str, float]:
    from orch_ulmfit import plots

    out = ctx.out_dir
    m = ctx.upstream_metrics()
    rows = [{"variant": "ulmfit", "val_error": m["val_error"], "train_error": m["train_error"], "seconds": m["seconds"]}]
    ablation_csv = ctx.input_dir("ablation") / "ablation.csv"
    if ablation_csv.exists() and ablation_csv.stat().st_size > 1:
        rows = pd.read_csv(ablation_csv)[["variant", "val_error", "train_error", "seconds"]].to_dict("records") + rows
    table = pd.DataFrame(rows)
    table.to_csv(out / "ablation.csv", index=False)
    plots.ablation(table, m["val_majority_error"], out / "ablation.png")
    plots.classifier_curves(ctx.input_history("classify"),
                            ctx.input_history("ablation"),
                            list(ctx.params.ablation), out / "classifier_curves.png")
    plots.lm_curves({s: ctx.input_history(s) for s in ("pretrain", "finetune")},
                    out / "lm_curves.png")
    (out / "ablation.md").write_text(_ablation_md(table, m), encoding="utf-8")
    ctx.bias_variance_report(m, human=_human(ctx))
    return {}


def _human(ctx: StageContext) -> HumanBaseline | None:
    facts = json.loads((ctx.input_dir("prepare") / "facts.json").read_text())
    if "human" in facts:
        h = facts["human"]
        return HumanBaseline(h["error"], (
            f"the reviewers' own consistency: their star rating (>= {h['threshold']} stars -> recommended) "
            f"disagrees with their own recommendation on {h['error']:.1%} of the reviews; a reader who recovered "
            "the stars from the text exactly would still err that often (no human study of this data exists)"))
    return None


def _ablation_md(table: pd.DataFrame, m: dict) -> str:
    lines = ["# ULMFiT ablation", "",
             f"Validation error on {m['n_val']:,.0f} held-out documents (seeded random split); majority class "
             f"{m['val_majority_error']:.2%}.", "",
             "| classifier | val error | train error | seconds |", "|---|---:|---:|---:|"]
    for r in table.itertuples():
        lines.append(f"| {VARIANTS.get(r.variant, r.variant)} | {r.val_error:.2%} | {r.train_error:.2%} | {r.seconds:.0f} |")
    lines += ["", "Language models (next-token accuracy / perplexity on held-out text):", "",
              f"- (a) general corpus: {m['pretrain_val_acc']:.1%} / {m['pretrain_val_ppl']:.1f}",
              f"- (a) on the target texts before fine-tuning: {m['finetune_before_val_acc']:.1%} / "
              f"{m['finetune_before_val_ppl']:.1f}",
              f"- (b) after fine-tuning on the target texts: {m['finetune_val_acc']:.1%} / {m['finetune_val_ppl']:.1f}",
              f"- target words found in the general vocabulary: {m['vocab_coverage']:.1%}", "",
              "Anchor (fastai 2.8.12 on the same reviews, 80/20 split, AWD-LSTM 200/400/2, no downloaded weights): "
              f"from scratch {FASTAI_ANCHOR_ERROR['scratch']:.2%}, LM fine-tuning + gradual unfreezing "
              f"{FASTAI_ANCHOR_ERROR['ulmfit']:.2%}, majority {FASTAI_ANCHOR_ERROR['majority']:.2%}.", "",
              "Each row is one training run (one seed). On the default data the same classifier varies by about one "
              "point from seed to seed (`python benchmarks/ulmfit_labels.py`), so smaller differences are noise.", "",
              "![ablation](ablation.png)"]
    return "\n".join(lines) + "\n"
