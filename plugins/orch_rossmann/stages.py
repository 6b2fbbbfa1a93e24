"""The rossmann pipeline: prepare -> train (network) -> embeddings -> gbm -> report.
Orchestration only: loading in data.py, the network in model.py, every fit in train.py."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from orch_rossmann import data
from orch_rossmann.tabular import Encoder, embedding_size, mape, rmspe, time_split
from orchestrator import SPLITS, StageContext, UserError


def prepare(ctx: StageContext) -> dict[str, float]:
    p = ctx.params
    categorical, continuous = data.columns(p)
    full, test, facts = data.load_frames(p, ctx.out_dir)
    missing = [c for c in (*categorical, *continuous) if c not in full.columns]
    if missing:
        raise UserError(f"{facts['source']}: column(s) {', '.join(missing)} not found (params: "
                        f"{ctx.task.name}.categorical / continuous)")
    head, val = time_split(full, "Date", p.valid_weeks)
    rng = np.random.default_rng(p.seed)
    if p.train_rows and p.train_rows < len(head):
        head = head.iloc[np.sort(rng.choice(len(head), p.train_rows, replace=False))]
    held = rng.random(len(head)) < p.train_dev_pct
    parts = {"train": head[~held], "train_dev": head[held], "val": val, **({"test": test} if test is not None else {})}
    encoder = Encoder(categorical, continuous).fit(parts["train"])
    encoder.save(ctx.out_dir / "encoder.json")
    for name, frame in parts.items():
        np.savez_compressed(ctx.out_dir / f"{name}.npz", cats=encoder.codes(frame), conts=encoder.scaled(frame),
                            y=frame["LogSales"].to_numpy(np.float32))
    (ctx.out_dir / "facts.json").write_text(json.dumps(facts, indent=1, default=str))
    unseen = {c: int((encoder.codes(val)[:, j] == 0).sum()) for j, c in enumerate(encoder.categorical)}
    return {**{f"n_{k}": len(v) for k, v in parts.items()}, "n_unseen_val_codes": sum(unseen.values()),
            "val_start": float(val["Date"].min().strftime("%Y%m%d"))}


def _arrays(folder: Path, splits=(*SPLITS, "test")) -> dict[str, dict[str, np.ndarray]]:
    out = {}
    for name in splits:
        if (folder / f"{name}.npz").exists():
            with np.load(folder / f"{name}.npz") as z:
                out[name] = {k: z[k] for k in z.files}
    return out


def train(ctx: StageContext) -> dict[str, float]:
    import time

    from orch_rossmann.model import build
    from orch_rossmann.train import fit, predict, to_tensors

    p, prep = ctx.params, ctx.input_dir("prepare")
    encoder, arrays = Encoder.load(prep / "encoder.json"), _arrays(prep)
    cards = [encoder.n_codes(c) for c in encoder.categorical]
    config = {"cardinalities": cards, "sizes": [embedding_size(n) for n in cards], "n_cont": len(encoder.continuous),
              "y_range": [0.0, float(arrays["train"]["y"].max()) * 1.2], "layers": p.layers, "dropouts": p.dropouts,
              "emb_drop": p.emb_drop}
    model = build(config).to(ctx.device)
    tensors = {s: to_tensors(a, ctx.device) for s, a in arrays.items()}
    start = time.perf_counter()
    fit(model, tensors["train"], tensors["val"], epochs=p.epochs, bs=p.bs, lr=p.lr, wd=p.wd, seed=p.seed,
        on_epoch=ctx.log_epoch, progress=ctx.progress, resumable=ctx.resumable)
    out = {"train_seconds": time.perf_counter() - start, **{k: ctx.history[p.epochs - 1][k] for k in ("train_loss", "val_loss")}}
    ctx.save_model("model", model, config)
    for split, t in tensors.items():
        pred, truth = np.exp(predict(model, t)), np.exp(arrays[split]["y"])
        out[f"{split}_rmspe"], out[f"{split}_mape"] = rmspe(truth, pred), mape(truth, pred)
    return out


def embeddings(ctx: StageContext) -> dict[str, float]:
    """One CSV per categorical: a row per category value (``<unknown>`` first) with its vector."""
    from orch_rossmann.model import build

    encoder = Encoder.load(ctx.input_dir("prepare") / "encoder.json")
    model = ctx.load_model("train", "model", build)
    for i, column in enumerate(encoder.categorical):
        matrix = model.embedding_matrix(i).numpy()
        frame = pd.DataFrame(matrix, columns=[f"e{k}" for k in range(matrix.shape[1])])
        frame.insert(0, column, ["<unknown>", *encoder.categories[column]])
        frame.to_csv(ctx.out_dir / f"{column}.csv", index=False)
    return {"n_embeddings": len(encoder.categorical)}


def gbm(ctx: StageContext) -> dict[str, float]:
    """GBM, random forest and KNN on plain codes and on entity embeddings (the paper's tables III/IV)."""
    from orch_rossmann.train import fit_baselines

    prep, emb_dir = ctx.input_dir("prepare"), ctx.input_dir("embeddings")
    encoder = Encoder.load(prep / "encoder.json")
    tables = [pd.read_csv(emb_dir / f"{c}.csv").iloc[:, 1:].to_numpy(np.float32) for c in encoder.categorical]
    table, importance = fit_baselines(ctx.params, _arrays(prep, ("train", "val", "test")), tables,
                                      [*encoder.categorical, *encoder.continuous])
    table.to_csv(ctx.out_dir / "comparison.csv", index=False)
    importance.sort_values("gain", ascending=False).to_csv(ctx.out_dir / "gbm_importance.csv", index=False)
    return {f"{r.model}_{r.features}.{m}": getattr(r, m) for m in ("val_mape", "val_rmspe") for r in table.itertuples()}


def report(ctx: StageContext) -> dict[str, float]:
    from orch_rossmann import plots, report
    from orchestrator import loss_curves

    out, metrics = ctx.out_dir, ctx.upstream_metrics()
    encoder = Encoder.load(ctx.input_dir("prepare") / "encoder.json")
    emb_dir, gbm_dir = ctx.input_dir("embeddings"), ctx.input_dir("gbm")
    if "State" in encoder.categorical:
        plots.state_map(pd.read_csv(emb_dir / "State.csv"), out / "state_embedding.png")
    for column, fname in (("DayOfWeek", "dayofweek_embedding.png"), ("Month", "month_embedding.png")):
        if column in encoder.categorical:
            plots.ordinal_embedding(pd.read_csv(emb_dir / f"{column}.csv"), column, out / fname)
    plots.importance(pd.read_csv(gbm_dir / "gbm_importance.csv"), out / "gbm_importance.png")
    loss_curves(ctx.input_history("train"), out / "loss_curves.png",
                "rossmann network: loss per epoch (MSE of log sales)")
    table = pd.read_csv(gbm_dir / "comparison.csv")
    (out / "comparison.md").write_text(report.comparison_md(table, metrics), encoding="utf-8")
    facts = json.loads((ctx.input_dir("prepare") / "facts.json").read_text())
    ctx.bias_variance_report(metrics, human=report.human(facts, ctx.task.human))
    return {}
