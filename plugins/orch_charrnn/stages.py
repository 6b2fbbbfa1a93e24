"""The charrnn pipeline: prepare -> train (every architecture of ``compare``) -> report."""

from __future__ import annotations

import json
import time

import numpy as np
import pandas as pd

from orch_charrnn import data, reference
from orchestrator.context import StageContext
from orchestrator.errors import UserError

# The lesson's validation NLL on Nietzsche, in nats per character, for the report's side-by-side.
LESSON_NATS = {"charloop": 1.75, "rnn": 1.50, "stateful": 1.48, "lstm": 1.26}
SPLITS = ("train", "train_dev", "val")


def prepare(ctx: StageContext) -> dict[str, float]:
    p = ctx.params
    text, source = data.read_text(p.data, p.max_chars)
    vocab = data.Vocab.build(text)
    ids = vocab.encode(text)
    parts = data.split(ids, p.valid_pct, p.train_dev_pct, p.block, p.seed)
    for name, part in parts.items():
        if (len(part) - 1) // p.bs < 2:  # fail before training, not in the middle of it
            raise UserError(f"{source}: the {name} split has {len(part)} characters, too few for bs={p.bs}; "
                            "use a longer text or a smaller bs")
        np.save(ctx.out_dir / f"{name}.npy", part)
    vocab.save(ctx.out_dir / "vocab.json")
    val_text = vocab.decode(parts["val"])
    refs = reference.compressor_bpc(val_text)
    return {
        "n_chars": len(ids), "vocab_size": len(vocab), **{f"n_{k}": len(v) for k, v in parts.items()},
        "ref_unigram_bpc": reference.unigram_bpc(parts["train"], parts["val"], len(vocab)),
        "ref_bigram_bpc": reference.bigram_bpc(parts["train"], parts["val"], len(vocab)),
        "ref_xz_bpc": refs["xz"], "ref_bz2_bpc": refs["bz2"],
    }


def train(ctx: StageContext) -> dict[str, float]:
    import torch

    from orch_charrnn.generate import sample
    from orch_charrnn.model import build
    from orch_charrnn.train import evaluate, figures, fit
    from orchestrator.device import seed_everything

    p = ctx.params
    prep = ctx.input_dir("prepare")
    vocab = data.Vocab.load(prep / "vocab.json")
    parts = {name: np.load(prep / f"{name}.npy") for name in SPLITS}
    # train error is measured on as many training characters as validation has, in eval mode
    train_probe = parts["train"][: len(parts["val"])]
    order = [p.arch] + [a for a in p.compare if a != p.arch]  # the run's own model first
    results, out, history = {}, {}, []
    samples_dir = ctx.out_dir / "samples"
    samples_dir.mkdir()
    for arch in order:
        seed_everything(p.seed)
        model = build(arch, len(vocab), p).to(ctx.device)
        main = arch == p.arch

        def on_epoch(epoch: int, metrics: dict[str, float], arch=arch, main=main, model=model) -> None:
            if main:
                ctx.log_epoch(epoch, metrics)
                history.append({"epoch": epoch, **metrics})
                if p.sample_chars:
                    text = sample(model, vocab, "", p.sample_chars, p.temperature, seed=p.seed, device=ctx.device)
                    path = samples_dir / f"epoch_{epoch + 1:02d}.txt"
                    path.write_text(text, encoding="utf-8")
                    ctx.log_artifact(path, "text")
            else:
                ctx.log_epoch(epoch, {f"{arch}.{k}": v for k, v in metrics.items()})

        start = time.perf_counter()
        speed = fit(model, parts["train"], parts["val"], epochs=p.epochs, bs=p.bs, bptt=p.bptt, lr=p.lr,
                    clip=p.clip, device=ctx.device, on_epoch=on_epoch, progress=not ctx.quiet)
        row = {"arch": arch, "params": sum(t.numel() for t in model.parameters()), "chars_per_s": speed,
               "train_seconds": time.perf_counter() - start}
        for split, ids in (("train", train_probe), ("train_dev", parts["train_dev"]), ("val", parts["val"])):
            nll, acc = evaluate(model, ids, p.bs, p.bptt, ctx.device)
            row.update(figures(nll, acc, split))
        results[arch] = row
        if main:
            torch.save(model.state_dict(), ctx.out_dir / "model.pt")
            (ctx.out_dir / "model.json").write_text(json.dumps({"arch": arch, "params": p.model_dump(mode="json")}))
            vocab.save(ctx.out_dir / "vocab.json")
            for name in ("model.pt", "model.json", "vocab.json"):
                ctx.log_artifact(ctx.out_dir / name, "model")
            out.update({k: v for k, v in row.items() if k != "arch"})
        else:
            out.update({f"{arch}.{k}": v for k, v in row.items() if k not in ("arch", "params")})
    pd.DataFrame(history).to_csv(ctx.out_dir / "history.csv", index=False)
    ctx.log_artifact(ctx.out_dir / "history.csv", "table")
    table = pd.DataFrame([results[a] for a in p.compare if a in results])
    table.to_csv(ctx.out_dir / "comparison.csv", index=False)
    ctx.log_artifact(ctx.out_dir / "comparison.csv", "table")
    return out


