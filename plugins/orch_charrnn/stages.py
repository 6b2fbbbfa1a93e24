"""The charrnn pipeline: prepare -> train (every architecture of ``compare``) -> report.
Orchestration only: the models are in model.py, the loop in train.py, the write-ups in report.py."""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd

from orch_charrnn import data, reference
from orchestrator import SPLITS, StageContext, UserError


def prepare(ctx: StageContext) -> dict[str, float]:
    p = ctx.params
    text, source = data.read_text(p.data, p.max_chars)
    vocab = data.Vocab.build(text)
    ids = vocab.encode(text)
    parts = data.split(ids, p.valid_pct, p.train_dev_pct, p.block, p.seed, source)
    for name, part in parts.items():
        if (len(part) - 1) // p.bs < 2:  # fail before training, not in the middle of it
            raise UserError(f"{source}: the {name} split has {len(part)} characters, too few for bs={p.bs}; "
                            "use a longer text or a smaller bs")
        np.save(ctx.out_dir / f"{name}.npy", part)
    vocab.save(ctx.out_dir / "vocab.json")
    refs = reference.compressor_bpc(vocab.decode(parts["val"]))
    return {
        "n_chars": len(ids), "vocab_size": len(vocab), **{f"n_{k}": len(v) for k, v in parts.items()},
        "ref_unigram_bpc": reference.unigram_bpc(parts["train"], parts["val"], len(vocab)),
        "ref_bigram_bpc": reference.bigram_bpc(parts["train"], parts["val"], len(vocab)),
        "ref_xz_bpc": refs["xz"], "ref_bz2_bpc": refs["bz2"],
    }


def train(ctx: StageContext) -> dict[str, float]:
    """The run's own architecture first (its metrics, samples, weights), then the others of ``compare``."""
    from orch_charrnn.model import build, config

    p, prep = ctx.params, ctx.input_dir("prepare")
    vocab = data.Vocab.load(prep / "vocab.json")
    parts = {name: np.load(prep / f"{name}.npy") for name in SPLITS}
    (ctx.out_dir / "samples").mkdir()
    rows, out = [], {}
    for arch in [p.arch] + [a for a in p.compare if a != p.arch]:
        ctx.reseed()  # each architecture starts as if trained alone
        model = build(arch, len(vocab), p).to(ctx.device)
        row = _fit(ctx, arch, model, vocab, parts)
        rows.append(row)
        if arch == p.arch:
            ctx.save_model("model", model, config(arch, len(vocab), p))
            vocab.save(ctx.out_dir / "vocab.json")
            out.update({k: v for k, v in row.items() if k != "arch"})
        else:
            out.update({f"{arch}.{k}": v for k, v in row.items() if k not in ("arch", "params")})
    pd.DataFrame(sorted(rows, key=lambda r: p.compare.index(r["arch"]))).to_csv(
        ctx.out_dir / "comparison.csv", index=False)
    return out


def _fit(ctx: StageContext, arch: str, model, vocab: data.Vocab, parts: dict) -> dict:
    """Train one architecture; its figures on every split (train: as many characters as val)."""
    import time

    from orch_charrnn.model import sample
    from orch_charrnn.train import evaluate, figures, fit

    p, main = ctx.params, arch == ctx.params.arch

    def on_epoch(epoch: int, metrics: dict[str, float]) -> None:
        ctx.log_epoch(epoch, metrics if main else {f"{arch}.{k}": v for k, v in metrics.items()})
        if main and p.sample_chars:
            text = sample(model, vocab, "", p.sample_chars, p.temperature, seed=p.seed, device=ctx.device)
            (ctx.out_dir / "samples" / f"epoch_{epoch + 1:02d}.txt").write_text(text, encoding="utf-8")

    start = time.perf_counter()
    speed = fit(model, parts["train"], parts["val"], epochs=p.epochs, bs=p.bs, bptt=p.bptt, lr=p.lr, clip=p.clip,
                device=ctx.device, on_epoch=on_epoch, progress=ctx.progress,
                resumable=functools.partial(ctx.resumable, arch))
    row = {"arch": arch, "params": sum(t.numel() for t in model.parameters()), "chars_per_s": speed,
           "train_seconds": time.perf_counter() - start}
    probe = parts["train"][: len(parts["val"])]  # measured in eval mode, like the other splits
    for split, ids in (("train", probe), ("train_dev", parts["train_dev"]), ("val", parts["val"])):
        row.update(figures(*evaluate(model, ids, p.bs, p.bptt, ctx.device), split))
    return row


def report(ctx: StageContext) -> dict[str, float]:
    from orch_charrnn import plots, report
    from orch_charrnn.model import load, sample
    from orchestrator import loss_curves

    p, out, train_dir = ctx.params, ctx.out_dir, ctx.input_dir("train")
    metrics = ctx.upstream_metrics()
    table = pd.read_csv(train_dir / "comparison.csv")
    refs = {"unigram": metrics["ref_unigram_bpc"], "bigram": metrics["ref_bigram_bpc"],
            "xz": metrics["ref_xz_bpc"], "bz2": metrics["ref_bz2_bpc"], "human (Shannon)": ctx.task.human.error}
    plots.comparison(table, refs, out / "comparison.png")
    loss_curves(ctx.input_history("train"), out / "loss_curves.png",
                f"charrnn ({p.arch}): loss per epoch (nats per character)", columns=["train_loss", "val_loss"])
    model, vocab = load(train_dir)
    samples = {t: sample(model, vocab, "", 600, t, seed=p.seed, device="cpu") for t in (0.5, 0.8, 1.0)}
    (out / "samples.md").write_text(report.samples_md(samples, p.arch), encoding="utf-8")
    (out / "comparison.md").write_text(report.comparison_md(table, refs, metrics), encoding="utf-8")
    ctx.bias_variance_report(metrics)
    return {}
