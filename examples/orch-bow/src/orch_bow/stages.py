"""prepare -> train -> report."""

from __future__ import annotations

import json
from pathlib import Path

from orch_bow import data
from orchestrator import SPLITS, StageContext

DOCS = "docs.json"


def prepare(ctx: StageContext) -> dict[str, float]:
    p = ctx.params
    labels, texts = data.load(data.EMBEDDED if p.data == "embedded" else Path(p.data))
    names = data.split(len(texts), p.val_pct, p.train_dev_pct, p.seed)
    vocab = data.vocabulary([t for t, s in zip(texts, names) if s == "train"], p.min_count, p.max_vocab)
    index, classes = {w: i for i, w in enumerate(vocab)}, sorted(set(labels))
    splits = {s: {"ids": [[index[w] for w in data.words(t) if w in index] for t, n in zip(texts, names) if n == s],
                  "labels": [classes.index(lab) for lab, n in zip(labels, names) if n == s]} for s in SPLITS}
    (ctx.out_dir / DOCS).write_text(json.dumps({"vocab": vocab, "labels": classes, "splits": splits}))
    return {"vocab_size": len(vocab), **{f"n_{s}": len(splits[s]["labels"]) for s in SPLITS}}


def _tensors(prep: Path) -> tuple[dict, dict]:
    import torch

    from orch_bow.model import bow_vectors

    docs = json.loads((prep / DOCS).read_text())
    config = {"vocab": docs["vocab"], "labels": docs["labels"]}
    return config, {s: (bow_vectors(d["ids"], len(docs["vocab"])), torch.tensor(d["labels"]))
                    for s, d in docs["splits"].items()}


def train(ctx: StageContext) -> dict[str, float]:
    from orch_bow.model import build
    from orch_bow.train import evaluate, fit

    p = ctx.params
    config, splits = _tensors(ctx.input_dir("prepare"))
    model = build(config)
    fit(model, splits["train"], splits["val"], epochs=p.epochs, bs=p.bs, lr=p.lr, wd=p.wd, seed=p.seed,
        on_epoch=ctx.log_epoch, resumable=ctx.resumable)
    ctx.save_model("model", model, config)
    scores = {s: evaluate(model, *splits[s]) for s in SPLITS}
    return {**{f"{s}_loss": scores[s][0] for s in SPLITS}, **{f"{s}_error": scores[s][1] for s in SPLITS}}


def report(ctx: StageContext) -> dict[str, float]:
    """The words whose counts push hardest towards each label, and the bias/variance report."""
    from orch_bow.model import build

    model = ctx.load_model("train", "model", build)
    config = json.loads((ctx.input_dir("train") / "model.json").read_text())
    weights = model.linear.weight.detach()
    lines = ["# The telling words", "", "The words whose count raises each label's score most over the others.", ""]
    for k, label in enumerate(config["labels"]):
        others = (weights.sum(0) - weights[k]) / (len(weights) - 1)  # the mean weight of the other labels
        top = (weights[k] - others).topk(15).indices.tolist()
        lines.append(f"- **{label}**: " + ", ".join(config["vocab"][i] for i in top))
    (ctx.out_dir / "words.md").write_text("\n".join(lines) + "\n")
    ctx.bias_variance_report()
    return {}