def report(ctx: StageContext) -> dict[str, float]:
    from orch_charrnn import plots
    from orch_charrnn.generate import load, sample
    from orchestrator.plots import loss_curves

    p = ctx.params
    out = ctx.out_dir
    metrics = ctx.upstream_metrics()
    table = pd.read_csv(ctx.input_dir("train") / "comparison.csv")
    refs = {"unigram": metrics["ref_unigram_bpc"], "bigram": metrics["ref_bigram_bpc"],
            "xz": metrics["ref_xz_bpc"], "bz2": metrics["ref_bz2_bpc"], "human (Shannon)": ctx.task.human.error}
    plots.comparison(table, refs, out / "comparison.png")
    loss_curves(pd.read_csv(ctx.input_dir("train") / "history.csv"), out / "loss_curves.png",
                f"charrnn ({p.arch}): loss per epoch (nats per character)")
    model, vocab = load(ctx.input_dir("train"))
    samples = {t: sample(model, vocab, "", 600, t, seed=p.seed, device="cpu") for t in (0.5, 0.8, 1.0)}
    (out / "samples.md").write_text(_samples_md(samples, p.arch), encoding="utf-8")
    (out / "comparison.md").write_text(_comparison_md(table, refs, metrics), encoding="utf-8")
    for name, kind in [("comparison.png", "plot"), ("loss_curves.png", "plot"), ("comparison.md", "report"),
                       ("samples.md", "text")]:
        ctx.log_artifact(out / name, kind)
    ctx.bias_variance_report(metrics)
    return {}


def _comparison_md(table: pd.DataFrame, refs: dict[str, float], metrics: dict[str, float]) -> str:
    lines = ["# Character models: the progression", "",
             f"Validation = the last {metrics['n_val']:,.0f} characters; {metrics['n_train']:,.0f} training characters.",
             "", "| model | params | val nats/char | val bits/char | perplexity | accuracy | train chars/s "
             "| lesson (Nietzsche), nats |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in table.itertuples():
        lesson = LESSON_NATS.get(r.arch)
        lines.append(f"| {r.arch} | {r.params:,} | {r.val_loss:.3f} | {r.val_bpc:.3f} | {r.val_ppl:.2f} | "
                     f"{r.val_acc:.1%} | {r.chars_per_s:,.0f} | {'' if lesson is None else f'{lesson:.2f}'} |")
    lines += ["", "Reference points on the same validation text:", "",
              "| reference | bits/char | nats/char |", "|---|---:|---:|"]
    lines += [f"| {name} | {bpc:.3f} | {reference.nats(bpc):.3f} |" for name, bpc in refs.items()]
    lines += ["", "Unigram and bigram: character frequencies of the training text with add-one smoothing. "
              "xz and bz2: the compressed size of the validation text alone. Human: Shannon's 1951 upper "
              "estimate for English (see the bias/variance report).", "", "![comparison](comparison.png)"]
    return "\n".join(lines) + "\n"


def _samples_md(samples: dict[float, str], arch: str) -> str:
    parts = [f"# Samples from the {arch} model", ""]
    for t, text in samples.items():
        parts += [f"## temperature {t}", "", "```text", text, "```", ""]
    return "\n".join(parts)
